"""``bounds``: every element an access touches lies inside its tensor.

Formal statement, for every access ``a`` of tensor ``t`` and every dimension
``k`` (``e_k = start_k + c_k``, or ``start_k`` for a point index):

    forall sizes, ids, i, c, data.
        Dom /\\ Ctx(a) /\\ 0 <= c < tile /\\ Mask(a) => 0 <= e_k < shape(t)_k

Masked-off elements are not accesses, so the mask is a hypothesis.  Data
values (page tables, sequence lengths) are constrained only by their declared
range and their dtype.  Without a mask the coordinates are eliminated exactly:
``e_k`` is increasing in ``c_k``, so the tile is inside iff its first and last
elements are.  One obligation per access; a refutation names the dimension,
the element and the values that reach it.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access
from ...report import Obligation
from ...report._keys import element_items, with_quantities
from ._context import INT64_MIN, Analysis, Answer, Site
from ._explain import plain

__all__ = ["check", "dim_queries"]


def dim_queries(acc: Access, shape) -> list[shapes.Formula]:
    """Per dimension, the in-bounds condition (coordinates kept only under a mask)."""
    out = []
    k = 0
    for d, ext in zip(acc.dims, shape):
        if d.point:
            out.append(shapes.conj(shapes.ge(d.start, 0), shapes.lt(d.start, ext)))
            continue
        c = shapes.sym(f"_c{k}")
        k += 1
        if acc.mask is None:
            out.append(shapes.conj(shapes.ge(d.start, 0), shapes.le(d.start + d.size, ext)))
        else:
            out.append(shapes.conj(shapes.ge(d.start + c, 0), shapes.lt(d.start + c, ext)))
    return out


def check(an: Analysis) -> list[Obligation]:
    out = [in_bounds(an, s) for s in an.sites if isinstance(s.node, Access)]
    for name, t in an.model.tensors.items():
        if getattr(t, "enumerates", None) is not None:
            out += [_table_read(an, name, t, r) for r in t.read_map]
    return out


def _table_read(an: Analysis, name: str, t, rname: str) -> Obligation:
    """A work table's declared read is in bounds for every key its ``values`` admit:
    ``forall sizes, v. Dom /\\ values(v) => 0 <= index_k(v) < shape_k``."""
    t0 = time.perf_counter()
    tensor, idx = t.read_map[rname]
    shape = an.model.tensors[tensor].shape
    key = shapes.sym("_key")
    index = [x.subs({"v": key}) for x in idx]
    q = shapes.conj(*(shapes.conj(shapes.ge(x, 0), shapes.lt(x, n)) for x, n in zip(index, shape)))
    assume = an.assume([shapes.ge(key, INT64_MIN), t.values.subs({"v": key})], query=q)
    shown = f"{tensor}[{', '.join(map(str, idx))}]"
    title = f"read {rname} = {shown} of work table {name} stays in bounds for every key"
    ans = an.decide(q, assume)
    ob = an.obligation("bounds", None, title, ans, t0=t0)
    ob.location = t.where
    if ans.status == "refuted":
        cex = an.minimise(q, assume, ans.cex)
        sizes = an.values({k: v for k, v in cex.items() if an.is_size(k)})
        at = [x.evaluate(cex) for x in index]
        dims = [n.evaluate(cex) for n in shape]
        ob.message = (
            f"work table {name} reads {rname} = {shown} at {at}, outside the shape "
            f"{dims} of {tensor}, for key v={cex['_key']} when {an.show(sizes)}"
        )
        ob.counterexample = with_quantities(sizes, v=cex["_key"])
    return ob


def in_bounds(an: Analysis, site: Site) -> Obligation:
    """The bounds obligation of one access (computed once per analysis)."""
    got = an.memo.get(("bounds", id(site.node)))
    if got is None:
        got = an.memo[("bounds", id(site.node))] = _access(an, site)
    return got


def _access(an: Analysis, site: Site) -> Obligation:
    t0 = time.perf_counter()
    acc: Access = site.node
    shape = an.model.tensors[acc.tensor].shape
    idx = ", ".join(_dim_text(an, d) for d in acc.dims)
    name = f"{acc.kind} {acc.tensor}[{idx}] at {acc.loc.short}"
    scope = an.scope(site) + an.coords(acc) + ([acc.mask] if acc.mask is not None else [])
    queries = dim_queries(acc, shape)
    answers = []
    failed = None
    for k, q in enumerate(queries):
        ans = an.decide(q, an.assume(scope, query=q))
        if ans.status == "refuted":
            failed = (k, q, ans)
            break
        answers.append(ans)
    if failed is None:
        return an.obligation("bounds", site, f"{name} stays in bounds", combine(answers), t0=t0)
    k, q, ans = failed
    assume = an.assume(scope, query=q)
    cex = an.complete(
        q, assume, an.minimise(q, assume, ans.cex), [*(d.start for d in acc.dims), *shape]
    )
    if cex is None:  # every value a message shows comes from a re-checked assignment
        return an.obligation(
            "bounds",
            site,
            f"{name} stays in bounds",
            Answer(
                "unknown",
                reason="refuted, but no complete counterexample could be re-checked "
                "for the message",
            ),
            t0=t0,
        )
    element = _element(acc, cex, k, shape)
    env = {**cex, **{f"_c{j}": v for j, v in element["coords"].items()}}
    el = tuple(e.evaluate(env) for e in acc.element())
    dims = tuple(int(x.evaluate(cex)) for x in shape)
    d = acc.dims[k]
    rng = (
        f"{plain(d.start, an)}"
        if d.point
        else f"[{plain(d.start, an)}, {plain(d.start + d.size, an)})"
    )
    verb = "reads" if acc.kind == "load" else "writes"
    vals = an.relevant(cex, *(x.start for x in acc.dims), acc.mask, *shape)
    for lp in site.loops:
        if lp.var in cex:
            vals.setdefault(lp.var, cex[lp.var])
    vals = an.values(vals)
    text = (
        f"{acc.kind} {acc.tensor}[{idx}] at {acc.loc.short} {verb} element {list(el)} outside its "
        f"shape {list(dims)} (dim {k}: {rng} must lie within [0, {shape[k]}), "
        f"index {el[k]} of {dims[k]}) when {an.show(vals)}"
    )
    out = with_quantities({**vals, **element_items(el)}, dim=k)
    return an.obligation(
        "bounds",
        site,
        f"{name} stays in bounds",
        Answer("refuted", cex),
        t0=t0,
        violated=text,
        cex=out,
        detail={"dim": k, "element": list(el), "shape": list(dims)},
    )


def combine(answers: list[Answer]) -> Answer:
    """All proved: proved (vacuous only if every part is); else the first unknown."""
    for a in answers:
        if a.status != "proved":
            return a
    return Answer("proved", vacuous=bool(answers) and all(a.vacuous for a in answers))


def _dim_text(an: Analysis, d) -> str:
    return plain(d.start, an) if d.point else f"ds({plain(d.start, an)}, {d.size})"


def _element(acc: Access, cex, k, shape) -> dict:
    """Tile coordinates of the offending element: from the model when masked, else the end."""
    coords = {}
    j = 0
    for i, d in enumerate(acc.dims):
        if d.point:
            continue
        name = f"_c{j}"
        if acc.mask is not None and name in cex:
            coords[j] = cex[name]
        elif i == k:
            start, ext = d.start.evaluate(cex), shape[k].evaluate(cex)
            coords[j] = 0 if start < 0 else min(max(ext - start, 0), d.size - 1)
        else:
            coords[j] = 0
        j += 1
    return {"coords": coords}
