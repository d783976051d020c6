"""Sites and phases: where each node of the model runs, and how many barriers precede it.

A *site* is a node together with everything that holds wherever it executes:
its enclosing loops, lanes regions and branches (the path: ``then`` takes the
condition, ``else`` its negation, early exits included), its position in
program order, and its **phase**: how many grid barriers (and launch
boundaries) the program has passed before the node, an expression (usually a
constant) over the names in scope; likewise its **lane phase**, the lanes
barriers passed since the start of its innermost lanes region.

Phases count barriers as ``(i - lo) * per_iteration`` at the start of
iteration ``i`` of a loop, which is exact only when ``per_iteration`` is the
same in every iteration: :func:`inexact_phase_loops` and
:func:`inexact_lane_phases` name the loops where it is not, and the
obligations that compare phases fail closed there.

How each node kind runs what it contains is said once per kind, by dispatch on its class
(:func:`_blocks`: the blocks it runs and the context in each; :func:`_barriers`: the
barriers it passes; :func:`_binds`: the names it gives a new value).  A node kind with
children that these do not know is an error, never a leaf: its body would get no sites,
and nothing in it would be checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import singledispatch

from ... import shapes
from ...model import Access, Barrier, Branch, Lanes, Loop, Node, walk
from ._decide import INT64_MIN

__all__ = [
    "Site",
    "bound_inside",
    "grid_barriers",
    "inexact_lane_phases",
    "inexact_phase_loops",
    "lane_barriers",
    "loop_range",
    "sites_of",
]

_ZERO = shapes.as_expr(0)


@dataclass(frozen=True)
class Site:
    """A node and what holds where it runs (see the module docstring)."""

    node: Node
    order: int  # position in program order (depth first)
    loops: tuple[Loop, ...]  # enclosing loops, outermost first
    lanes: tuple[Lanes, ...]  # enclosing lanes regions, outermost first
    conds: tuple[shapes.Formula, ...]  # enclosing branch conditions (already negated for else)
    branches: tuple[tuple[Branch, bool], ...]  # enclosing branches and the side taken
    phase: shapes.Expr  # grid barriers passed before the node
    # lanes barriers passed before the node since the start of its innermost lanes region
    lane_phase: shapes.Expr = _ZERO

    @property
    def loc(self):
        return self.node.loc

    @property
    def exits(self) -> tuple[Branch, ...]:
        return tuple(b for b, side in self.branches if b.exit and side)

    def loop_of(self, var: str) -> Loop | None:
        return next((lp for lp in self.loops if lp.var == var), None)


def _unknown_container(node: Node, what: str) -> None:
    """Fail loudly for a node kind that runs a body this module was not told about."""
    if node.children():
        raise NotImplementedError(
            f"the site builder does not know how a {type(node).__name__} {what}: "
            "register it in verify/static/_sites.py"
        )


@singledispatch
def _barriers(node: Node, counts: Callable[[Barrier], bool], into_lanes: bool) -> shapes.Expr:
    """How many barriers that ``counts`` executing ``node`` passes (a leaf: none)."""
    _unknown_container(node, "counts barriers")
    return _ZERO


@_barriers.register
def _(node: Barrier, counts: Callable[[Barrier], bool], into_lanes: bool) -> shapes.Expr:
    return shapes.as_expr(1) if counts(node) else _ZERO


@_barriers.register
def _(node: Loop, counts: Callable[[Barrier], bool], into_lanes: bool) -> shapes.Expr:
    inner = _barrier_count(node.body, counts, into_lanes)  # per iteration, times the trips
    return shapes.maximum(node.hi - node.lo, 0) * inner if inner != 0 else _ZERO


@_barriers.register
def _(node: Branch, counts: Callable[[Barrier], bool], into_lanes: bool) -> shapes.Expr:
    a = _barrier_count(node.then, counts, into_lanes)
    b = _barrier_count(node.orelse, counts, into_lanes)
    return shapes.where(node.cond, a, b) if a != 0 or b != 0 else _ZERO


@_barriers.register
def _(node: Lanes, counts: Callable[[Barrier], bool], into_lanes: bool) -> shapes.Expr:
    return _barrier_count(node.body, counts, into_lanes) if into_lanes else _ZERO


def _barrier_count(nodes: Iterable[Node], counts, into_lanes: bool) -> shapes.Expr:
    """How many barriers that ``counts`` executing ``nodes`` passes (an expression): loops
    multiply by their trip count, branches choose; lanes regions only if ``into_lanes``."""
    total = shapes.as_expr(0)
    for n in nodes:
        got = _barriers(n, counts, into_lanes)
        if got != 0:
            total = total + got
    return total


def grid_barriers(nodes: Iterable[Node]) -> shapes.Expr:
    """How many grid barriers (and launch boundaries) executing ``nodes`` passes."""
    return _barrier_count(nodes, lambda n: n.ends_phase, True)


@singledispatch
def _binds(node: Node) -> set[str]:
    """The names ``node`` gives a new value each time it runs (none for most kinds)."""
    return set()


@_binds.register
def _(node: Loop) -> set[str]:
    return {node.var, *node.carried}


@_binds.register
def _(node: Lanes) -> set[str]:
    return {node.var}


@_binds.register
def _(node: Access) -> set[str]:
    return {node.value} if node.value is not None else set()


def bound_inside(loop: Loop | Lanes) -> set[str]:
    """Names that take a new value in every iteration of ``loop`` (or lane of a lanes
    region): its index, the indices of loops and lanes inside it, and the data it reads (or
    carries) there."""
    out = _binds(loop)
    for n in walk(loop.body):
        out |= _binds(n)
    return out


def inexact_phase_loops(body: list[Node]) -> list[Loop | Lanes]:
    """Loops whose grid barriers per iteration change from one iteration to the next.

    Phases count grid barriers as ``(i - lo) * per_iteration`` at the start of iteration
    ``i``; that is exact only when ``per_iteration`` is the same in every iteration.  A
    barrier in an inner loop of ``i`` iterations (a triangular loop), or under a branch on
    ``i`` or on data read in the loop, breaks it (and, in a lanes region, a count that
    differs from lane to lane): those are returned, and the
    obligations that compare phases (race, coverage) cannot be trusted for the kernel.
    """
    out = []
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (Loop, Lanes)):  # lanes: one count for the program, whichever lane
            inner = grid_barriers(n.body)
            if inner != 0 and inner.free_symbols() & bound_inside(n):
                out.append(n)
        stack.extend(n.children())
    return out


def lane_barriers(nodes: Iterable[Node]) -> shapes.Expr:
    """How many ``lanes`` barriers of the enclosing lanes region executing ``nodes`` passes
    (those of a nested lanes region synchronise its own lanes only: not counted)."""
    return _barrier_count(nodes, lambda n: n.scope == "lanes", False)


@dataclass(frozen=True)
class _Where:
    """What holds where a block of nodes runs: a :class:`Site` without its node and order."""

    loops: tuple[Loop, ...]
    lanes: tuple[Lanes, ...]
    conds: tuple[shapes.Formula, ...]
    branches: tuple[tuple[Branch, bool], ...]
    phase: shapes.Expr
    lane_phase: shapes.Expr


@singledispatch
def _blocks(node: Node, at: _Where) -> list[tuple[list[Node], _Where]]:
    """The blocks ``node`` runs, each with what holds in it (a leaf: none)."""
    _unknown_container(node, "runs its body")
    return []


@_blocks.register
def _(node: Loop, at: _Where) -> list[tuple[list[Node], _Where]]:
    # iteration i starts after (i - lo) iterations' barriers: exact only outside
    # inexact_phase_loops / inexact_lane_phases
    inner = grid_barriers(node.body)
    phase = at.phase + (shapes.sym(node.var) - node.lo) * inner if inner != 0 else at.phase
    linner = lane_barriers(node.body)
    lph = (
        at.lane_phase + (shapes.sym(node.var) - node.lo) * linner if linner != 0 else at.lane_phase
    )
    return [(node.body, replace(at, loops=(*at.loops, node), phase=phase, lane_phase=lph))]


@_blocks.register
def _(node: Branch, at: _Where) -> list[tuple[list[Node], _Where]]:
    then = replace(at, conds=(*at.conds, node.cond), branches=(*at.branches, (node, True)))
    orelse = replace(
        at, conds=(*at.conds, shapes.negate(node.cond)), branches=(*at.branches, (node, False))
    )
    return [(node.then, then), (node.orelse, orelse)]


@_blocks.register
def _(node: Lanes, at: _Where) -> list[tuple[list[Node], _Where]]:
    # a lanes region starts its own lane phases
    return [(node.body, replace(at, lanes=(*at.lanes, node), lane_phase=_ZERO))]


def sites_of(body: list[Node]) -> list[Site]:
    """Every node of ``body`` with its site, in program order (depth first)."""
    out: list[Site] = []

    def visit(nodes: list[Node], at: _Where) -> None:
        for n in nodes:
            out.append(
                Site(
                    n, len(out), at.loops, at.lanes, at.conds, at.branches, at.phase, at.lane_phase
                )
            )
            for block, inner in _blocks(n, at):
                visit(block, inner)
            # the barriers it passed (a lanes region's lanes barriers are its own: none here)
            at = replace(
                at,
                phase=at.phase + grid_barriers([n]),
                lane_phase=at.lane_phase + lane_barriers([n]),
            )

    visit(body, _Where((), (), (), (), _ZERO, _ZERO))
    return out


def inexact_lane_phases(region: Lanes) -> bool:
    """Lane phases count lanes barriers as ``(i - lo) * per_iteration`` in a loop, exact
    only when ``per_iteration`` is the same in every iteration (and every lane): a lanes
    barrier in a triangular loop, or under a branch on a loop index or on data read in the
    loop or on the lane id, breaks it, and no lane ordering is then claimed."""
    stack = list(region.body)
    while stack:
        n = stack.pop()
        if isinstance(n, Lanes):
            continue  # its barriers order its own lanes only
        if isinstance(n, Loop):
            inner = lane_barriers(n.body)
            if inner != 0 and inner.free_symbols() & (bound_inside(n) | {region.var}):
                return True
        stack.extend(n.children())
    return bool(lane_barriers(region.body).free_symbols() & {region.var})


def loop_range(lp: Loop) -> list[shapes.Formula]:
    """``lo <= i < hi`` for the index of ``lp`` (a symbolic ``lo`` also as a literal bound
    ``i >= INT64_MIN``, so that the solver does not give ``i`` its default minimum of 1)."""
    v = shapes.sym(lp.var)
    low = shapes.ge(v, lp.lo.const_value) if lp.lo.is_const else shapes.ge(v, INT64_MIN)
    out = [low, shapes.lt(v, lp.hi)]
    if not lp.lo.is_const:
        out.append(shapes.ge(v, lp.lo))
    return out
