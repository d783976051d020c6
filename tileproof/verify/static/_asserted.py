"""A front end's rules (:class:`~tileproof.model.Assert`): a condition that must hold where reached.

For every ``Assert`` node of the selected kind:
``forall sizes, ids, loop indices, data. Dom /\\ scope => cond``.

The Pallas TPU front end states a DMA's ordering this way (``tileproof/pallas/_dma.py``):
the destination of an in-flight copy is neither read (``coverage``) nor written, nor the
destination of a second copy (``race``), a wait has a copy to wait for, and the destination
slice of a copy whose wait is not followed lies in its array (``bounds``).  A refutation
is substituted back -- every fact of its premise and the negated condition re-evaluated at
the assignment -- before it is reported; one that does not re-evaluate is ``unknown``.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access, Assert
from ...report import Obligation
from ._context import Analysis, all_eq, implies

__all__ = ["BOUNDS", "COVERAGE", "RACE"]


class _Kind:
    """The asserted rules of one obligation kind (registered in ``_check._EXTRA``)."""

    def __init__(self, kind: str):
        self.kind = kind

    def check(self, an: Analysis) -> list[Obligation]:
        return [_one(an, s) for s in an.sites if _is(s.node, self.kind)]


def _is(node, kind: str) -> bool:
    return isinstance(node, Assert) and node.kind == kind


BOUNDS = _Kind("bounds")
COVERAGE = _Kind("coverage")
RACE = _Kind("race")


def _holds(f: shapes.Formula, env: dict) -> bool | None:
    try:
        return bool(f.evaluate(env))
    except (KeyError, ZeroDivisionError, shapes.ShapeError):
        return None


def _consistency(an: Analysis, formulas) -> list[shapes.Formula]:
    """Two reads of one entry of a tensor the kernel never stores to agree (the same table
    entry read for a copy's start and again for a later access); a tensor it stores to may
    change between the reads, so its reads stay independent (more behaviours: still sound)."""
    stored = {n.tensor for n in an.model.walk() if isinstance(n, Access) and n.kind == "store"}
    names: set[str] = set()
    for f in formulas:
        names |= f.free_symbols()
    by: dict[str, list] = {}
    for n in sorted(names):
        d = an.data.get(n)
        if d is not None and d.tensor not in stored:
            by.setdefault(d.tensor, []).append((n, tuple(d.index)))
    out = []
    for items in by.values():
        for i, (n1, i1) in enumerate(items):
            for n2, i2 in items[i + 1 :]:
                if len(i1) == len(i2) and i1:
                    out.append(implies(all_eq(i1, i2), shapes.eq(shapes.sym(n1), shapes.sym(n2))))
    return out


def _one(an: Analysis, site) -> Obligation:
    t0 = time.perf_counter()
    node: Assert = site.node
    det = {"tensor": node.tensor} if node.tensor else {}
    scope = an.scope(site)
    scope += _consistency(an, [*scope, node.cond])
    assume = an.assume(scope, query=node.cond)
    ans = an.decide(node.cond, assume)
    ob = an.obligation(node.kind, site, node.what, ans, t0=t0, hint=node.hint, detail=det)
    if ans.status != "refuted":
        return ob
    cex = an.complete(node.cond, assume, an.minimise(node.cond, assume, ans.cex), [node.cond])
    # substituted back: the premise holds and the condition fails at this very assignment
    if (
        cex is None
        or _holds(node.cond, cex) is not False
        or any(_holds(f, cex) is not True for f in assume)
    ):
        ob.status, ob.counterexample = "unknown", None
        ob.reason = "the solver's counterexample does not re-evaluate to a violation"
        ob.message = node.what
        return ob
    shown = an.relevant(cex, *[f for f in scope if f is not None], node.cond)
    ob.message = f"{node.broken or 'not so: ' + node.what} when {an.show(shown)}"
    ob.counterexample = shown
    return ob
