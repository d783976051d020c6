"""``reads`` (a reduction reads every element of its declared region) and the declared
writes of inputs updated in place (``coverage``): each bug class refuted, its twin proved."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.catalog import decode_split_k
from tileproof.catalog.bugs import _decode_split_k as bugs
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _of(kernel, kind):
    return [
        o
        for o in check_static(lower(kernel), kinds=("shape", kind))
        if o.kind == kind
        and (
            "region" in o.message
            or "reduction" in o.message
            or "updated" in o.message
            or "never" in o.message
        )
    ]


def _split_rows(per_split: str, *, region=None):
    """Each row of x is folded by NS programs of ``per`` columns (a split-K reduction)."""

    @tp.kernel(
        grid={"r": "N", "s": "NS"},
        assume=["N <= 1024", "K <= 4096", "NS <= 8"],
        tensors=dict(x=tp.Input(("N", "K"), reduced=region or "all"), y=tp.Output(("N", "NS"))),
    )
    def split_rows(x, y):
        r, s = tp.program_id(0), tp.program_id(1)
        K, NS = tp.size("K"), tp.size("NS")
        per = K // NS if per_split == "floor" else (K + NS - 1) // NS
        start = s * per
        end = jnp.minimum(start + per, K)

        def body(i, acc):
            col = start + i
            return acc + tp.load(x, (r, tp.ds(col, 1)), mask=(col + jnp.arange(1)) < end).sum()

        tp.store(y, (r, s), lax.fori_loop(0, per, body, jnp.float32(0)))

    return split_rows


def _tiled_rows(bound: str):
    """One program per row folds its columns in tiles of 16; ``floor`` skips the tail tile."""

    @tp.kernel(
        grid={"r": "N"},
        assume=["N <= 1024", "K <= 4096"],
        tensors=dict(x=tp.Input(("N", "K"), reduced="i1 < K"), y=tp.Output(("N",))),
    )
    def tiled_rows(x, y):
        r, K = tp.program_id(0), tp.size("K")
        n = K // 16 if bound == "floor" else (K + 15) // 16

        def body(j, acc):
            cols = j * 16 + jnp.arange(16)
            return acc + tp.load(x, (r, tp.ds(j * 16, 16)), mask=cols < K).sum()

        tp.store(y, (r,), lax.fori_loop(0, n, body, jnp.float32(0)))

    return tiled_rows


@pytest.mark.parametrize(
    "make", [lambda b: _split_rows(b), lambda b: _tiled_rows(b)], ids=["split-grid", "tile-loop"]
)
def test_a_floor_divided_reduction_drops_a_tail(make):
    ok = _of(make("cdiv"), "reads")
    assert [o.status for o in ok] == ["proved"], [(o.message, o.reason) for o in ok]
    bad = _of(make("floor"), "reads")
    assert [o.status for o in bad] == ["violated"]
    o = bad[0]
    assert "never read" in o.message and "x" in o.message
    el = (o.counterexample["element[0]"], o.counterexample["element[1]"])
    assert 0 <= el[1] < o.counterexample["K"]
    assert o.location.line > 0


def test_paged_region_with_data_split_k_catalog():
    """decode_split_k's page-table region (pages of each sequence) is read; the floor
    pages-per-split variant misses a page, named with the sequence length that shows it."""
    ok = [
        o
        for o in check_static(lower(decode_split_k.decode_split_k), kinds=("shape", "reads"))
        if o.kind == "reads"
    ]
    assert [o.status for o in ok] == ["proved"], [o.reason for o in ok]
    bad = [
        o
        for o in check_static(lower(bugs.decode_split_k_floor_pages), kinds=("shape", "reads"))
        if o.kind == "reads"
    ]
    assert [o.status for o in bad] == ["violated"]
    cx = bad[0].counterexample
    seq = cx[f"cache_seqlens[{cx['element[0]']}]"]
    assert cx["element[1]"] < -(-seq // 64)  # the page lies inside the sequence


def test_no_reduced_declaration_no_reads_obligation():
    @tp.kernel(
        grid={"r": "N"},
        assume=["N <= 64"],
        tensors=dict(x=tp.Input(("N", 16)), y=tp.Output(("N",))),
    )
    def plain(x, y):
        r = tp.program_id(0)
        tp.store(y, (r,), tp.load(x, (r, tp.ds(0, 8))).sum())

    assert [o for o in check_static(lower(plain)) if o.kind == "reads"] == []


def _in_place(skip_last: bool, writes="all"):
    """Each program rewrites its row of an updated state; ``skip_last`` leaves the last row."""

    @tp.kernel(
        grid={"r": "N"},
        assume=["N <= 1024"],
        tensors=dict(state=tp.Input(("N", 8), updated=True, writes=writes), y=tp.Output(("N", 8))),
    )
    def in_place(state, y):
        r, N = tp.program_id(0), tp.size("N")
        row = tp.load(state, (r, tp.ds(0, 8)))
        tp.store(y, (r, tp.ds(0, 8)), row)

        @tp.when((r < N - 1) if skip_last else True)
        def _():
            tp.store(state, (r, tp.ds(0, 8)), row * 0.5)

    return in_place


def test_updated_input_must_write_its_declared_region():
    ok = _of(_in_place(False), "coverage")
    assert [o.status for o in ok if "state" in o.message] == ["proved"]
    bad = [o for o in _of(_in_place(True), "coverage") if "state" in o.message]
    assert [o.status for o in bad] == ["violated"]
    cx = bad[0].counterexample
    assert cx["element[0]"] == cx["N"] - 1 and "never written" in bad[0].message
    # a region that excludes the last row: the same kernel is proved
    part = [
        o for o in _of(_in_place(True, writes="i0 < N - 1"), "coverage") if "state" in o.message
    ]
    assert [o.status for o in part] == ["proved"]


def test_updated_without_writes_has_no_obligation():
    obs = check_static(lower(_in_place(True, writes=None)), kinds=("shape", "coverage"))
    assert not [o for o in obs if "updated input" in o.message or "region" in o.message]


def test_region_declaration_errors():
    with pytest.raises(tp.SpecError, match="updated=True"):
        tp.Input(("N",), writes="all")
    with pytest.raises(tp.SpecError, match="reduced="):
        tp.Output(("N",), reduced="all")
    with pytest.raises(tp.SpecError, match="tensor name, index"):
        tp.Region("i0 < n", n="seq")
