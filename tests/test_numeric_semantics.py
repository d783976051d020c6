"""The executor's memory semantics on small kernels built to break them.

Each kernel has one defect (or none); the run-time findings must name it: the
kind, the tensor element, the program, the line.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.verify.numeric import check_numeric, execute, executor

RNG = np.random.default_rng(0)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def kinds(flags):
    return sorted({f.kind for f in flags.findings()})


# ----------------------------------------------------------------------------- poisoned read


@tp.kernel(
    grid={"p": 4}, tensors=dict(x=tp.Input((4, 8)), s=tp.Scratch((4, 8)), o=tp.Output((4, 8)))
)
def skips_a_row(x, s, o):
    p = tp.program_id(0)

    @tp.when(p != 2)  # row 2 of the scratch is never written
    def _():
        tp.store(s, (p, slice(None)), tp.load(x, (p, slice(None))))

    tp.barrier()
    tp.store(o, (p, slice(None)), tp.load(s, (p, slice(None))))


def test_poisoned_read_names_element_and_program():
    x = f32(4, 8)
    out, flags = execute(skips_a_row, {}, {"x": x})
    (f,) = flags.findings()
    assert f.kind == "poison"
    assert f.tensor == "s" and f.element == (2, 0) and f.program == {"p": 2}
    assert "s[2, 0] is read by program (p=2)" in f.message and "never written" in f.message
    assert "8 elements" in f.message and "test_numeric_semantics.py" in str(f.location)
    assert np.isnan(out["o"][2]).all()  # the poison shows in the values too
    np.testing.assert_array_equal(np.asarray(out["o"])[[0, 1, 3]], x[[0, 1, 3]])


# ----------------------------------------------------------------------------- write race


@tp.kernel(grid={"p": 4}, tensors=dict(x=tp.Input((4, 8)), o=tp.Output((4, 8))))
def two_writers(x, o):
    p = tp.program_id(0)
    row = jnp.minimum(p, 2)  # programs 2 and 3 both write row 2; row 3 stays unwritten
    tp.store(o, (row, slice(None)), tp.load(x, (p, slice(None))))


def test_race_names_both_programs():
    _out, flags = execute(two_writers, {}, {"x": f32(4, 8)})
    by = {f.kind: f for f in flags.findings()}
    assert set(by) == {"race", "unwritten"}
    race = by["race"]
    assert race.element == (2, 0) and race.count == 8
    assert "written by program (p=2) and by program (p=3) in the same phase" in race.message
    assert by["unwritten"].element == (3, 0)


@tp.kernel(grid={"p": 2}, tensors=dict(o=tp.Output((1, 4))))
def same_program_twice(o):
    p = tp.program_id(0)

    def body(j, c):  # one program rewrites its element every iteration: last write wins, no race
        tp.store(o, (0, tp.ds(p * 2, 2)), jnp.full((2,), j, jnp.float32))
        return c

    lax.fori_loop(0, 3, body, 0)


def test_rewrites_by_one_program_are_ordered_not_racy():
    out, flags = execute(same_program_twice, {}, {})
    assert flags.ok
    np.testing.assert_array_equal(out["o"], np.full((1, 4), 2.0))


# ----------------------------------------------------------------------------- out of bounds


@tp.kernel(
    grid={"i": "cdiv(N, 64)"},
    assume=["N <= 4096"],
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
)
def unmasked_load(x, y):
    i = tp.program_id(0)
    n = tp.size("N")
    tile = tp.load(x, (tp.ds(i * 64, 64),))  # overruns the tail: no mask
    tp.store(y, (tp.ds(i * 64, 64),), tile * 2, mask=i * 64 + jnp.arange(64) < n)


def test_out_of_bounds_load_is_reported_not_clamped():
    x = f32(100)
    out, flags = execute(unmasked_load, {"N": 100}, {"x": x})
    (f,) = flags.findings()
    assert f.kind == "oob_load" and f.tensor == "x" and f.element == (100,)
    assert f.program == {"i": 1} and f.count == 28
    assert "out-of-bounds load of x[100] (shape [100]) by program (i=1)" in f.message
    # a clamped window would have shifted the tail tile; the in-range elements are right
    np.testing.assert_allclose(out["y"], 2 * x)


@tp.kernel(grid={"i": 2}, tensors=dict(x=tp.Input((8,)), y=tp.Output((8,))))
def store_past_end(x, y):
    i = tp.program_id(0)
    tp.store(y, (tp.ds(i * 4 + 1, 4),), tp.load(x, (tp.ds(i * 4, 4),)))


def test_out_of_bounds_store_and_unwritten_element():
    _, flags = execute(store_past_end, {}, {"x": f32(8)})
    by = {f.kind: f for f in flags.findings()}
    assert by["oob_store"].element == (8,) and by["oob_store"].program == {"i": 1}
    assert by["unwritten"].element == (0,)


# ----------------------------------------------------------------------------- barriers, phases


@tp.kernel(
    grid={"p": 4}, tensors=dict(x=tp.Input((4, 4)), s=tp.Scratch((4, 4)), o=tp.Output((4, 4)))
)
def neighbour_after_barrier(x, s, o):
    p = tp.program_id(0)
    tp.store(s, (p, slice(None)), tp.load(x, (p, slice(None))))
    tp.barrier()
    tp.store(o, (p, slice(None)), tp.load(s, ((p + 1) % 4, slice(None))))


def test_writes_visible_to_other_programs_after_the_barrier():
    x = f32(4, 4)
    out, flags = execute(neighbour_after_barrier, {}, {"x": x})
    assert flags.ok
    np.testing.assert_array_equal(out["o"], np.roll(x, -1, axis=0))


@tp.kernel(
    grid={"p": 4}, tensors=dict(x=tp.Input((4, 4)), s=tp.Scratch((4, 4)), o=tp.Output((4, 4)))
)
def neighbour_without_barrier(x, s, o):
    p = tp.program_id(0)
    tp.store(s, (p, slice(None)), tp.load(x, (p, slice(None))))
    tp.store(o, (p, slice(None)), tp.load(s, ((p + 1) % 4, slice(None))))


def test_other_programs_writes_invisible_before_the_barrier():
    _, flags = execute(neighbour_without_barrier, {}, {"x": f32(4, 4)})
    by = {f.kind: f for f in flags.findings()}
    assert set(by) == {"poison", "rw_race"}
    assert by["poison"].element == (1, 0) and by["poison"].program == {"p": 0}
    rw = by["rw_race"]
    assert rw.element == (1, 0) and rw.count == 16
    assert "s[1, 0] is read by program (p=0)" in rw.message
    assert "written by program (p=1) in the same phase" in rw.message


@tp.kernel(grid={"p": 4}, tensors=dict(x=tp.Input((4, 4)), o=tp.Output((4, 4))))
def exits_before_barrier(x, o):
    p = tp.program_id(0)
    tp.exit_if(p == 1)
    tp.barrier()
    tp.store(o, (p, slice(None)), tp.load(x, (p, slice(None))))


def test_early_exit_before_a_grid_barrier():
    _, flags = execute(exits_before_barrier, {}, {"x": f32(4, 4)})
    by = {f.kind: f for f in flags.findings()}
    assert by["barrier"].program == {"p": 1}
    assert "program (p=1) exited before the grid barrier at" in by["barrier"].message
    assert by["unwritten"].element == (1, 0)


@tp.kernel(
    grid={"b": "B"},
    assume=["B <= 64", "K <= 16"],
    tensors=dict(x=tp.Input(("B", "K*8")), o=tp.Output(("B", 8))),
)
def accumulate_in_output(x, o):
    b = tp.program_id(0)
    tp.store(o, (b, slice(None)), jnp.zeros((8,)))

    def body(j, c):  # read-modify-write of its own output tile: visible to itself at once
        tp.store(
            o, (b, slice(None)), tp.load(o, (b, slice(None))) + tp.load(x, (b, tp.ds(j * 8, 8)))
        )
        return c

    lax.fori_loop(0, tp.size("K"), body, 0)


def test_program_sees_its_own_writes_within_a_phase():
    x = f32(3, 40)
    out, flags = execute(accumulate_in_output, {"B": 3, "K": 5}, {"x": x})
    assert flags.ok
    np.testing.assert_allclose(out["o"], x.reshape(3, 5, 8).sum(1), rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda x: execute(accumulate_in_output, {"B": 3, "K": 5}, {"x": x})[0]["o"].sum())(
        x
    )
    np.testing.assert_allclose(g, np.ones_like(x))


# ----------------------------------------------------------------------------- lanes


@tp.kernel(
    grid={"c": 2},
    tensors=dict(x=tp.Input((2, 5, 8)), o=tp.Output((2, 5, 8))),
    reference=lambda x: x,
)
def odd_lane_split(x, o):
    c = tp.program_id(0)
    tile = tp.load(x, (c, slice(None), slice(None)))
    with tp.lanes(2, halve=0) as lane:  # 5 rows do not halve: each lane gets 2, row 4 is dropped
        tp.store(o, (c, tp.ds(lane * 2, 2), slice(None)), tp.lane_part(tile, axis=0))


def test_odd_lane_split_drops_a_row():
    x = f32(2, 5, 8)
    out, flags = execute(odd_lane_split, {}, {"x": x})
    (f,) = flags.findings()
    assert f.kind == "unwritten" and f.element == (0, 4, 0) and f.count == 16
    np.testing.assert_array_equal(out["o"][:, :4], x[:, :4])
    assert np.isnan(out["o"][:, 4]).all()
    res = check_numeric(odd_lane_split, gradients=False)
    assert res.status == "mismatch" and "output o[0, 4, 0] is never written" in res.message


@tp.kernel(
    grid={"c": 2}, tensors=dict(x=tp.Input((4, 8)), s=tp.Scratch((4, 8)), o=tp.Output((4, 8)))
)
def lanes_swap_through_barrier(x, s, o):
    c = tp.program_id(0)
    with tp.lanes(2) as lane:
        row = 2 * c + lane
        tp.store(s, (row, slice(None)), tp.load(x, (row, slice(None))))
        tp.barrier("lanes")  # the other lane's row is visible after the lanes barrier
        tp.store(o, (row, slice(None)), tp.load(s, (2 * c + 1 - lane, slice(None))))


def test_lanes_barrier_orders_lanes_of_one_program():
    x = f32(4, 8)
    out, flags = execute(lanes_swap_through_barrier, {}, {"x": x})
    assert flags.ok, flags.findings()
    np.testing.assert_array_equal(out["o"], x[[1, 0, 3, 2]])


# ----------------------------------------------------------------------------- loop bounds


@tp.kernel(
    grid={"b": "B"},
    assume=["B <= 8", "M <= 8"],
    tensors=dict(
        lens=tp.Input(("B",), "int32", values="1 <= v <= 4*M"),
        x=tp.Input(("B", "4*M")),
        o=tp.Output(("B",)),
    ),
)
def ragged_sum(lens, x, o):
    b = tp.program_id(0)
    n = tp.load(lens, (b,))

    def body(j, acc):
        t = tp.load(x, (b, tp.ds(j * 4, 4)), mask=j * 4 + jnp.arange(4) < n)
        return acc + t.sum()

    tp.store(o, (b,), lax.fori_loop(0, (n + 3) // 4, body, jnp.float32(0)))


def test_data_dependent_trip_count_within_declared_range():
    lens = np.array([1, 16, 7], np.int32)
    x = f32(3, 16)
    out, flags = execute(ragged_sum, {"B": 3, "M": 4}, {"lens": lens, "x": x})
    assert flags.ok
    want = [x[b, : lens[b]].sum() for b in range(3)]
    np.testing.assert_allclose(out["o"], want, rtol=1e-5, atol=1e-5)


def test_data_outside_declared_range_runs_past_the_static_bound():
    lens = np.array([1, 20, 7], np.int32)  # 20 > 4*M: the loop would need 5 trips, bound is 4
    _, flags = execute(ragged_sum, {"B": 3, "M": 4}, {"lens": lens, "x": f32(3, 16)})
    assert "loop_bound" in kinds(flags)
    (f,) = [f for f in flags.findings() if f.kind == "loop_bound"]
    assert f.program == {"b": 1} and "static trip bound 4" in f.message


# ----------------------------------------------------------------------------- jit, grads, vmap


@tp.kernel(
    grid={"i": "G"},
    assume=["G <= 4096"],
    tensors=dict(x=tp.Input(("G*16", 16)), y=tp.Input(("G*16", 16)), o=tp.Output(("G*16", 16))),
)
def tiled_add(x, y, o):
    i = tp.program_id(0)
    rows = (tp.ds(i * 16, 16), slice(None))
    tp.store(o, rows, tp.load(x, rows) + jnp.sin(tp.load(y, rows)))


def test_executor_is_jittable_and_differentiable():
    x, y = f32(64, 16), f32(64, 16)

    @jax.jit
    def loss(x, y):
        out, flags = execute(tiled_add, {"G": 4}, {"x": x, "y": y})
        return jnp.sum(out["o"] ** 2), flags

    (val, flags), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, y)
    assert flags.ok
    o = x + np.sin(y)
    np.testing.assert_allclose(val, np.sum(o**2), rtol=1e-5)
    np.testing.assert_allclose(grads[0], 2 * o, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grads[1], 2 * o * np.cos(y), rtol=1e-5, atol=1e-5)


def _eqn_count(jaxpr) -> int:
    n = 0
    for e in jaxpr.eqns:
        n += 1
        for v in e.params.values():
            for j in v if isinstance(v, (tuple, list)) else [v]:
                if hasattr(j, "eqns") or hasattr(j, "jaxpr"):
                    n += _eqn_count(j.jaxpr if hasattr(j, "jaxpr") else j)
    return n


@pytest.mark.parametrize(
    "kernel,sizes,inputs",
    [
        (tiled_add, lambda g: {"G": g}, lambda g: {"x": f32(g * 16, 16), "y": f32(g * 16, 16)}),
        (unmasked_load, lambda g: {"N": g * 64 - 3}, lambda g: {"x": f32(g * 64 - 3)}),
    ],
)
def test_no_python_loop_over_programs(kernel, sizes, inputs):
    """The traced executor has the same size at 2 and 64 programs: programs are vmapped."""
    counts = []
    for g in (2, 64):
        fn = executor(kernel, sizes(g), jit=False)
        counts.append(_eqn_count(jax.make_jaxpr(fn)(inputs(g)).jaxpr))
    assert counts[0] == counts[1]


def test_fast_path_is_a_reshape_not_a_gather():
    fn = executor(tiled_add, {"G": 8}, jit=False)
    text = str(jax.make_jaxpr(fn)({"x": f32(128, 16), "y": f32(128, 16)}))
    assert "gather" not in text and "scatter" not in text


def test_separable_bounds_record_matches_the_full_tile():
    """The O(sum of extents) out-of-bounds record agrees with the elementwise one."""
    from tileproof.verify.numeric._interp import _access_record, _oob_record
    from tileproof.verify.numeric._memory import coords, in_bounds

    class Ids:
        def ids(self):
            return [0, 0, -1, -1, -1, -1]

    rng = np.random.default_rng(3)
    for _ in range(20):
        nd = int(rng.integers(1, 4))
        dims = tuple(
            ("ds", int(rng.integers(1, 5))) if rng.random() < 0.7 else ("point", 1)
            for _ in range(nd)
        )
        shape = tuple(int(rng.integers(1, 6)) for _ in range(nd))
        starts = [jnp.int32(int(rng.integers(-4, 7))) for _ in range(nd)]
        bad = ~in_bounds(coords(starts, dims), shape, dims)
        want = _access_record("oob_load", "x", None, bad, starts, dims, Ids())
        got = _oob_record("oob_load", "x", None, jnp.bool_(True), starts, dims, shape, Ids())
        assert int(got.count) == int(want.count), (dims, shape, starts)
        if int(want.count):
            assert [int(e) for e in got.elem] == [int(e) for e in want.elem], (dims, shape, starts)
