"""Lowering of data values: index-tensor tiles, masked index loads, stores into index tensors,
integer casts, shape-changing primitives and lane-split tiles.

Each class has a spec that must be refuted (or ``unknown``: not modelled, never proved) and a
correct twin that must stay proved.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _obs(kernel, kind):
    return [o for o in check_static(lower(kernel), kinds=("shape", kind)) if o.kind == kind]


def _statuses(kernel, kind) -> set[str]:
    return {o.status for o in _obs(kernel, kind)}


def _proved(kernel, kind):
    obs = _obs(kernel, kind)
    assert obs and all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def _caught(kernel, kind):
    """Refuted or unknown: never all proved."""
    got = _statuses(kernel, kind)
    assert got & {"violated", "unknown"}, got


# ------------------------------------------------------------- 1. tiles of index tensors


def _tile_of_index(how: str):
    """The mask keeps the elements that differ from the tile's first one: a tile load that
    stood for its first element made that mask always false (every access vacuous)."""

    @tp.kernel(
        grid={"p": "cdiv(N, 8)"},
        assume=["N <= 4096"],
        tensors=dict(
            t=tp.Input(("N + 8",), "int32", values="0 <= v < 4"),
            x=tp.Input(("N",)),
            o=tp.Output(("N",)),
        ),
    )
    def k(t, x, o):
        p, n = tp.program_id(0), tp.size("N")
        first = tp.load(t, (p * 8,))
        if how == "tile":
            differ = tp.load(t, (tp.ds(p * 8, 8),)) != first
            tp.store(o, (tp.ds(p * 8, 8),), tp.load(x, (tp.ds(0, 8),)), mask=differ)
        else:  # one element at a time, each a value of its own

            def body(j, c):
                v = tp.load(t, (p * 8 + j,))
                ok = (v != first) & (p * 8 + j < n) if how == "point" else v != first
                tp.store(o, (p * 8 + j,), tp.load(x, (0,)), mask=ok)
                return c

            lax.fori_loop(0, 8, body, 0)

    return k


def test_tile_load_of_index_tensor_is_not_one_value():
    m = lower(_tile_of_index("tile"))
    assert any("tile of 8 values of index tensor t" in u.what for u in m.unsupported)
    _caught(_tile_of_index("tile"), "bounds")


def test_point_loads_are_independent_values():
    assert "violated" in _statuses(_tile_of_index("point_unguarded"), "bounds")
    _proved(_tile_of_index("point"), "bounds")


def test_one_element_tile_of_index_tensor_is_exact():
    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "P <= 1024"],
        tensors=dict(
            table=tp.Input(("B",), "int32", values="0 <= v < P"),
            pages=tp.Input(("P*16", 8)),
            o=tp.Output(("B*16", 8)),
        ),
    )
    def k(table, pages, o):
        b = tp.program_id(0)
        page = tp.load(table, (tp.ds(b, 1),))[0]
        tp.store(
            o, (tp.ds(b * 16, 16), slice(None)), tp.load(pages, (tp.ds(page * 16, 16), slice(None)))
        )

    assert lower(k).unsupported == []
    _proved(k, "bounds")


# ------------------------------------------------------------- 2. masked-off index loads


def _masked_index(guard_store: bool):
    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "K <= B"],
        tensors=dict(
            n=tp.Input(("B",), "int32", values="1 <= v <= 8"),
            x=tp.Input((8,)),
            o=tp.Output(("B", 8)),
        ),
    )
    def k(n, x, o):
        b = tp.program_id(0)
        live = b < tp.size("K")
        cnt = tp.load(n, (b,), mask=live)  # reads 0 where the mask is off
        tp.store(o, (b, cnt - 1), tp.load(x, (0,)), mask=live if guard_store else None)

    return k


def test_masked_off_index_load_reads_zero():
    obs = _obs(_masked_index(False), "bounds")
    bad = [o for o in obs if o.status == "violated"]
    assert bad and "o[" in bad[0].message
    assert "-1" in bad[0].message or bad[0].counterexample.get("element[1]") == -1


def test_masked_index_load_used_under_its_mask_is_proved():
    _proved(_masked_index(True), "bounds")


# ----------------------------------------------------- 3. stores into index tensors


def _next_page(how: str):
    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64"],
        tensors=dict(table=tp.Output(("B",), "int32", values="0 <= v < B"), x=tp.Input(("B",))),
    )
    def k(table, x):
        b, nb = tp.program_id(0), tp.size("B")
        if how == "overflow":
            val = b + 1
        elif how == "wrapped":
            val = (b + 1) % nb
        else:  # a float computation: not modelled
            val = tp.load(x, (b,)).astype(jnp.int32)
        tp.store(table, (b,), val)

    return k


def test_store_outside_declared_range_is_refuted():
    obs = [o for o in _obs(_next_page("overflow"), "bounds") if "declared range" in o.message]
    assert [o.status for o in obs] == ["violated"]
    cx = obs[0].counterexample
    assert cx["value"] == cx["B"] and cx["b"] == cx["B"] - 1


def test_store_inside_declared_range_is_proved():
    obs = [o for o in _obs(_next_page("wrapped"), "bounds") if "declared range" in o.message]
    assert [o.status for o in obs] == ["proved"]


def test_opaque_store_into_index_tensor_is_unknown():
    obs = [o for o in _obs(_next_page("float"), "bounds") if "declared range" in o.message]
    assert [o.status for o in obs] == ["unknown"]
    assert "not modelled" in obs[0].reason


def _shared_read(writes: bool):
    """Every program reads t[0]; one program rewrites it.  A read of an input at a fixed
    index is one value for every program only while nobody writes it."""

    @tp.kernel(
        grid={"p": 4},
        tensors=dict(
            t=tp.Input((1,), "int32", values="0 <= v < 4", updated=True),
            x=tp.Input((4,)),
            o=tp.Output((4,)),
        ),
    )
    def k(t, x, o):
        p = tp.program_id(0)
        a = tp.load(t, (0,))
        if writes:

            @tp.when(p == 0)
            def _():
                tp.store(t, (0,), (a + 1) % 4)

        tp.store(o, ((p + a) % 4,), tp.load(x, (p,)))  # a permutation if a is shared

    return k


def test_read_of_a_written_input_is_not_shared():
    obs = [o for o in _obs(_shared_read(True), "race") if o.detail.get("tensor") == "o"]
    assert obs and {o.status for o in obs} & {"violated", "unknown"}, [o.message for o in obs]


def test_read_of_an_unwritten_input_is_shared():
    _proved(_shared_read(False), "race")


def _distinct_slots(role: str):
    """``distinct=True`` on a tensor the kernel fills itself is a claim nobody checks."""

    decl = (
        tp.Scratch((4,), "int32", values="0 <= v < 4", distinct=True)
        if role == "scratch"
        else tp.Input((4,), "int32", values="0 <= v < 4", distinct=True)
    )

    @tp.kernel(grid={"p": 4}, tensors=dict(s=decl, x=tp.Input((4,)), o=tp.Output((4,))))
    def k(s, x, o):
        p = tp.program_id(0)
        if role == "scratch":
            tp.store(s, (p,), jnp.int32(0))  # every slot 0: not distinct at all
            tp.barrier()
        tp.store(o, (tp.load(s, (p,)),), tp.load(x, (p,)))

    return k


def test_distinct_written_tensor_is_not_trusted():
    obs = [o for o in _obs(_distinct_slots("scratch"), "race") if o.detail.get("tensor") == "o"]
    assert obs and {o.status for o in obs} & {"violated", "unknown"}, [o.message for o in obs]


def test_distinct_input_is_trusted():
    _proved(_distinct_slots("input"), "race")


# ------------------------------------------------------------------- 4. integer casts


def _narrow(max_p: int, dtype):
    @tp.kernel(
        grid={"p": "P"},
        assume=[f"P <= {max_p}"],
        tensors=dict(x=tp.Input(("P*300",)), o=tp.Output(("P*300",))),
    )
    def k(x, o):
        p = tp.program_id(0)
        off = (p * 300).astype(dtype).astype(jnp.int32)  # wraps from 2**15 (int16)
        # p*300 when the cast fits; past the end once it wrapped to a smaller value
        tp.store(o, (tp.ds(2 * p * 300 - off, 300),), tp.load(x, (tp.ds(p * 300, 300),)))

    return k


@pytest.mark.parametrize("max_p,dtype", [(200, jnp.int16), (300, jnp.uint16), (2, jnp.int8)])
def test_narrowing_cast_wraps(max_p, dtype):
    assert "violated" in _statuses(_narrow(max_p, dtype), "bounds")


def test_narrowing_cast_that_fits_is_proved():
    _proved(_narrow(100, jnp.int16), "bounds")  # 99*300 + 300 < 2**15
    _proved(_narrow(200, jnp.uint16), "bounds")  # 199*300 + 300 < 2**16


def _unsigned_check(op: str):
    """``idx.astype(uint32) < n`` is the one-comparison range check 0 <= idx < n."""

    @tp.kernel(
        grid={"p": "cdiv(N, 8) + 1"},
        assume=["N <= 4096"],
        tensors=dict(x=tp.Input((8,)), o=tp.Output(("N",))),
    )
    def k(x, o):
        p, n = tp.program_id(0), tp.size("N")
        idx = p * 8 - 4 + jnp.arange(8)
        u = idx.astype(jnp.uint32)
        ok = u < n.astype(jnp.uint32) if op == "<" else u <= n.astype(jnp.uint32)
        tp.store(o, (tp.ds(p * 8 - 4, 8),), tp.load(x, (tp.ds(0, 8),)), mask=ok)

    return k


def test_unsigned_range_check_is_proved():
    _proved(_unsigned_check("<"), "bounds")


def test_unsigned_range_check_off_by_one_is_refuted():
    assert "violated" in _statuses(_unsigned_check("<="), "bounds")


def test_unsigned_subtraction_wraps():
    @tp.kernel(
        grid={"p": "P"}, assume=["P <= 64"], tensors=dict(x=tp.Input(("P",)), o=tp.Output(("P",)))
    )
    def k(x, o):
        p = tp.program_id(0)
        prev = p.astype(jnp.uint32) - jnp.uint32(1)  # 2**32 - 1 for p = 0
        tp.store(o, (p,), tp.load(x, (p,)), mask=prev < tp.size("P").astype(jnp.uint32))

    _proved(k, "bounds")
    m = lower(k)
    text = m.listing()
    assert "4294967296" in text  # the wraparound is in the mask, not assumed away


# ----------------------------------------------------- 9. shape-changing primitives


def _reshaped_mask(order: str):
    """``reshape`` with ``dimensions`` (what ``order="F"`` traces to) transposes first: on a
    square tile the shapes match, and reading it as the identity keeps the rows' mask."""

    @tp.kernel(
        grid={"p": "cdiv(N, 8)"},
        assume=["N <= 4096"],
        tensors=dict(x=tp.Input((8, 8)), o=tp.Output(("N", 8))),
    )
    def k(x, o):
        p, n = tp.program_id(0), tp.size("N")
        rows = p * 8 + lax.broadcasted_iota(jnp.int32, (8, 8), 0)
        if order == "F":
            rows = lax.reshape(rows, (8, 8), dimensions=(1, 0))  # now p*8 + column
        elif order == "jnpF":
            rows = jnp.reshape(rows, (8, 8), order="F")
        ok = rows < n
        tp.store(o, (tp.ds(p * 8, 8), slice(None)), tp.load(x, (slice(None), slice(None))), mask=ok)

    return k


