"""``overflow``: offsets and index arithmetic fit the declared index width.

Formal statements (``W`` the width: the tensor's ``index_bits`` override, else
the kernel's; ``off(e)`` the row-major linear offset of element ``e`` over the
tensor's declared shape; ``s`` the itemsize):

* access ``a`` of tensor ``t``:
  ``forall sizes, ids, i, c, data. Dom /\\ Ctx(a) /\\ 0 <= c < tile /\\ Mask(a)
  => off(e(c)) <= 2**(W-1) - 1  /\\  s * off(e(c)) <= 2**(W-1) - 1``
  (element offset and byte offset; without a mask ``c`` is the tile's last
  element, where ``off`` is largest since every stride is non-negative);
* intermediate ``x`` computed in ``b``-bit integer arithmetic on the way to an
  index: ``forall ... . Dom /\\ Ctx(x) => -2**(b-1) <= x <= 2**(b-1) - 1``;
  only for intermediates that may reach an index, a mask, a loop bound, a branch
  or a ring step (see :func:`_steering_symbols`): integer *data* arithmetic has
  no offset to overflow.

Sizes range over the whole domain: a size without a declared maximum makes
an offset that grows with it ``violated``, reported at the smallest size that
overflows (each size minimised in declaration order), so specs declare
production maxima.
"""

from __future__ import annotations

import time
from functools import singledispatch

from ... import shapes
from ...model import (
    Access,
    Arith,
    Assert,
    Barrier,
    Branch,
    Claim,
    Comm,
    Divide,
    Fold,
    LanePart,
    Lanes,
    Loop,
    Node,
    SplitReduce,
)
from ...report import Obligation
from ...report._keys import element_items, with_quantities
from ._bounds import in_bounds
from ._context import Analysis, Answer, Site
from ._explain import plain

__all__ = ["check", "linear_offset"]


def linear_offset(elem, shape) -> shapes.Expr:
    """Row-major offset of ``elem`` in a tensor of ``shape``."""
    off = shapes.as_expr(0)
    for e, n in zip(elem, shape):
        off = off * n + e
    return off


def check(an: Analysis) -> list[Obligation]:
    out = []
    seen = set()
    steering = _steering_symbols(an)
    for site in an.sites:
        if isinstance(site.node, Access):
            out.append(_access(an, site))
        elif isinstance(site.node, Arith):  # unlocated arithmetic too: it is still computed
            node = site.node
            if node.expr.is_const:
                continue
            if steering is not None and not node.expr.free_symbols() & steering:
                continue  # data arithmetic: its value reaches no index, mask, bound or branch
            key = (node.expr, node.bits, node.loc, tuple(an.scope(site)))
            if key in seen:
                continue
            seen.add(key)
            out.append(_arith(an, site))
    return out


def _steering_symbols(an: Analysis) -> set[str] | None:
    """Names free in whatever steers the schedule: indices and masks of accesses, loop bounds,
    branch and exit conditions, ring steps and folds, the indices of index-tensor reads, the
    grid; or None (keep every arithmetic obligation) where that is not the whole story.

    An integer intermediate none of whose names occurs there never reaches an index: it is
    data (an int32 sum stored back, say), whose wrap-around is the kernel's arithmetic, not
    an offset, so it gets no ``overflow`` obligation.  Dropping it is sound because ``+ - *``
    wrap as a ring homomorphism mod ``2**bits``: an expression the lowering simplified so
    that some names cancel equals the wrapped computation anyway; every other operation
    (``// % min max`` and comparisons) keeps its operands' names in the atom.  Conservative
    cases keep every obligation: an integer tensor that the kernel both writes and reads (a
    value stored and later used as an index), and any unsupported construct (an index the
    model could not represent may use anything).
    """
    names: set[str] = set()
    stored = {
        s.node.tensor for s in an.sites if isinstance(s.node, Access) and s.node.kind == "store"
    }
    loaded = {
        s.node.tensor for s in an.sites if isinstance(s.node, Access) and s.node.kind == "load"
    }
    for t in stored & loaded:
        decl = an.model.tensors.get(t)
        if decl is None or getattr(decl, "is_index", True):
            return None

    def add(*xs) -> None:
        for x in xs:
            if x is not None:
                names.update(x.free_symbols())

    for site in an.sites:
        steer = _steers(site.node)
        if steer is None:
            return None
        add(*steer)
    for d in an.data.values():
        add(*d.index)
    for _p, ext in an.model.grid:
        add(ext)
    if an.model.ranks:
        add(an.rank_size)
    # a data symbol read at an index that steers pulls in nothing more: its value is what
    # steers, and it is a name of its own (already in ``names`` where it is used)
    return names


