"""Static ``barrier``: every participant reaches every barrier alike; all fit on the machine."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static

TENSORS = dict(x=tp.Input(("P*8", 128)), s=tp.Scratch(("P*8", 128)), y=tp.Output(("P*8", 128)))
MACHINE = tp.Launch(cores=64, start="together")


def _barrier(kernel):
    return [
        o for o in check_static(lower(kernel), kinds=("shape", "barrier")) if o.kind == "barrier"
    ]


def _uniform(obs):
    return [o for o in obs if "reach" in o.message or "skips" in o.message]


def _stage(x, s, p):
    tp.store(s, (tp.ds(p * 8, 8), slice(None)), tp.load(x, (tp.ds(p * 8, 8), slice(None))))


@tp.kernel(grid={"p": "P"}, assume=["P <= 64"], tensors=TENSORS, launch=MACHINE)
def under_when(x, s, y):
    p = tp.program_id(0)
    _stage(x, s, p)

    @tp.when(p == 0)
    def _():
        tp.barrier("grid")

    tp.store(y, (tp.ds(p * 8, 8), slice(None)), tp.load(s, (tp.ds(p * 8, 8), slice(None))))


@tp.kernel(grid={"p": "P"}, assume=["P <= 64"], tensors=TENSORS, launch=MACHINE)
def early_return(x, s, y):
    p = tp.program_id(0)
    _stage(x, s, p)
    tp.exit_if(p != 0)
    tp.barrier("grid")
    tp.store(y, (tp.ds(p * 8, 8), slice(None)), tp.load(s, (tp.ds(p * 8, 8), slice(None))))


def _looped(trips_depend_on_program: bool):
    @tp.kernel(grid={"p": "P"}, assume=["P <= 64"], tensors=TENSORS, launch=MACHINE)
    def looped(x, s, y):
        p = tp.program_id(0)
        _stage(x, s, p)

        def body(i, acc):
            tp.barrier("grid")
            return acc

        lax.fori_loop(0, p + 1 if trips_depend_on_program else 3, body, 0)
        tp.store(y, (tp.ds(p * 8, 8), slice(None)), tp.load(s, (tp.ds(p * 8, 8), slice(None))))

    return looped


@tp.kernel(grid={"p": "P"}, assume=["P <= 64"], tensors=TENSORS, launch=MACHINE)
def uniform_exit(x, s, y):
    p = tp.program_id(0)
    _stage(x, s, p)
    tp.exit_if(tp.size("P") > 32)  # every program leaves alike
    tp.barrier("grid")
    tp.store(y, (tp.ds(p * 8, 8), slice(None)), tp.load(s, (tp.ds(p * 8, 8), slice(None))))


@tp.kernel(grid={"p": "P"}, assume=["P <= 64"], tensors=TENSORS, launch=MACHINE)
def lane_barrier(x, s, y):
    p = tp.program_id(0)
    with tp.lanes(2) as lane:

        @tp.when(lane == 0)
        def _():
            tp.barrier("lanes")

    _stage(x, s, p)


def _fused(start: str, fenced: bool):
    """24 programs, one per core, with a grid barrier; zero-fill tasks may run alongside."""

    @tp.kernel(
        grid={"core": 24},
        tensors=dict(
            x=tp.Input((24 * 8, 128)), s=tp.Scratch((24 * 8, 128)), y=tp.Output((24 * 8, 128))
        ),
        launch=tp.Launch(
            cores=24, start=start, concurrent=(tp.Task("zero_fill", programs=3, fenced=fenced),)
        ),
    )
    def fused(x, s, y):
        core = tp.program_id(0)
        _stage(x, s, core)
        tp.barrier("grid")
        nxt = (core + 1) % 24
        tp.store(
            y,
            (tp.ds(core * 8, 8), slice(None)),
            tp.load(s, (tp.ds(nxt * 8, 8), slice(None))) * jnp.float32(2),
        )

    return fused


# -------------------------------------------------------------------------------- tests


def test_barrier_under_when_program_zero_diverges():
    (ob,) = _uniform(_barrier(under_when))
    assert ob.status == "violated"
    cx = ob.counterexample
    assert cx["p"] == 0 and cx["p'"] != 0  # p reaches it, p' skips it
    skipper = cx["p'"]
    assert f"program p={skipper} skips the grid barrier" in ob.message
    assert "p == 0" in ob.message and ob.location.line > 0


def test_early_return_before_a_barrier_diverges():
    (ob,) = _uniform(_barrier(early_return))
    assert ob.status == "violated"
    assert "left early" in ob.message
    assert ob.counterexample["p"] == 0 and ob.counterexample["p'"] != 0


def test_barrier_in_a_loop_with_a_program_dependent_trip_count_diverges():
    (ob,) = _uniform(_barrier(_looped(True)))
    assert ob.status == "violated"
    cx = ob.counterexample
    it = next(v for k, v in cx.items() if k.startswith("iteration"))
    assert it < cx["p"] + 1 and it >= cx["p'"] + 1  # p runs iteration it, p' does not
    assert "runs only" in ob.message


def test_barrier_in_a_uniform_loop_is_proved():
    obs = _barrier(_looped(False))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_an_exit_every_program_takes_alike_is_not_divergence():
    obs = _barrier(uniform_exit)
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_lanes_barrier_under_a_lane_condition_diverges():
    (ob,) = _uniform(_barrier(lane_barrier))
    assert ob.status == "violated" and "lane" in ob.message


def test_wave_launch_next_to_an_unfenced_task_cannot_hold_24_programs():
    obs = _barrier(_fused("waves", fenced=False))
    res = [o for o in obs if "resident" in o.message]
    assert res and res[0].status == "violated"
    cx = res[0].counterexample
    assert cx["programs"] == 24 and cx["cores"] == 24 and cx["busy"] == 3
    assert cx["programs"] > cx["cores"] - cx["busy"]
    assert "zero_fill" in res[0].message and "24 - 3 = 21" in res[0].message


def test_launching_together_or_fencing_the_task_is_proved():
    for start, fenced in (("together", False), ("waves", True)):
        obs = _barrier(_fused(start, fenced))
        assert all(o.status == "proved" for o in obs), (start, fenced, [o.message for o in obs])


# ------------------------------------------------------------------------ launch boundaries


def _two_launches(*, scope: str = "launch", reads_other_rows: bool = True):
    """Launch 1 fills a scratch in 8-row tiles; launch 2 (the same grid) reads the tile of
    the *next* program, which only a phase boundary orders after its write."""

    @tp.kernel(grid={"p": "P"}, assume=["P <= 4096"], tensors=TENSORS)
    def two_launches(x, s, y):
        p, P = tp.program_id(0), tp.size("P")
        _stage(x, s, p)
        if scope:
            tp.barrier(scope)
        q = (p + 1) % P if reads_other_rows else p
        tp.store(y, (tp.ds(p * 8, 8), slice(None)), tp.load(s, (tp.ds(q * 8, 8), slice(None))))

    return two_launches


def test_launch_boundary_has_no_barrier_obligation():
    obs = check_static(lower(_two_launches()))
    assert not [o for o in obs if o.kind == "barrier"], [o.message for o in obs]
    assert all(o.status == "proved" for o in obs), [(o.kind, o.message, o.reason) for o in obs]
    assert "barrier(launch)" in lower(_two_launches()).listing()


def test_grid_barrier_without_a_machine_is_unknown_but_a_launch_boundary_needs_none():
    """Residency cannot be proved without a machine model, and nobody asked to skip it:
    unknown, with the remedy as the reason (fail closed)."""
    grid = [o for o in check_static(lower(_two_launches(scope="grid"))) if o.kind == "barrier"]
    (res,) = [o for o in grid if "resident" in o.message]
    assert res.status == "unknown" and "no machine model: declare launch=tp.Launch(" in res.reason
    assert not any(o.status == "skipped" for o in grid)


def test_without_the_launch_boundary_the_next_tile_is_read_unwritten_or_raced():
    obs = check_static(lower(_two_launches(scope="")), kinds=("shape", "coverage", "race"))
    bad = [o for o in obs if o.status == "violated"]
    assert {o.kind for o in bad} == {"coverage", "race"}, [(o.kind, o.message) for o in obs]


def test_launch_boundary_must_be_at_the_top_level():
    import pytest

    @tp.kernel(grid={"p": "P"}, assume=["P <= 64"], tensors=TENSORS)
    def nested(x, s, y):
        p = tp.program_id(0)

        @tp.when(p == 0)
        def _():
            tp.barrier("launch")

    with pytest.raises(tp.SpecError, match="top level"):
        lower(nested)

    @tp.kernel(grid={"p": "P"}, assume=["P <= 64"], tensors=TENSORS)
    def after_exit(x, s, y):
        tp.exit_if(tp.program_id(0) > 0)
        tp.barrier("launch")

    with pytest.raises(tp.SpecError, match="exit_if"):
        lower(after_exit)
    with pytest.raises(tp.SpecError, match="'launch'"):
        tp.barrier("device")