@pytest.mark.parametrize("order", ["F", "jnpF"])
def test_fortran_order_reshape_is_not_the_identity(order):
    m = lower(_reshaped_mask(order))
    assert any("reshape" in u.what or "mask" in u.what for u in m.unsupported)
    _caught(_reshaped_mask(order), "bounds")


def test_c_order_reshape_is_proved():
    _proved(_reshaped_mask("C"), "bounds")


@pytest.mark.parametrize("op", ["rev", "sort", "cumsum", "concat", "gather"])
def test_index_arrays_through_unmodelled_primitives_are_unsupported(op):
    @tp.kernel(
        grid={"p": "cdiv(N, 8)"},
        assume=["N <= 4096"],
        tensors=dict(x=tp.Input((8,)), o=tp.Output(("N",))),
    )
    def k(x, o):
        p, n = tp.program_id(0), tp.size("N")
        rows = p * 8 + jnp.arange(8)
        rows = {
            "rev": lambda r: r[::-1],
            "sort": jnp.sort,
            "cumsum": lambda r: jnp.cumsum(r) - jnp.cumsum(r) + r,
            "concat": lambda r: jnp.concatenate([r[:4], r[4:]]),
            "gather": lambda r: r[jnp.arange(8)],
        }[op](rows)
        tp.store(o, (tp.ds(p * 8, 8),), tp.load(x, (tp.ds(0, 8),)), mask=rows < n)

    assert lower(k).unsupported  # the mask is not guessed
    _caught(k, "bounds")


