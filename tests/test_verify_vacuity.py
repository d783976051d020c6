"""Vacuity: an obligation at a site that no admissible values reach is never counted proved.

Each access site's context (domain, grid ranges, loop ranges, branch conditions) is checked
for satisfiability once; where it admits nothing, the site's obligations are ``unknown``
with the reason "its premises admit no program/size: vacuous".  Reachable twins stay proved.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static

VACUOUS = "its premises admit no program/size: vacuous"


def _obs(kernel):
    return check_static(lower(kernel))


def _at(obs, line_text):
    return [o for o in obs if line_text in o.message]


def _grid(extent: str):
    """One tile of 128 per program; with N <= 64, `N // 128` programs is none at all."""

    @tp.kernel(
        grid={"i": extent},
        assume=["N <= 64"],
        tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    )
    def grid(x, y):
        i = tp.program_id(0)
        m = i * 128 + jnp.arange(128) < tp.size("N")
        tp.store(y, (tp.ds(i * 128, 128),), tp.load(x, (tp.ds(i * 128, 128),), mask=m), mask=m)

    return grid


def test_an_empty_grid_proves_nothing():
    obs = _obs(_grid("N // 128"))
    site = [o for o in obs if o.kind in ("bounds", "overflow", "race")]
    assert site and all(o.status == "unknown" and o.reason == VACUOUS for o in site), site
    assert not any(o.status == "proved" and o.kind == "bounds" for o in obs)


def test_a_grid_that_runs_is_proved():
    obs = _obs(_grid("cdiv(N, 128)"))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def _branch(cond: str):
    @tp.kernel(
        grid={"i": "N"},
        assume=["N <= 64"],
        tensors=dict(x=tp.Input(("N + 8",)), y=tp.Output(("N + 8",))),
    )
    def branch(x, y):
        i, n = tp.program_id(0), tp.size("N")
        tp.store(y, (tp.ds(i, 1),), tp.load(x, (tp.ds(i, 1),)))

        @tp.when(i >= n if cond == "dead" else i >= n - 8)
        def _():
            tp.store(y, (tp.ds(i + 8, 1),), tp.load(x, (tp.ds(i + 8, 1),)))  # MARK-branch

    return branch


def test_an_access_under_an_impossible_branch_is_unknown():
    obs = _obs(_branch("dead"))
    dead = _at(obs, "ds(i + 8, 1)")
    assert dead and all(o.status == "unknown" and o.reason == VACUOUS for o in dead), dead
    live = _at(obs, "ds(i, 1)")
    assert live and all(o.status == "proved" for o in live)


def test_an_access_under_a_possible_branch_is_proved():
    obs = _obs(_branch("live"))
    assert all(o.status == "proved" for o in obs if o.kind != "coverage"), [
        (o.message, o.reason) for o in obs if o.status != "proved"
    ]


def _loop(hi: str):
    @tp.kernel(
        grid={"b": 1},
        assume=["N <= 64"],
        tensors=dict(x=tp.Input(("N",)), y=tp.Input(("N",), updated=True)),
    )
    def loop(x, y):
        def body(j, c):
            tp.store(y, (tp.ds(j, 1),), tp.load(x, (tp.ds(j, 1),)))
            return c

        lax.fori_loop(0, tp.size("N") if hi == "N" else tp.size("N") - 64, body, 0)

    return loop


def test_a_loop_that_never_runs_is_unknown():
    obs = [o for o in _obs(_loop("N - 64")) if o.kind == "bounds"]
    assert obs and all(o.status == "unknown" and o.reason == VACUOUS for o in obs)


def test_a_loop_that_runs_is_proved():
    obs = _obs(_loop("N"))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_vacuity_is_one_query_per_context():
    """Every obligation of one site shares one reachability query (cached)."""
    from tileproof.verify.static import _shape
    from tileproof.verify.static._context import Analysis

    an = Analysis(lower(_branch("dead")))
    _shape.check(an)  # establishes that the domain admits sizes, as check_static does
    sites = [s for s in an.sites if s.node.__class__.__name__ == "Access"]
    first = [an.reachable(s).status for s in sites]
    n = len(an._reach)
    assert [an.reachable(s).status for s in sites] == first and len(an._reach) == n
    assert first.count("proved") == 2 and first.count("refuted") == 2
