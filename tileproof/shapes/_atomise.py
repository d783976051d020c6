"""Atomising nonlinear terms: a sound relaxation that keeps index reasoning linear.

(The verifier's cheap first attempt; :mod:`._relax` is the decision procedure's
finer one, with product lemmas.)

Most index facts hold for reasons that never look inside a product: a
prefetch ``i + split*pps + 1 < M`` follows from its mask
``64*(i + split*pps + 1) < seq`` and ``seq <= 64*M`` whatever ``split*pps``
is.  Replacing every nonlinear term (a product of two non-constant factors,
a division by a symbol, and everything around them that is not linear) by
one fresh symbol per distinct term, in the query and the assumptions alike,
gives a linear problem that a solver decides in milliseconds.

Soundness: the original problem is the relaxed one with each fresh symbol
fixed to its term's value, so a relaxed *proof* (for all values of the fresh
symbols satisfying the side facts) proves the original.  The side facts are
sign facts only (``t >= 0`` where every factor of ``t`` is provably
non-negative from literal lower bounds), which the term satisfies.  A relaxed
refutation proves nothing and is discarded by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._context import declared_lower_bounds, flatten
from ._expr import (
    BoolConst,
    BoolOp,
    Cmp,
    Expr,
    Formula,
    _rebuild,
    as_expr,
    conj,
    disj,
    eq,
    ge,
    gt,
    le,
    lt,
    ne,
    negate,
    sym,
    where,
)

__all__ = ["atomise"]

LOW = -(2**63)
NEG = float("-inf")


class _Atomiser:
    def __init__(self, lower: dict[str, int]):
        self.lower = lower  # literal lower bounds of symbols
        self.names: dict = {}  # term key -> fresh symbol name
        self.facts: list[Formula] = []

    # -- lower bounds (interval reasoning from literal bounds; -inf when unknown)
    def lb(self, e: Expr) -> float:
        total = 0.0
        for m, c in e.terms:
            if not m:
                total += c
                continue
            if c < 0:
                return NEG
            low = 1.0
            for a, p in m:
                la = self.lb_atom(a)
                if la < 0:
                    return NEG
                low *= la**p
            total += c * low
        return total

    def lb_atom(self, a) -> float:
        name = getattr(a, "name", None)
        if name is not None:
            return self.lower.get(name, 1)
        k = a.kind
        if k in ("floordiv", "cdiv", "mod"):
            if self.lb(a.args[1]) < 1:
                return NEG
            if k == "mod":
                return 0
            n = self.lb(a.args[0])
            return 0 if n >= 0 else n
        if k == "max":
            return max(self.lb(x) for x in a.args)
        if k == "min":
            return min(self.lb(x) for x in a.args)
        if k == "abs":
            return 0
        if k == "where":
            return min(self.lb(a.args[1]), self.lb(a.args[2]))
        return NEG

    # -- replacement
    def fresh(self, term: Expr) -> Expr:
        key = term
        name = self.names.get(key)
        if name is None:
            name = self.names[key] = f"_nl{len(self.names)}"
            v = sym(name)
            low = self.lb(term)
            self.facts.append(ge(v, int(low) if low != NEG else LOW))
        return sym(name)

    def expr(self, e: Expr) -> Expr:
        out = as_expr(0)
        for m, c in e.terms:
            if not m:
                out = out + c
                continue
            degree = sum(p for _a, p in m)
            atoms = [self.atom(a) for a, _p in m]
            if degree > 1:
                mono = Expr({m: 1})
                out = out + c * self.fresh(mono)
            else:
                out = out + c * atoms[0]
        return out

    def atom(self, a) -> Expr:
        if getattr(a, "name", None) is not None:
            return Expr.atom(a)
        k = a.kind
        if k in ("floordiv", "mod", "cdiv") and not a.args[1].is_const:
            return self.fresh(Expr.atom(a))
        if k == "where":
            c, x, y = a.args
            return where(self.formula(c), self.expr(x), self.expr(y))
        return _rebuild(k, [self.expr(x) for x in a.args])

    def formula(self, f: Formula) -> Formula:
        if isinstance(f, Cmp):
            return _CMP[f.op](self.expr(f.lhs), self.expr(f.rhs))
        if isinstance(f, BoolOp):
            args = [self.formula(x) for x in f.args]
            if f.kind == "not":
                return negate(args[0])
            return conj(*args) if f.kind == "and" else disj(*args)
        return f


_CMP = {"==": eq, "!=": ne, "<": lt, "<=": le, ">": gt, ">=": ge}


def _propagate(lower: dict[str, int], assume: Sequence[Formula]) -> dict[str, int]:
    """``x < y`` / ``x <= y`` between symbols lifts ``y``'s lower bound (a few rounds)."""
    pairs = []
    for f in flatten(assume):
        if isinstance(f, Cmp) and f.op in ("<", "<=", ">", ">="):
            lo, hi = (f.lhs, f.rhs) if f.op in ("<", "<=") else (f.rhs, f.lhs)
            a, b = lo.as_symbol(), hi.as_symbol()
            if a and b:
                pairs.append((a, b, 1 if f.op in ("<", ">") else 0))
    for _ in range(4):
        changed = False
        for a, b, strict in pairs:
            want = lower.get(a, 1) + strict
            if want > lower.get(b, 1):
                lower[b] = want
                changed = True
        if not changed:
            break
    return lower


def atomise(query: Formula, assume: Sequence[Formula]):
    """``(query', assume')``: the linear relaxation, or ``None`` when nothing is nonlinear."""
    at = _Atomiser(_propagate(declared_lower_bounds(assume), assume))
    q = at.formula(query)
    a = [at.formula(f) for f in assume]
    if not at.names:
        return None
    return q, tuple(f for f in (*a, *at.facts) if not (isinstance(f, BoolConst) and f.value))