def test_slice_of_an_index_array_is_exact():
    @tp.kernel(
        grid={"p": "cdiv(N, 8)"},
        assume=["N <= 4096"],
        tensors=dict(x=tp.Input((8,)), o=tp.Output(("N",))),
    )
    def k(x, o):
        p, n = tp.program_id(0), tp.size("N")
        rows = (p * 8 - 2 + jnp.arange(12))[2:10]
        tp.store(o, (tp.ds(p * 8, 8),), tp.load(x, (tp.ds(0, 8),)), mask=rows < n)

    assert lower(k).unsupported == []
    _proved(k, "bounds")


# --------------------------------------------------------------------- 11. lane splits


def _split_op(op: str):
    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 64"],
        tensors=dict(x=tp.Input(("P*16", 8)), y=tp.Output(("P*16", 8))),
    )
    def k(x, y):
        p = tp.program_id(0)
        t = tp.load(x, (tp.ds(p * 16, 16), slice(None)))
        with tp.lanes(2, halve=0) as lane:
            part = tp.lane_part(t, axis=0)  # [8, 8]: rows split across the lanes
            part = {
                "cumprod0": lambda a: jnp.cumprod(a, axis=0),
                "cummax0": lambda a: lax.cummax(a, axis=0),
                "sort0": lambda a: jnp.sort(a, axis=0),
                "rev0": lambda a: a[::-1],
                "argmax0": lambda a: a + jnp.argmax(a, axis=0)[None, :],
                "cumprod1": lambda a: jnp.cumprod(a, axis=1),
                "sort1": lambda a: jnp.sort(a, axis=1),
                "rev1": lambda a: a[:, ::-1],
                "argmax1": lambda a: a + jnp.argmax(a, axis=1)[:, None],
                "cumsum1_t": lambda a: jnp.cumsum(a.T, axis=0).T,
                "where": lambda a: jnp.where(a > 0, a, 0.0).sum(axis=1, keepdims=True) + a,
                "reshape0": lambda a: a + a.reshape(64).sum(),  # rows merged: still split
                "reshape": lambda a: a + a.T.reshape(64).sum(),  # split axis inside the merge
                "pad": lambda a: jnp.pad(a, ((1, 0), (0, 0)))[1:].sum(axis=0) + a,
                "dot_both": lambda a: a @ a.T,  # only each lane's own block of rows x rows
                "dot_one": lambda a: a @ jnp.ones((8, 8)),
                "scan": lambda a: lax.scan(lambda c, r: (c + r, c), jnp.zeros(8), a)[1],
            }[op](part)
            tp.store(y, (tp.ds(p * 16 + lane * 8, 8), slice(None)), part)

    return k


