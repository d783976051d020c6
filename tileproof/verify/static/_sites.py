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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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


def _barrier_count(nodes: Iterable[Node], counts, into_lanes: bool) -> shapes.Expr:
    """How many barriers that ``counts`` executing ``nodes`` passes (an expression): loops
    multiply by their trip count, branches choose; lanes regions only if ``into_lanes``."""
    total = shapes.as_expr(0)
    for n in nodes:
        if isinstance(n, Barrier):
            if counts(n):
                total = total + 1
        elif isinstance(n, Loop):
            inner = _barrier_count(n.body, counts, into_lanes)
            if inner != 0:
                total = total + shapes.maximum(n.hi - n.lo, 0) * inner
        elif isinstance(n, Branch):
            a = _barrier_count(n.then, counts, into_lanes)
            b = _barrier_count(n.orelse, counts, into_lanes)
            if a != 0 or b != 0:
                total = total + shapes.where(n.cond, a, b)
        elif isinstance(n, Lanes) and into_lanes:
            total = total + _barrier_count(n.body, counts, into_lanes)
    return total


def grid_barriers(nodes: Iterable[Node]) -> shapes.Expr:
    """How many grid barriers (and launch boundaries) executing ``nodes`` passes."""
    return _barrier_count(nodes, lambda n: n.ends_phase, True)


def bound_inside(loop: Loop | Lanes) -> set[str]:
    """Names that take a new value in every iteration of ``loop`` (or lane of a lanes
    region): its index, the indices of loops and lanes inside it, and the data it reads (or
    carries) there."""
    out = {loop.var, *getattr(loop, "carried", ())}
    for n in walk(loop.body):
        if isinstance(n, (Loop, Lanes)):
            out.add(n.var)
            out.update(getattr(n, "carried", ()))
        elif isinstance(n, Access) and n.value is not None:
            out.add(n.value)
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


def sites_of(body: list[Node]) -> list[Site]:
    """Every node of ``body`` with its site, in program order (depth first)."""
    out: list[Site] = []

    def walk(nodes, loops, lanes, conds, branches, phase, lph):
        for n in nodes:
            out.append(Site(n, len(out), loops, lanes, conds, branches, phase, lph))
            if isinstance(n, Loop):
                inner = grid_barriers(n.body)  # exact only outside inexact_phase_loops
                start = phase + (shapes.sym(n.var) - n.lo) * inner if inner != 0 else phase
                linner = lane_barriers(n.body)
                lstart = lph + (shapes.sym(n.var) - n.lo) * linner if linner != 0 else lph
                walk(n.body, (*loops, n), lanes, conds, branches, start, lstart)
            elif isinstance(n, Branch):
                walk(n.then, loops, lanes, (*conds, n.cond), (*branches, (n, True)), phase, lph)
                walk(
                    n.orelse,
                    loops,
                    lanes,
                    (*conds, shapes.negate(n.cond)),
                    (*branches, (n, False)),
                    phase,
                    lph,
                )
            elif isinstance(n, Lanes):
                walk(n.body, loops, (*lanes, n), conds, branches, phase, shapes.as_expr(0))
            phase = phase + grid_barriers([n])
            if not isinstance(n, Lanes):
                lph = lph + lane_barriers([n])

    walk(body, (), (), (), (), shapes.as_expr(0), shapes.as_expr(0))
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
