"""Static ``overflow``: element and byte offsets, and index arithmetic, fit the index width."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static

LIMIT32 = 2**31 - 1


def _overflow(kernel):
    return [
        o for o in check_static(lower(kernel), kinds=("shape", "overflow")) if o.kind == "overflow"
    ]


def _stacked(bits):
    """A paged KV cache stacked over 40 layers (docs/catalog.md §1): 2.68e9 elements."""

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 16", "L <= 40", "NP <= 512", "M <= 32"],
        tensors=dict(
            cache=tp.Input(("L*NP*1024", 128), "bfloat16", index_bits=bits),
            table=tp.Input(("B", "M"), "int32", values="0 <= v < NP"),
            layer=tp.Input((1,), "int32", values="0 <= v < L"),
            out=tp.Output(("B", 128), "bfloat16"),
        ),
    )
    def stacked(cache, table, layer, out):
        b = tp.program_id(0)
        base = tp.load(layer, (0,)) * tp.size("NP") * 1024
        page = tp.load(table, (b, 0))
        rows = tp.ds(base + page * 1024, 128)
        tp.store(
            out,
            (tp.ds(b, 1), slice(None)),
            jnp.sum(tp.load(cache, (rows, slice(None))), axis=0, keepdims=True),
        )

    return stacked


def _page_offset(np_max):
    """``page * 64 * Hkv * 64`` computed in int32 with 8 KV heads (decode_split_k, docs/catalog.md §5)."""

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "Hkv == 8", f"NP <= {np_max}"],
        tensors=dict(
            cache=tp.Input(("NP*64*Hkv*64",), "float16", index_bits=64),
            table=tp.Input(("B",), "int32", values="0 <= v < NP"),
            out=tp.Output(("B", 64), "float16"),
        ),
    )
    def page_offset(cache, table, out):
        b = tp.program_id(0)
        page = tp.load(table, (b,))
        off = page * 64 * tp.size("Hkv") * 64
        tp.store(out, (b, slice(None)), tp.load(cache, (tp.ds(off, 64),)))

    return page_offset


@tp.kernel(
    grid={"p": "cdiv(N, 64)"}, tensors=dict(x=tp.Input(("N",), "int8"), y=tp.Output(("N",), "int8"))
)
def unbounded(x, y):
    p = tp.program_id(0)
    mask = (p * 64 + jnp.arange(64)) < tp.size("N")
    tp.store(y, (tp.ds(p * 64, 64),), tp.load(x, (tp.ds(p * 64, 64),), mask=mask), mask=mask)


@tp.kernel(
    grid={"p": "cdiv(N, 64)"},
    assume=["N <= 2**24"],
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
)
def bounded(x, y):
    p = tp.program_id(0)
    mask = (p * 64 + jnp.arange(64)) < tp.size("N")

    def body(i, acc):
        return acc + tp.load(x, (tp.ds(p * 64, 64),), mask=mask)

    acc = lax.fori_loop(0, 4, body, jnp.zeros((64,)))
    tp.store(y, (tp.ds(p * 64, 64),), acc, mask=mask)


def test_stacked_cache_offsets_overflow_int32():
    obs = _overflow(_stacked(32))
    bad = [o for o in obs if o.status == "violated" and "cache" in o.message]
    assert bad, [(o.status, o.message) for o in obs]
    cx = bad[0].counterexample
    assert cx["offset"] > LIMIT32
    # re-check: the row-major element offset of the reported element
    assert cx["element[0]"] * 128 + cx["element[1]"] >= cx["offset"] // 2 - 1
    assert "past the int32 maximum" in bad[0].message and bad[0].hint


def test_stacked_cache_offsets_fit_int64():
    obs = _overflow(_stacked(64))
    cache = [o for o in obs if "cache at" in o.message]
    assert cache and all(o.status == "proved" for o in cache), [o.message for o in cache]


def test_page_times_heads_arithmetic_overflows_from_page_65536():
    obs = _overflow(_page_offset(2**20))
    arith = [o for o in obs if o.status == "violated" and "arithmetic" in o.message]
    assert arith, [(o.status, o.message) for o in obs]
    cx = arith[-1].counterexample
    page = next(v for k, v in cx.items() if k.startswith("table"))
    assert page * 64 * 8 * 64 == cx["value"] > LIMIT32
    assert page == 65536  # the smallest page that overflows
    assert "int32 arithmetic" in arith[-1].message and "table[b] (line" in arith[-1].message


def test_pages_below_65536_fit():
    obs = _overflow(_page_offset(2**16))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_unbounded_size_is_refuted_at_the_smallest_overflowing_size():
    obs = _overflow(unbounded)
    bad = [o for o in obs if o.status == "violated" and "offset of load x" in o.message]
    assert bad, [(o.status, o.message) for o in obs]
    cx = bad[0].counterexample
    n = cx["N"]
    assert cx["offset"] > LIMIT32 >= cx["offset"] - 64  # within the last tile
    assert n - 1 > LIMIT32 and n - 2 <= LIMIT32  # N - 1 is the first offset past the limit


def test_bounded_sizes_fit():
    obs = _overflow(bounded)
    assert obs and all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]