@singledispatch
def _steers(node: Node) -> tuple | None:
    """What in ``node`` steers the schedule (indices, masks, bounds, conditions, ring
    steps), or None where that is not known: an unsupported construct, or a node kind not
    registered here (every arithmetic obligation is then kept: fail closed)."""
    return None


@_steers.register
def _(node: Access) -> tuple:
    return (*(d.start for d in node.dims), node.mask)


@_steers.register
def _(node: Loop) -> tuple:
    return (node.lo, node.hi)


@_steers.register
def _(node: Branch) -> tuple:
    return (node.cond,)


@_steers.register
def _(node: Comm) -> tuple:
    return (node.dst, node.src, node.send, node.recv, node.prov)


@_steers.register
def _(node: Fold) -> tuple:
    return (node.cond, node.prov)


# nothing of theirs steers: barriers, lanes (a literal count), lane splits and split
# reductions (literal shapes), intermediates and divisions (checked themselves, and they
# steer only through the nodes above that use them), claims and a front end's rules
# (checked, never relied on)
for _kind in (Barrier, Lanes, LanePart, SplitReduce, Arith, Divide, Claim, Assert):
    _steers.register(_kind, lambda node: ())


def _whole_tensor(an: Analysis, name: str, bits: int) -> Answer:
    """``numel * itemsize - itemsize <= limit``: every in-bounds offset of the tensor fits."""
    key = ("numel", name, bits)
    got = an.memo.get(key)
    if got is None:
        t = an.model.tensors[name]
        numel = shapes.as_expr(1)
        for d in t.shape:
            numel = numel * d
        q = shapes.le((numel - 1) * t.itemsize, 2 ** (bits - 1) - 1)
        got = an.memo[key] = an.decide(q, an.assume([], query=q))
    return got


