"""``race``: two programs of one phase never write the same element, nor one what another reads.

Formal statement, for a store ``A`` and an access ``B`` (a store not before
``A``, or any load) of the same tensor, two instances ``x1``, ``x2`` with
their own program ids, lane ids, loop indices, coordinates and data:

    forall sizes, x1, x2.
        Dom /\\ Ctx_A(x1) /\\ Mask_A(x1) /\\ Ctx_B(x2) /\\ Mask_B(x2)
        /\\ e_A(x1) = e_B(x2) /\\ phase_A(x1) = phase_B(x2)
        => pid(x1) = pid(x2) /\\ lane(x1) = lane(x2)  (lanes of a region both are in)

Phases are counted by grid barriers passed (an expression; usually a
constant, so pairs in different phases are never queried).  Accesses by the
same program are ordered by program order and are not races; lanes of one
task-parallel region are concurrent, so they count as different
participants there — unless a ``lanes`` barrier separates the two accesses
(different lane phases of one instance of the region, see
:func:`._context.lane_order`).  Reads of one input-tensor entry agree across instances
(functional consistency), the only link between their data values.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access
from ...report import Obligation
from ...report._keys import element_items
from ._context import Analysis, Answer, Site, all_eq
from ._order import lane_order
from ._pairs import pair

__all__ = ["check"]

_INCOMPLETE = "refuted, but no complete counterexample could be re-checked for the message"


def check(an: Analysis) -> list[Obligation]:
    out = []
    written = {
        s.node.tensor for s in an.sites if isinstance(s.node, Access) and s.node.kind == "store"
    }
    for name in written:
        accs = [s for s in an.sites if isinstance(s.node, Access) and s.node.tensor == name]
        for a in accs:
            if a.node.kind != "store":
                continue
            others = [b for b in accs if b.node.kind == "load" or b.order >= a.order]
            out.append(_store(an, a, others))
    out.sort(key=lambda o: (str(o.location.file), o.location.line))
    return out


def _store(an: Analysis, a: Site, others: list[Site]) -> Obligation:
    t0 = time.perf_counter()
    acc: Access = a.node
    title = f"store {acc.tensor} at {acc.loc.short} races with no other program"
    answers = []
    for b in others:
        pa, pb = a.phase, b.phase
        if pa.is_const and pb.is_const and pa != pb:
            continue
        i1, i2, hyps = pair(an, a, b)
        hyps.append(shapes.eq(i1(pa), i2(pb)))
        lanes = [ln.var for ln in a.lanes if any(ln is m for m in b.lanes)]
        same = all_eq([i1(shapes.sym(p)) for p in an.pids], [i2(shapes.sym(p)) for p in an.pids])
        q = shapes.conj(
            same,
            shapes.disj(
                all_eq([i1(shapes.sym(v)) for v in lanes], [i2(shapes.sym(v)) for v in lanes]),
                lane_order(an, a, i1, b, i2, strict=False),
            ),
        )
        assume = an.assume(hyps, query=q)
        ans = an.decide(q, assume)
        if ans.status == "refuted":
            cex = an.complete(
                q,
                assume,
                an.minimise(q, assume, ans.cex),
                [i1(x) for x in acc.element()] + [i1(pa)],
            )
            if cex is None:  # every value a message shows comes from a re-checked assignment
                answers.append(Answer("unknown", reason=_INCOMPLETE))
                continue
            sizes, (x1, x2) = an.split(cex, "1", "2")
            el = [x.subs(i1.mapping).evaluate(cex) for x in acc.element()]
            phase = i1(pa).evaluate(cex)
            verb = "writes" if b.node.kind == "store" else "reads"
            text = (
                f"{an.who(x1)} writes element {el} of {acc.tensor} at {acc.loc.short} while "
                f"{an.who(x2)} {verb} it at {b.loc.short}, both in phase {phase}, "
                f"when {an.show(sizes)}"
            )
            cx = an.primed(sizes, [x1, x2])
            cx.update(element_items(el))
            return an.obligation(
                "race",
                a,
                title,
                ans,
                violated=text,
                cex=cx,
                t0=t0,
                detail={"element": el, "other": str(b.loc), "phase": phase},
                hint="Separate the accesses with a grid barrier, or make the "
                "programs' tiles disjoint.",
            )
        answers.append(ans)
    bad = next((x for x in answers if x.status != "proved"), None)
    return an.obligation("race", a, title, bad or Answer("proved"), t0=t0)
