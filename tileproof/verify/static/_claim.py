"""``shape``: a divisibility claim the kernel states holds (``pl.multiple_of(x, m)``).

For every :class:`~tileproof.model.Claim` node:
``forall sizes, ids, loop indices, coordinates, data. Dom /\\ scope => expr % m == 0``.

A compiler acts on such a hint without checking it (Triton attaches divisibility
attributes and vectorises accordingly), so a false claim is undefined behaviour even
when every access is in bounds.  The model never *uses* the claimed fact: the value is
kept exactly, so the other obligations do not lean on an unproved claim.  A refutation
is re-evaluated on the claimed expression before it is reported.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Claim
from ...report import Obligation
from ._context import Analysis
from ._explain import plain

__all__ = ["check"]


def _coords(node: Claim) -> list[shapes.Formula]:
    out = []
    for k, n in enumerate(node.shape):
        c = shapes.sym(f"_c{k}")
        out += [shapes.ge(c, 0), shapes.lt(c, n)]
    return out


def check(an: Analysis) -> list[Obligation]:
    out = []
    for site in an.sites:
        node = site.node
        if not isinstance(node, Claim):
            continue
        t0 = time.perf_counter()
        m = node.modulus
        expr = plain(node.expr, an)
        title = f"{node.what} holds: {expr} is a multiple of {m}"
        if m == 0:  # x % 0 is undefined: no value is a multiple of 0 in Triton's sense
            out.append(
                Obligation(
                    "shape",
                    "violated",
                    f"{node.what}: a multiple of 0 is claimed",
                    node.loc,
                    counterexample={},
                )
            )
            continue
        query = shapes.eq(shapes.mod(node.expr, m), 0)
        scope = an.scope(site) + _coords(node)
        assume = an.assume(scope, query=query)
        ans = an.decide(query, assume)
        ob = an.obligation(
            "shape",
            site,
            title,
            ans,
            t0=t0,
            hint=f"Claim only what holds for every admissible size, or add the "
            f"assumption that makes {expr} a multiple of {m}.",
        )
        if ans.status == "refuted":
            cex = an.minimise(query, assume, ans.cex)
            value = node.expr.evaluate(cex)  # substituted back: the claim is false there
            if value % m == 0:
                ob.status, ob.counterexample = "unknown", None
                ob.reason = "the solver's counterexample does not re-evaluate to a violation"
                ob.message = title
            else:
                shown = an.relevant(cex, node.expr)
                at = "".join(
                    f", lane {k}={cex[f'_c{k}']}" for k in range(len(node.shape)) if f"_c{k}" in cex
                )
                ob.message = (
                    f"{node.what} is false: {expr} = {value}, not a multiple of "
                    f"{m}, when {an.show(shown)}{at}"
                )
                ob.counterexample = shown
        out.append(ob)
    return out