def _access(an: Analysis, site: Site) -> Obligation:
    t0 = time.perf_counter()
    acc: Access = site.node
    t = an.model.tensors[acc.tensor]
    bits = t.index_bits or an.model.index_bits
    limit = 2 ** (bits - 1) - 1
    name = f"offsets of {acc.kind} {acc.tensor} at {acc.loc.short} fit int{bits}"
    # An access proved in bounds has offsets below the tensor's size: if the whole tensor's
    # byte size fits, so does every such access (one query per tensor, not per access).
    if in_bounds(an, site).status == "proved" and _whole_tensor(an, acc.tensor, bits).proved:
        return an.obligation(
            "overflow",
            site,
            name,
            Answer("proved"),
            t0=t0,
            detail={"by": "in bounds and the whole tensor fits"},
        )
    elem = list(acc.element())
    if acc.mask is None:
        last = {c: n - 1 for c, n in acc.coord_ranges()}
        elem = [e.subs(last) for e in elem]
    off = linear_offset(elem, t.shape)
    scope = an.scope(site) + an.coords(acc) + ([acc.mask] if acc.mask is not None else [])
    q_elem = shapes.le(off, limit)
    q_byte = shapes.le(off * t.itemsize, limit)
    answers = []
    for what, q in (("element", q_elem), ("byte", q_byte)):
        assume = an.assume(scope, query=q)
        ans = an.decide(q, assume)
        if ans.status == "refuted":
            cex = an.complete(
                q, assume, an.minimise(q, assume, ans.cex, steps=128), [*acc.element(), *t.shape]
            )
            if cex is None:  # every value a message shows comes from a re-checked assignment
                answers.append(
                    Answer(
                        "unknown",
                        reason="refuted, but no complete "
                        "counterexample could be re-checked for the message",
                    )
                )
                continue
            if acc.mask is None:
                cex = {**cex, **{c: n - 1 for c, n in acc.coord_ranges()}}
            el = [e.evaluate(cex) for e in acc.element()]
            val = off.evaluate(cex) * (t.itemsize if what == "byte" else 1)
            vals = an.relevant(cex, *(d.start for d in acc.dims), acc.mask, *t.shape)
            for lp in site.loops:
                if lp.var in cex:
                    vals.setdefault(lp.var, cex[lp.var])
            vals = an.values(vals)
            unit = "" if what == "element" else f" ({t.itemsize}-byte {t.dtype})"
            text = (
                f"{what} offset of {acc.kind} {acc.tensor} at {acc.loc.short} is {val:,}"
                f"{unit} at element {el}, past the int{bits} maximum {limit:,}, when "
                f"{an.show(vals)}"
            )
            cx = {**with_quantities(vals, offset=val), **element_items(el)}
            hint = (
                f"Declare maxima for the sizes (assume=[...]) or give {acc.tensor} index_bits=64."
            )
            return an.obligation(
                "overflow",
                site,
                name,
                ans,
                violated=text,
                cex=cx,
                t0=t0,
                hint=hint,
                detail={"unit": what, "offset": val, "bits": bits},
            )
        answers.append(ans)
    bad = next((a for a in answers if a.status != "proved"), None)
    res = bad or Answer("proved", vacuous=all(a.vacuous for a in answers))
    return an.obligation("overflow", site, name, res, t0=t0)


def _arith(an: Analysis, site: Site) -> Obligation:
    t0 = time.perf_counter()
    node: Arith = site.node
    lo, hi = -(2 ** (node.bits - 1)), 2 ** (node.bits - 1) - 1
    scope = an.scope(site)
    for k, n in enumerate(node.shape or ()):
        c = shapes.sym(f"_c{k}")
        scope += [shapes.ge(c, 0), shapes.lt(c, n)]
    q = shapes.conj(shapes.ge(node.expr, lo), shapes.le(node.expr, hi))
    assume = an.assume(scope, query=q)
    ans = an.decide(q, assume)
    text = plain(node.expr, an)
    name = f"int{node.bits} arithmetic {text} ({node.op}) at {node.loc.short} does not overflow"
    if ans.status != "refuted":
        return an.obligation("overflow", site, name, ans, t0=t0)
    cex = an.complete(q, assume, an.minimise(q, assume, ans.cex, steps=128), [node.expr])
    if cex is None:  # every value a message shows comes from a re-checked assignment
        return an.obligation(
            "overflow",
            site,
            name,
            Answer(
                "unknown",
                reason="refuted, but no complete counterexample could be re-checked "
                "for the message",
            ),
            t0=t0,
        )
    val = node.expr.evaluate(cex)
    vals = an.relevant(cex, node.expr)
    side = f"above the maximum {hi:,}" if val > hi else f"below the minimum {lo:,}"
    pos = [
        f"pos{k}={cex[f'_c{k}']}"
        for k in range(len(node.shape or ()))
        if f"_c{k}" in node.expr.free_symbols() and f"_c{k}" in cex
    ]
    where = f" at tile position {', '.join(pos)}" if pos else ""
    msg = (
        f"int{node.bits} arithmetic {text} ({node.op}) at {node.loc.short} reaches {val:,}, "
        f"{side}, when {an.show(vals)}{where}"
    )
    return an.obligation(
        "overflow",
        site,
        name,
        ans,
        violated=msg,
        cex=with_quantities(vals, value=val),
        t0=t0,
        hint="Declare maxima for the sizes or compute it in 64 bits.",
    )
