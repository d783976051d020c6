"""``bounds`` of stored index values: what a kernel writes into an index tensor lies in the
range the tensor declares.

Reads of an index tensor trust its ``values=`` range (a page table's entries are valid
pages).  When the kernel itself writes such a tensor (an ``updated`` input, an output or
scratch another stage reads back), that trust is earned only if every store keeps the
range.  Formal statement, for every store ``s`` of value ``x(c)`` into tensor ``t``:

    forall sizes, ids, i, c, data.
        Dom /\\ Ctx(s) /\\ 0 <= c < tile /\\ Mask(s) => values_t(x(c))

A stored value the lowering cannot model (a float computation cast to int, a gathered
tile) makes the obligation ``unknown``, never ``proved``.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access
from ...report import Obligation
from ...report._keys import with_quantities
from ._context import Analysis, Answer, Site
from ._explain import plain

__all__ = ["check"]


def check(an: Analysis) -> list[Obligation]:
    out = []
    for site in an.sites:
        node = site.node
        if not isinstance(node, Access) or node.kind != "store":
            continue
        decl = an.model.tensors.get(node.tensor)
        if decl is None or getattr(decl, "values", None) is None or not decl.is_index:
            continue
        out.append(_store(an, site, decl))
    return out


def _store(an: Analysis, site: Site, decl) -> Obligation:
    t0 = time.perf_counter()
    acc: Access = site.node
    rng = decl.values
    title = f"store into {acc.tensor} at {acc.loc.short} writes values in its declared range {rng}"
    if acc.stored is None:
        why = acc.stored_why or "a value the lowering cannot model"
        return an.obligation(
            "bounds",
            site,
            title,
            Answer("unknown", reason=f"the stored value is not modelled: it depends on {why}"),
            t0=t0,
            hint="Compute index values with integer arithmetic on ids, sizes and loaded "
            "index values, so the verifier can check them.",
        )
    q = rng.subs({"v": acc.stored})
    scope = an.scope(site) + an.coords(acc) + ([acc.mask] if acc.mask is not None else [])
    assume = an.assume(scope, query=q)
    ans = an.decide(q, assume)
    if ans.status != "refuted":
        return an.obligation("bounds", site, title, ans, t0=t0)
    cex = an.minimise(q, assume, ans.cex)
    try:
        value = acc.stored.evaluate(cex)
        vals = an.values(an.relevant(cex, acc.stored, acc.mask, *(d.start for d in acc.dims)))
        shown = plain(acc.stored, an)
        text = (
            f"store into {acc.tensor} at {acc.loc.short} writes {shown} = {value}, outside "
            f"its declared range {rng}, when {an.show(vals)}"
        )
        out = with_quantities(vals, value=value)
    except (shapes.ShapeError, ZeroDivisionError, KeyError):
        text = (
            f"store into {acc.tensor} at {acc.loc.short} can write a value outside its "
            f"declared range {rng}"
        )
        out = an.values(cex)
    return an.obligation(
        "bounds",
        site,
        title,
        Answer("refuted", cex),
        t0=t0,
        violated=text,
        cex=out,
        hint="Clamp or mask the stored value, or widen the declared "
        "values= range (reads of the tensor trust it).",
    )