@pytest.mark.parametrize("op", ["cumprod0", "cummax0", "sort0", "rev0", "argmax0", "reshape0"])
def test_mixing_along_the_split_axis_is_refuted(op):
    obs = _obs(_split_op(op), "split")
    bad = [o for o in obs if o.status == "violated" and "split across lanes" in o.message]
    assert bad, [(o.status, o.message) for o in obs]
    # named at the user's line, also inside jnp's own jit (jnp.sort, jnp.cumprod)
    assert bad[0].location.file.endswith("test_lowering_data.py") and bad[0].location.line > 0


@pytest.mark.parametrize(
    "op", ["cumprod1", "sort1", "rev1", "argmax1", "cumsum1_t", "where", "dot_one"]
)
def test_work_along_other_axes_keeps_the_split(op):
    m = lower(_split_op(op))
    assert m.unsupported == []
    _proved(_split_op(op), "split")


@pytest.mark.parametrize("op", ["reshape", "pad", "dot_both", "scan"])
def test_split_axis_merged_or_padded_is_unsupported(op):
    m = lower(_split_op(op))
    assert any("split across lanes" in u.what for u in m.unsupported)
    assert "unknown" in _statuses(_split_op(op), "split")  # reported under its own kind


def test_branch_keeps_the_split_axis():
    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 64"],
        tensors=dict(x=tp.Input(("P*16", 8)), y=tp.Output(("P*16", 8))),
    )
    def k(x, y):
        p = tp.program_id(0)
        t = tp.load(x, (tp.ds(p * 16, 16), slice(None)))
        with tp.lanes(2, halve=0) as lane:
            part = tp.lane_part(t, axis=0)
            part = lax.cond(p > 0, lambda a: a * 2.0, lambda a: a, part)
            tp.store(
                y,
                (tp.ds(p * 16 + lane * 8, 8), slice(None)),
                part + part.sum(axis=0, keepdims=True),
            )

    assert "violated" in _statuses(k, "split")


def _halve_region(rows: int):
    """A declared row-halving split whose body never calls lane_part: the tiles it loads
    and stores are halved by the declaration itself."""

    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 64"],
        tensors=dict(x=tp.Input(("P*16", 8)), y=tp.Output(("P*16", 8))),
    )
    def k(x, y):
        p = tp.program_id(0)
        with tp.lanes(2, halve=0):
            t = tp.load(x, (tp.ds(p * 16, rows), slice(None)))
            tp.store(y, (tp.ds(p * 16, rows), slice(None)), t)

    return k


def test_declared_split_of_an_odd_tile_is_refuted():
    obs = _obs(_halve_region(5), "split")
    assert [o.status for o in obs] == ["violated", "violated"]
    assert "5 is not divisible by 2" in obs[0].message and "under lanes(halve=)" in obs[0].message


def test_declared_split_of_an_even_tile_is_proved():
    _proved(_halve_region(16), "split")
