"""Phases (grid barriers passed) inside loops whose barrier count changes per iteration.

Phase numbers are ``(i - lo) * barriers_per_iteration`` only when every iteration passes
the same number of barriers.  A barrier in an inner loop of ``i`` iterations (a
triangular loop), or under a branch on ``i`` or on data read in the loop, breaks that:
race and coverage verdicts that compare phases are then ``unknown``, never proved.  With
a per-iteration count that is the same in every iteration, they stay proved.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static

ONE = jnp.zeros((1,))


def _race(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "race")) if o.kind == "race"]


def _kernel(barriers: str, read_next: bool):
    """Iteration i: program p writes s[i*P + p], passes some grid barriers, then reads a
    neighbour's element: of this iteration, or (``read_next``) of the next one — which the
    neighbour writes in the same phase when iteration i's barriers are the last ones before
    it (a real race, missed when triangular phases were numbered i*i)."""

    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 8", "N <= 8"],
        launch=tp.Launch(cores=8, start="together"),
        tensors=dict(
            t=tp.Input(("N",), "int32", values="0 <= v <= 1"),
            s=tp.Scratch(("(N + 1)*P",)),
            o=tp.Output(("N*P",)),
        ),
    )
    def phases(t, s, o):
        p, P = tp.program_id(0), tp.num_programs(0)

        def outer(i, c):
            tp.store(s, (tp.ds(i * P + p, 1),), ONE)

            def wait(j, c2):
                tp.barrier("grid")
                return c2

            if barriers == "triangular":
                lax.fori_loop(0, i + 1, wait, 0)
            elif barriers == "branch":  # one barrier on even iterations, two on odd ones
                tp.barrier("grid")

                @tp.when(i % 2 == 1)
                def _():
                    tp.barrier("grid")
            elif barriers == "data":
                tp.barrier("grid")

                @tp.when(tp.load(t, (i,)) > 0)
                def _():
                    tp.barrier("grid")
            else:  # two barriers in every iteration
                lax.fori_loop(0, 2, wait, 0)
            nxt = (p + 1) % P
            row = i + 1 if read_next else i
            tp.store(o, (tp.ds(i * P + p, 1),), tp.load(s, (tp.ds(row * P + nxt, 1),)))
            return c

        lax.fori_loop(0, tp.size("N"), outer, 0)

    return phases


@pytest.mark.parametrize("barriers", ["triangular", "branch", "data"])
@pytest.mark.parametrize("read_next", [False, True])
def test_varying_barrier_counts_leave_races_unknown(barriers, read_next):
    obs = _race(_kernel(barriers, read_next))
    assert obs and not any(o.status == "proved" for o in obs), [(o.status, o.message) for o in obs]
    assert all("phases are not modelled exactly" in o.reason for o in obs if o.status == "unknown")


def test_a_constant_barrier_count_keeps_phases_exact():
    obs = _race(_kernel("constant", read_next=False))
    assert [o.status for o in obs] == ["proved", "proved"], [(o.message, o.reason) for o in obs]


def test_a_constant_barrier_count_still_finds_the_cross_iteration_race():
    obs = _race(_kernel("constant", read_next=True))
    assert any(o.status == "violated" and "reads it" in o.message for o in obs), obs


def test_the_loop_is_named():
    from tileproof.verify.static._sites import inexact_phase_loops

    m = lower(_kernel("triangular", read_next=True))
    (lp,) = inexact_phase_loops(m.body)
    assert lp.loc.file.endswith("test_verify_phases.py")
