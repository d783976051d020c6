"""``shape``: the domain admits sizes, shapes and grids are non-negative, no divisor is zero.

Formal statements (``Dom`` the kernel's domain, ``Ctx(n)`` the context of
node ``n``: ranges of the names in scope and its path):

* domain:   ``exists sizes. Dom``  (else every other verdict would be vacuous)
* tensor t: ``forall sizes. Dom => 0 <= d``  for every dimension ``d`` of ``t``
* grid:     ``forall sizes. Dom => 0 <= e``  for every grid extent ``e``
* divisors: ``forall sizes, ids, i, c, data. Dom /\\ Ctx(n) /\\ G => q != 0``
  for every symbolic divisor ``q`` of an expression of node ``n`` (an index, a
  mask, a loop bound, a branch or ring condition, an intermediate), reached
  under guard ``G`` (a ``where`` branch or a short-circuit operand).
  Expressions evaluated on the host (grid extents, tensor shapes, the launch)
  have the domain alone as their context.

A node whose context admits no values is never executed: its obligations hold
vacuously (the domain itself having been shown consistent).
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
    Unsupported,
)
from ...report import Obligation
from ...shapes._context import var_bounds
from ...shapes._normal import divisors
from ._context import Analysis, Answer, implies

__all__ = ["check"]


@singledispatch
def _node_exprs(node: Node) -> tuple[str, list]:
    """What the integer expressions ``node`` evaluates are (for a message), and the
    expressions, whose divisors must not be zero.  No default: a node kind not registered
    here is an error, not a node without expressions."""
    raise NotImplementedError(
        f"the shape check does not know the expressions of a {type(node).__name__}: "
        "register it in verify/static/_shape.py"
    )


@_node_exprs.register
def _(node: Access) -> tuple[str, list]:
    return f"the index of {node.kind} {node.tensor}", [d.start for d in node.dims] + [node.mask]


@_node_exprs.register
def _(node: Loop) -> tuple[str, list]:
    return "the bounds of the loop", [node.lo, node.hi]


@_node_exprs.register
def _(node: Branch) -> tuple[str, list]:
    return ("the early-exit condition" if node.exit else "the branch condition"), [node.cond]


@_node_exprs.register
def _(node: Comm) -> tuple[str, list]:
    return "the ring step", [node.dst, node.src, node.send, node.recv]


@_node_exprs.register
def _(node: Fold) -> tuple[str, list]:
    return "the fold", [node.prov, node.cond]


@_node_exprs.register
def _(node: Arith) -> tuple[str, list]:
    return "the integer arithmetic", [node.expr]


@_node_exprs.register
def _(node: Divide) -> tuple[str, list]:
    # the division as written, before normalisation folded it
    return "the integer division", [shapes.floordiv(_WITNESS, node.divisor)]


# no integer expressions of their own: barriers, lanes and splits (literal counts and
# shapes), claims (their divisions are Divide nodes; the claim is checked by _claim), a
# front end's rules (checked by _asserted; not the body's arithmetic), and unsupported
# constructs (whatever depends on them is unknown)
for _kind in (Barrier, Lanes, LanePart, SplitReduce, Claim, Assert, Unsupported):
    _node_exprs.register(_kind, lambda node: ("", []))


_WITNESS = shapes.sym("_dividend")  # a free dividend: x // d keeps d whatever x is


def check(an: Analysis) -> list[Obligation]:
    out = [_domain(an)]
    if an.domain_status != "consistent":
        return out
    m = an.model
    for name, t in m.tensors.items():
        out.append(
            _nonneg(an, f"tensor {name}", list(t.shape), t.where if hasattr(t, "where") else None)
        )
    if m.grid:
        out.append(_nonneg(an, "grid", [e for _, e in m.grid], None))
    out += [
        _distinct_fill(an, name, t)
        for name, t in m.tensors.items()
        if getattr(t, "distinct", False) and t.values is not None
    ]
    out += [_claim(an, *c) for c in getattr(m, "claims", ())]
    host = [("the grid extents", [e for _, e in m.grid])]
    host += [(f"the shape of {n}", list(t.shape)) for n, t in m.tensors.items()]
    host += [
        (f"the value range of {n}", [t.values])
        for n, t in m.tensors.items()
        if t.values is not None
    ]
    for what, xs in host:
        ob = _divisors_at(an, None, what, xs, [])
        if ob is not None:
            out.append(ob)
    seen = set()
    # divisions as written last: a zero divisor is reported where it is used (a loop bound,
    # an index) when it is, and at the bare division only when it was folded away everywhere
    sites = sorted(an.sites, key=lambda s: isinstance(s.node, Divide))
    for site in sites:
        what, xs = _node_exprs(site.node)
        if not xs:
            continue
        scope = an.scope(site)
        if isinstance(site.node, Access):
            scope += an.coords(site.node)
        if isinstance(site.node, (Arith, Divide)):
            scope += _arith_coords(site.node)
        key = (tuple(x for x in xs if x is not None), tuple(scope))
        if key in seen:
            continue
        seen.add(key)
        ob = _divisors_at(an, site, what, xs, scope)
        if ob is not None:
            out.append(ob)
    return out


def _arith_coords(node) -> list:
    out = []
    for k, n in enumerate(getattr(node, "shape", ()) or ()):
        c = shapes.sym(f"_c{k}")
        out += [shapes.ge(c, 0), shapes.lt(c, n)]
    return out


def _domain(an: Analysis) -> Obligation:
    """``exists sizes. Dom``: prove(False) refutes exactly when the domain admits a point."""
    t0 = time.perf_counter()
    d = shapes.prove(shapes.disj(), an.domain)
    an.solver_seconds += time.perf_counter() - t0
    where = an.model_location()
    if d.verdict == "refuted":
        an.domain_status = "consistent"
        example = an.values({k: v for k, v in (d.counterexample or {}).items() if an.is_size(k)})
        an.example = {**{s: 1 for s in an.sizes}, **example}
        return Obligation(
            "shape",
            "proved",
            f"the domain admits sizes (e.g. {an.show(example) or 'no sizes'})",
            where,
            seconds=time.perf_counter() - t0,
        )
    if d.verdict == "inconsistent":
        an.domain_status = "inconsistent"
        text = "; ".join(str(a) for a in an.model.assume)
        return Obligation(
            "shape",
            "violated",
            f"the domain admits no sizes: {text}",
            where,
            counterexample={},
            seconds=time.perf_counter() - t0,
            hint="Every other obligation would hold vacuously; fix the assumptions.",
        )
    an.domain_status = "unknown"
    return Obligation(
        "shape",
        "unknown",
        "the domain admits sizes",
        where,
        reason=d.reason or "undecided",
        seconds=time.perf_counter() - t0,
    )


def _value_interval(values: shapes.Formula):
    """``(los, his)`` with ``values`` exactly ``max(los) <= v < min(his)``, or None.

    Exact only when ``values`` is a conjunction of comparisons of ``v`` alone with
    ``v``-free bounds: then the number of admissible values is ``min(his) - max(los)``.
    Any other conjunct (``v % 2 == 0``, ``v != 3``) makes the count unknown.
    """
    los, his, exact = var_bounds(values, "v")
    return (los, his) if exact and los and his else None


def _distinct_fill(an: Analysis, name: str, t) -> Obligation:
    """``forall sizes. Dom => numel(t) <= |{v : values(v)}|`` for a ``distinct`` index tensor.

    Every proof about the kernel may use "two elements of ``t`` differ"; at sizes where
    ``t`` has more elements than its range has values, no input satisfies the
    declaration and those proofs would hold vacuously.  So the declaration itself
    must be satisfiable at every admissible size (or the domain must exclude them).
    """
    t0 = time.perf_counter()
    where = getattr(t, "where", None) or an.model_location()
    numel = shapes.as_expr(1)
    for d in t.shape:
        numel = numel * d
    what = f"the {numel} distinct values of {name} fit its range {t.values}"
    iv = _value_interval(t.values)
    if iv is None:
        ob = Obligation(
            "shape",
            "unknown",
            what,
            where,
            reason="the range is not an interval of v, so the number of values it "
            "admits is not counted",
            seconds=time.perf_counter() - t0,
            hint="Declare values='lo <= v < hi' on a distinct tensor.",
        )
        return ob
    los, his = iv
    lo = los[0] if len(los) == 1 else shapes.maximum(*los)
    hi = his[0] if len(his) == 1 else shapes.minimum(*his)
    ans = an.decide(shapes.le(numel, hi - lo), an.domain)
    ob = an.obligation("shape", None, what, ans, t0=t0)
    ob.location = where
    if ans.status == "refuted":
        cex = an.values({k: v for k, v in ans.cex.items() if an.is_size(k)})
        ob.message = (
            f"{name} declares distinct values in [{lo}, {hi}) but has {numel} elements: "
            f"{numel.evaluate(cex)} > {(hi - lo).evaluate(cex)} when {an.show(cex)}, so "
            "no input satisfies its declaration and every proof would hold vacuously there"
        )
        ob.counterexample = cex
        ob.hint = f"Add an assumption such as '{numel} <= {hi - lo}' or widen the range."
    return ob


def _claim(
    an: Analysis,
    text: str,
    formula: shapes.Formula,
    loc,
    hint: str = "",
    shown: tuple = (),
    ranges: tuple = (),
) -> Obligation:
    """``forall sizes, xs. Dom and ranges => claim``: a fact a front end's lowering requires
    of the sizes (a TPU block shape's tiling rule) or of its own variables ``xs`` (``shown``,
    within ``ranges``: the grid iterations of the TPU revisit rule), with the values that
    break it when refuted."""
    t0 = time.perf_counter()
    ans = an.decide(formula, [*an.domain, *ranges])
    ob = an.obligation("shape", None, text, ans, t0=t0)
    ob.location = loc if loc is not None else an.model_location()
    if ans.status == "refuted":
        cex = an.values({k: v for k, v in ans.cex.items() if an.is_size(k)})
        cex.update({k: ans.cex.get(k, 0) for k in shown})
        if not _holds_at(formula, cex, an):
            ob.message = f"{text} fails when {an.show(cex)}"
            ob.counterexample = cex
            ob.hint = hint
        else:  # the model's counterexample does not re-check on the formula: say so, never guess
            ob.status, ob.reason = "unknown", "refuted, but the counterexample did not re-check"
    return ob


def _holds_at(formula: shapes.Formula, cex: dict, an: Analysis) -> bool:
    sizes = {**{s: 1 for s in an.sizes}, **cex}
    try:
        return bool(formula.evaluate(sizes))
    except Exception:  # an undefined value (a zero divisor): not a re-checked counterexample
        return True


def _nonneg(an: Analysis, what: str, dims: list, loc) -> Obligation:
    t0 = time.perf_counter()
    sym = [d for d in dims if not d.is_const]
    consts = [d for d in dims if d.is_const and d.const_value < 0]
    shown = "[" + ", ".join(str(d) for d in dims) + "]"
    where = loc if loc is not None else an.model_location()
    if consts:
        return Obligation(
            "shape", "violated", f"{what} has a negative extent: {shown}", where, counterexample={}
        )
    query = shapes.conj(*(shapes.ge(d, 0) for d in sym))
    ans = an.decide(query, an.domain) if sym else Answer("proved")
    ob = an.obligation("shape", None, f"{what} {shown} has non-negative extents", ans, t0=t0)
    ob.location = where
    if ans.status == "refuted":
        cex = an.values({k: v for k, v in ans.cex.items() if an.is_size(k)})
        bad = next(d for d in sym if d.evaluate(ans.cex) < 0)
        ob.message = (
            f"{what} {shown} has a negative extent: {bad} = {bad.evaluate(ans.cex)} "
            f"when {an.show(cex)}"
        )
        ob.counterexample = cex
    return ob


def _divisors_at(an: Analysis, site, what: str, xs: list, scope: list) -> Obligation | None:
    divs = []
    for x in xs:
        for g, d in divisors(x) if x is not None else ():
            if (g, d) not in divs:
                divs.append((g, d))
    if not divs:
        return None
    reported = an.memo.setdefault("zero divisors", {})  # divisor -> where it was reported
    if all(d in reported for _g, d in divs):
        loc = site.loc if site is not None else an.model_location()
        first = reported[divs[0][1]]
        return Obligation(
            "shape",
            "duplicate",
            f"no divisor of {what} at {loc.short} is zero",
            loc,
            reason=f"the same zero divisor {divs[0][1]} is already reported at {first}",
        )
    t0 = time.perf_counter()
    loc = site.loc if site is not None else an.model_location()
    at = f" at {loc.short}" if site is not None else ""
    names = ", ".join(sorted({str(d) for _, d in divs}))
    query = shapes.conj(*(implies(g, shapes.ne(d, 0)) for g, d in divs))
    assume = an.assume(scope, query=query)
    ans = an.decide(query, assume)
    ob = an.obligation("shape", site, f"no divisor of {what}{at} is zero ({names})", ans, t0=t0)
    ob.location = loc
    if ans.status == "refuted":
        cex = ans.cex
        bad = next(((g, d) for g, d in divs if g.evaluate(cex) and d.evaluate(cex) == 0), divs[0])
        expr = _first_use(xs, bad[1])
        if _WITNESS.as_symbol() in expr:  # a Divide node: the divisor is the whole story
            expr = ""
        vals = an.relevant(cex, bad[1], *(x for x in xs if x is not None))
        ob.message = (
            f"division by zero in {what}{at}: {bad[1]} = 0"
            f"{f' in {expr}' if expr else ''} when {an.show(vals)}"
        )
        ob.counterexample = vals
        for _g, d in divs:
            if d.evaluate(cex) == 0:
                reported.setdefault(d, loc.short)
    return ob


def _first_use(xs, d) -> str:
    """The smallest operation of ``xs`` that divides by ``d``, as text."""
    found: list[str] = []

    def visit(e):
        if isinstance(e, shapes.Expr):
            for m, _ in e.terms:
                for a, _p in m:
                    if hasattr(a, "kind"):
                        for arg in a.args:
                            visit(arg)
                        if a.kind in ("floordiv", "mod", "cdiv") and a.args[1] == d and not found:
                            found.append(str(shapes.Expr.atom(a)))
        elif isinstance(e, shapes.Cmp):
            visit(e.lhs)
            visit(e.rhs)
        elif isinstance(e, shapes.BoolOp):
            for a in e.args:
                visit(a)

    for x in xs:
        visit(x)
    return found[0] if found else ""
