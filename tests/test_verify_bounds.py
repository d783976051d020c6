"""Static ``bounds`` obligations: proved for all shapes, or refuted with a re-checked counterexample."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from specs.kernels import paged

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _bounds(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "bounds")) if o.kind == "bounds"]


def _at(obs, line_text):
    return next(o for o in obs if line_text in o.message)


# ------------------------------------------------------------------------------ kernels


def _tail(masked: bool):
    @tp.kernel(
        grid={"p": "cdiv(N, 64)"},
        assume=["N <= 2**20"],
        tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    )
    def tail(x, y):
        p = tp.program_id(0)
        n = tp.size("N")
        mask = (p * 64 + jnp.arange(64)) < n if masked else None
        t = tp.load(x, (tp.ds(p * 64, 64),), mask=mask)
        tp.store(y, (tp.ds(p * 64, 64),), t, mask=mask)

    return tail


def _pair(contiguous: bool):
    """Two-page fast path: 256 rows from page p, assuming p+1 follows (the real bug)."""

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "P <= 4096", "M <= 64"],
        tensors=dict(
            k_cache=tp.Input(("P*128", 128)),
            block_table=tp.Input(("B", "M"), "int32", values="0 <= v < P"),
            out=tp.Output(("B", 128)),
        ),
    )
    def pair(k_cache, block_table, out):
        b = tp.program_id(0)

        def body(j, acc):
            page = tp.load(block_table, (b, j))
            rows = 256 if contiguous else 128
            k = tp.load(k_cache, (tp.ds(page * 128, rows), slice(None)))
            return acc + jnp.sum(k, axis=0, keepdims=True)

        acc = lax.fori_loop(0, tp.size("M"), body, jnp.zeros((1, 128)))
        tp.store(out, (tp.ds(b, 1), slice(None)), acc)

    return pair


def _prefetch(masked: bool):
    """The page loop prefetches the next table entry at j + 1 (the real bug: unmasked)."""

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "M <= 64"],
        tensors=dict(
            table=tp.Input(("B", "M"), "int32", values="0 <= v < 8"),
            n_pages=tp.Input(("B",), "int32", values="1 <= v <= M"),
            out=tp.Output(("B", 8)),
        ),
    )
    def prefetch(table, n_pages, out):
        b = tp.program_id(0)
        n = tp.load(n_pages, (b,))

        def body(j, acc):
            nxt = tp.load(table, (b, j + 1), mask=(j + 1 < n) if masked else None)
            return acc + nxt

        acc = lax.fori_loop(0, n, body, jnp.int32(0))
        tp.store(out, (tp.ds(b, 1), slice(None)), jnp.full((1, 8), acc, jnp.float32))

    return prefetch


# -------------------------------------------------------------------------------- tests


def test_paged_attention_accesses_are_proved_in_bounds():
    obs = _bounds(paged())
    assert len(obs) == 5
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]
    k = _at(obs, "load k_cache")
    assert "128*block_table[b, i]" in k.message and k.location.line > 0


def test_unmasked_tail_tile_is_refuted_with_the_element():
    obs = _bounds(_tail(masked=False))
    load = _at(obs, "x[")
    assert load.status == "violated"
    cx = load.counterexample
    assert "reads element" in load.message and "dim 0" in load.message and "_c0" not in load.message
    n, p, el = cx["N"], cx["p"], cx["element[0]"]
    # the counterexample really breaks it: program p's tile reaches element el >= N
    assert 0 <= p < -(-n // 64) and p * 64 <= el < p * 64 + 64 and el >= n
    assert _at(obs, "y[").status == "violated"


def test_masked_tail_tile_is_proved():
    obs = _bounds(_tail(masked=True))
    assert [o.status for o in obs] == ["proved", "proved"]


def test_page_pair_contiguity_is_refuted_at_the_last_page():
    obs = _bounds(_pair(contiguous=True))
    k = _at(obs, "k_cache")
    assert k.status == "violated"
    cx = k.counterexample
    page = next(v for key, v in cx.items() if key.startswith("block_table"))
    assert page == cx["P"] - 1  # the last page of the pool
    assert cx["element[0]"] >= 128 * cx["P"]
    assert "block_table[b, i] (line" in k.message


def test_single_page_is_proved_for_any_page_value():
    obs = _bounds(_pair(contiguous=False))
    assert all(o.status == "proved" for o in obs)


def test_unmasked_prefetch_reads_past_the_row():
    obs = _bounds(_prefetch(masked=False))
    pre = _at(obs, "table[b, i + 1]")
    assert pre.status == "violated"
    cx = pre.counterexample
    assert cx["element[1]"] == cx["M"]  # one past the row's end
    assert "loop index i (line" in pre.message


def test_masked_prefetch_is_proved():
    obs = _bounds(_prefetch(masked=True))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]
