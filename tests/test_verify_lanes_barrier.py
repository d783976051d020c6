"""A ``lanes`` barrier orders the accesses of two lanes of one program (issue 10, class 12).

Two lanes exchange tiles through scratch: each writes its half, waits at a lanes barrier,
and reads the other lane's half.  With the barrier that is no race and no read of an
unwritten element; without it, it is both.  In a loop the exchange needs a second barrier
(before the next iteration overwrites what the other lane may still read).
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof import shapes
from tileproof.lowering import lower
from tileproof.verify.static import check_static

TENSORS = dict(x=tp.Input(("P*16",)), s=tp.Scratch(("P*16",)), y=tp.Output(("P*16",)))


def _exchange(barrier: bool):
    @tp.kernel(grid={"p": "P"}, assume=["P <= 4096"], tensors=dict(TENSORS))
    def exchange(x, s, y):
        p = tp.program_id(0)
        with tp.lanes(2) as lane:
            mine, other = tp.ds(p * 16 + lane * 8, 8), tp.ds(p * 16 + (1 - lane) * 8, 8)
            tp.store(s, (mine,), tp.load(x, (mine,)))
            if barrier:
                tp.barrier("lanes")
            tp.store(y, (mine,), tp.load(s, (other,)))

    return exchange


def _looped(barriers: int):
    """M rounds of the exchange, accumulated; ``barriers``: 2 (correct), 1 (the next round
    overwrites the half the other lane is still reading), 0."""

    @tp.kernel(grid={"p": "P"}, assume=["P <= 4096", "M <= 64"], tensors=dict(TENSORS))
    def looped(x, s, y):
        p, M = tp.program_id(0), tp.size("M")
        with tp.lanes(2) as lane:
            mine, other = tp.ds(p * 16 + lane * 8, 8), tp.ds(p * 16 + (1 - lane) * 8, 8)

            def round_(j, acc):
                tp.store(s, (mine,), tp.load(x, (mine,)) * j)
                if barriers >= 1:
                    tp.barrier("lanes")
                got = tp.load(s, (other,))
                if barriers >= 2:
                    tp.barrier("lanes")
                return acc + got

            acc = lax.fori_loop(0, M, round_, jnp.zeros((8,)))
            tp.store(y, (mine,), acc)

    return looped


def _by_kind(kernel) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for o in check_static(lower(kernel), kinds=("shape", "race", "coverage", "barrier")):
        out.setdefault(o.kind, set()).add(o.status)
    return out


def test_exchange_across_a_lanes_barrier_is_proved():
    got = _by_kind(_exchange(True))
    assert got["race"] == {"proved"} and got["coverage"] == {"proved"}, got


def test_exchange_without_the_barrier_races_and_reads_unwritten():
    got = _by_kind(_exchange(False))
    assert "violated" in got["race"] and "violated" in got["coverage"], got


def test_looped_exchange_with_both_barriers_is_proved():
    got = _by_kind(_looped(2))
    assert got["race"] == {"proved"} and got["coverage"] == {"proved"}, got


@pytest.mark.parametrize("barriers", [0, 1])
def test_looped_exchange_missing_a_barrier_races(barriers):
    got = _by_kind(_looped(barriers))
    assert "violated" in got["race"], got


@pytest.mark.parametrize("barrier", [True, False])
def test_the_concrete_run_orders_lanes_by_their_barriers(barrier):
    """The concrete fallback (used where no witness exists) runs lanes one after the other;
    it must still see lane 0 read lane 1's half only across the barrier."""
    from tileproof.verify.static._confirm import run_events as _events
    from tileproof.verify.static._confirm import unwritten_reads as _unwritten_reads
    from tileproof.verify.static._context import Analysis

    an = Analysis(lower(_exchange(barrier)))
    load = next(
        s.node for s in an.sites if getattr(s.node, "kind", "") == "load" and s.node.tensor == "s"
    )
    unwritten = _unwritten_reads(load, _events(an, {"P": 2}))
    assert (unwritten == []) is barrier, unwritten


def _uneven(parity: bool):
    """Rounds of the exchange; ``parity``: the barrier only on even rounds (its count per
    round varies), else on every round."""

    @tp.kernel(grid={"p": "P"}, assume=["P <= 4096", "M <= 64"], tensors=dict(TENSORS))
    def uneven(x, s, y):
        p, M = tp.program_id(0), tp.size("M")
        with tp.lanes(2) as lane:
            mine, other = tp.ds(p * 16 + lane * 8, 8), tp.ds(p * 16 + (1 - lane) * 8, 8)

            def round_(j, acc):
                tp.store(s, (mine,), tp.load(x, (mine,)) * j)

                @tp.when((j % 2 == 0) if parity else (M > 0))
                def _():
                    tp.barrier("lanes")

                return acc + tp.load(s, (other,))

            tp.store(y, (mine,), lax.fori_loop(0, M, round_, jnp.zeros((8,))))

    return uneven


@pytest.mark.parametrize("parity", [True, False])
def test_a_lanes_barrier_count_that_varies_per_iteration_orders_nothing(parity):
    """Lane phases count ``(j - lo) * per_iteration``: wrong when the count per round
    depends on the round.  Then no lane ordering is claimed at all (fail closed)."""
    from tileproof.verify.static._context import Analysis
    from tileproof.verify.static._order import lane_order
    from tileproof.verify.static._sites import inexact_lane_phases

    an = Analysis(lower(_uneven(parity)))
    region = next(s.node for s in an.sites if type(s.node).__name__ == "Lanes")
    assert inexact_lane_phases(region) is parity
    store, load = (
        next(
            s
            for s in an.sites
            if getattr(s.node, "kind", "") == k and getattr(s.node, "tensor", "") == "s"
        )
        for k in ("store", "load")
    )
    w, r = an.instance(store, "w"), an.instance(load, "r")
    ordered = lane_order(an, store, w, load, r, strict=True)
    assert (ordered == shapes.disj()) is parity
