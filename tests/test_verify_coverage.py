"""Static ``coverage``: outputs written exactly once, scratch read only after it is written."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _coverage(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "coverage"))
            if o.kind == "coverage"]


def _one(obs, text):
    found = [o for o in obs if text in o.message or text in o.reason]
    assert found, [o.message for o in obs]
    return found[0]


def _tiles(grid: str):
    @tp.kernel(grid={"p": grid}, assume=["N <= 2**20"],
               tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))))
    def tiles(x, y):
        p, n = tp.program_id(0), tp.size("N")
        mask = (p * 64 + jnp.arange(64)) < n
        tp.store(y, (tp.ds(p * 64, 64),), tp.load(x, (tp.ds(p * 64, 64),), mask=mask), mask=mask)

    return tiles


def _compressor(fixed: bool):
    """Stage 1 fills a scratch in programs of 64 rows, stage 2 reads every row (KERNELS.md §3)."""

    @tp.kernel(
        grid={"p": "cdiv(B*S, 64)"}, assume=["B <= 64", "S <= 16"],
        tensors=dict(x=tp.Input(("B*S", 128)), kv_scratch=tp.Scratch(("B*S", 128)),
                     out=tp.Output(("B*S", 128))),
    )
    def compressor(x, kv_scratch, out):
        p = tp.program_id(0)
        rows = tp.size("B") * tp.size("S")
        ok = (p * 64 + jnp.arange(64))[:, None] < rows
        full = p < rows // 64  # the buggy dispatch: spmd(B*S // 64) programs

        @tp.when(True if fixed else full)
        def _stage1():
            t = tp.load(x, (tp.ds(p * 64, 64), slice(None)), mask=ok if fixed else None)
            tp.store(kv_scratch, (tp.ds(p * 64, 64), slice(None)), t, mask=ok if fixed else None)

        tp.barrier("grid")
        s = tp.load(kv_scratch, (tp.ds(p * 64, 64), slice(None)), mask=ok)
        tp.store(out, (tp.ds(p * 64, 64), slice(None)), s * 2, mask=ok)

    return compressor


def _accumulate(index_uses_loop: bool):
    @tp.kernel(grid={"p": "P"}, assume=["P <= 1024", "K <= 64"],
               tensors=dict(x=tp.Input(("P*8", "K*8")), y=tp.Output(("P*8", 8))))
    def accumulate(x, y):
        p = tp.program_id(0)

        def body(k, acc):
            acc = acc + tp.load(x, (tp.ds(p * 8, 8), tp.ds(k * 8, 8)))
            # the same program rewrites its tile on every iteration: an accumulation
            col = k * 0 if not index_uses_loop else k % 1
            tp.store(y, (tp.ds(p * 8, 8), tp.ds(col, 8)), acc)
            return acc

        lax.fori_loop(0, tp.size("K"), body, jnp.zeros((8, 8)))

    return accumulate


@tp.kernel(grid={"p": "P"}, assume=["P <= 1024"],
           tensors=dict(x=tp.Input(("P*8",)), y=tp.Output(("P*8 + 8",))))
def overlapping(x, y):
    p = tp.program_id(0)
    tp.store(y, (tp.ds(p * 8, 16),), jnp.zeros((16,)))  # tiles of 16 every 8: overlap


@tp.kernel(grid={"p": "P"}, assume=["P <= 1024"],
           tensors=dict(y=tp.Output(("P*8",))))
def two_stores(y):
    p = tp.program_id(0)
    tp.store(y, (tp.ds(p * 8, 8),), jnp.zeros((8,)))
    tp.store(y, (tp.ds(p * 8, 8),), jnp.ones((8,)))


# -------------------------------------------------------------------------------- tests


def test_cdiv_grid_covers_every_element_once():
    obs = _coverage(_tiles("cdiv(N, 64)"))
    assert [o.status for o in obs] == ["proved", "proved"], [(o.message, o.reason) for o in obs]


def test_floor_div_grid_drops_the_tail():
    obs = _coverage(_tiles("N // 64"))
    ex = _one(obs, "never written")
    assert ex.status == "violated"
    cx = ex.counterexample
    n, e = cx["N"], cx["element[0]"]
    assert 64 * (n // 64) <= e < n  # no program of the N // 64 covers it
    assert "_c0" not in ex.message and "of output y" in ex.message


def test_floor_div_dispatch_leaves_scratch_rows_unwritten_for_stage_two():
    obs = _coverage(_compressor(fixed=False))
    read = _one(obs, "kv_scratch")
    assert read.status == "violated"
    cx = read.counterexample
    rows = cx["B"] * cx["S"]
    assert rows % 64 != 0 and 64 * (rows // 64) <= cx["element[0]"] < rows
    assert "never written before" in read.message and "read at test_verify_coverage.py" in read.message
    assert "row" in read.message


def test_cdiv_dispatch_with_masked_tail_is_proved():
    obs = _coverage(_compressor(fixed=True))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_accumulation_over_a_loop_is_not_a_double_write():
    obs = _coverage(_accumulate(index_uses_loop=False))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_overlapping_tiles_are_written_twice():
    obs = _coverage(overlapping)
    twice = _one(obs, "written twice")
    assert twice.status == "violated"
    cx = twice.counterexample
    p1, p2, e = cx["p"], cx["p'"], cx["element[0]"]
    assert p1 != p2 and p1 * 8 <= e < p1 * 8 + 16 and p2 * 8 <= e < p2 * 8 + 16


def test_two_stores_of_one_tile_are_a_double_write():
    obs = _coverage(two_stores)
    twice = _one(obs, "written twice")
    assert twice.status == "violated" and "store at" in twice.message
