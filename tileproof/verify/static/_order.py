"""Orderings between two instances: what happens before what, for races and reads.

Two accesses are ordered when the schedule forces one before the other in
every execution: an earlier phase (grid barriers passed), program order within
one program, or a ``lanes`` barrier between two lanes of one program.  Each
ordering is an under-approximation: where phases are not exact
(:func:`._sites.inexact_lane_phases`) no lanes ordering is claimed, so a race
or an unwritten read is never hidden by an ordering that does not hold.
"""

from __future__ import annotations

from ... import shapes
from ._context import Analysis, Instance, all_eq
from ._sites import Site, inexact_lane_phases

__all__ = ["before", "lane_order"]

F = shapes.disj()


def lane_order(
    an: Analysis, a: Site, x: Instance, b: Site, y: Instance, strict: bool
) -> shapes.Formula:
    """Lanes barriers order instance ``x`` of ``a`` against instance ``y`` of ``b`` (two lanes
    of one program, whose ids the caller equates): both in one instance of the same innermost
    lanes region (its enclosing loops at equal indices) and separated by a lanes barrier —
    ``x`` first when ``strict`` (lane phase of ``x`` below ``y``'s), else in either order.
    False where the regions differ: no ordering is claimed (fail closed).  That the lanes
    reach the barriers alike is the ``barrier`` obligation's part."""
    if not a.lanes or not b.lanes or a.lanes[-1] is not b.lanes[-1]:
        return F
    if a.lane_phase == 0 and b.lane_phase == 0:
        return F
    if inexact_lane_phases(a.lanes[-1]):
        return F
    region = an.by_node[id(a.lanes[-1])]
    outer = [shapes.sym(lp.var) for lp in region.loops]
    same = all_eq([x(v) for v in outer], [y(v) for v in outer])
    pa, pb = x(a.lane_phase), y(b.lane_phase)
    return shapes.conj(same, shapes.lt(pa, pb) if strict else shapes.ne(pa, pb))


def before(an: Analysis, s: Site, w: Instance, ld: Site, r: Instance) -> shapes.Formula:
    """The store instance ``w`` of ``s`` happens before the load instance ``r`` of ``ld``."""
    earlier = shapes.lt(w(s.phase), r(ld.phase))
    ids = list(an.pids) + ([an.rank_var] if an.rank_var and an.rank_var not in an.extents else [])
    lanes = [ln.var for ln in s.lanes if any(ln is m for m in ld.lanes)]
    same_prog = all_eq([w(shapes.sym(p)) for p in ids], [r(shapes.sym(p)) for p in ids])
    same = shapes.conj(
        same_prog, all_eq([w(shapes.sym(v)) for v in lanes], [r(shapes.sym(v)) for v in lanes])
    )
    common = [lp.var for lp in s.loops if any(lp is m for m in ld.loops)]
    ws = [w(shapes.sym(v)) for v in common]
    rs = [r(shapes.sym(v)) for v in common]
    lex = [shapes.conj(all_eq(ws[:j], rs[:j]), shapes.lt(ws[j], rs[j])) for j in range(len(ws))]
    if s.order < ld.order:
        lex.append(all_eq(ws, rs))
    program_order = shapes.conj(shapes.eq(w(s.phase), r(ld.phase)), same, shapes.disj(*lex))
    # another lane of the same program, before a lanes barrier the reader has passed
    lane_barrier = shapes.conj(
        shapes.eq(w(s.phase), r(ld.phase)), same_prog, lane_order(an, s, w, ld, r, strict=True)
    )
    return shapes.disj(earlier, program_order, lane_barrier)
