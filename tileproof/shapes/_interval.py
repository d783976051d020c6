"""Interval arithmetic over shape expressions: the solver-free half of the decision procedure.

``interval(e, box)`` returns ``(lo, hi)`` containing every value ``e`` takes at
the points of ``box`` (a mapping from symbol to its interval) where ``e`` is
defined, i.e. where no divisor is zero.  Endpoints are ints or ``±INF``.
Every rule is a sound over-approximation, so a comparison decided here is
decided for every admissible value; nothing is sampled.

Plain interval arithmetic forgets that ``a - min(a, b)`` mentions ``a`` twice.
Two exact rewritings recover the common shape idioms before evaluating:

* a lone ``c*min(x, y)`` term distributes over the rest of the sum,
  ``R + c*min(x, y) == min(R + c*x, R + c*y)`` (for ``c > 0``; ``max`` for
  ``c < 0``), so ``a - min(a, b)`` becomes ``max(0, a - b) >= 0``;
* a lone ``c*(n // k)`` term (constant ``k > 0``) is replaced through
  ``n // k == (n - r) / k`` with a fresh remainder ``r`` in ``[0, k-1]``, so
  ``a - a // 2`` becomes ``(a + r) / 2 >= 1/2``, hence ``>= 1``; ``n % k`` likewise
  through ``n - k*q``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ._expr import BoolConst, BoolOp, Cmp, Expr, Formula, Op, Sym

__all__ = ["INF", "formula_truth", "interval"]

INF = math.inf
Interval = tuple  # (lo, hi)
FULL: Interval = (-INF, INF)
_SPLIT_DEPTH = 3


def _mul(a, b):
    """Endpoint product with ``0 * inf == 0`` (an attained 0 times anything is 0).

    An infinite factor gives a signed infinity without multiplying: Python's
    ``int * inf`` converts the int to float and overflows past ``2**1024``.
    """
    if a == 0 or b == 0:
        return 0
    if a in (INF, -INF) or b in (INF, -INF):
        return INF if (a > 0) == (b > 0) else -INF
    return a * b


def _add(a, b):
    """Endpoint sum; an infinite term wins without converting a huge int to float."""
    if a in (INF, -INF):
        return a
    if b in (INF, -INF):
        return b
    return a + b


def imul(x: Interval, y: Interval) -> Interval:
    ps = (_mul(x[0], y[0]), _mul(x[0], y[1]), _mul(x[1], y[0]), _mul(x[1], y[1]))
    return (min(ps), max(ps))


def iscale(c: int, x: Interval) -> Interval:
    if c >= 0:
        return (_mul(c, x[0]), _mul(c, x[1]))
    return (_mul(c, x[1]), _mul(c, x[0]))


def ipow(x: Interval, p: int) -> Interval:
    lo, hi = x
    if p % 2 or lo >= 0:
        return (lo**p, hi**p)
    if hi <= 0:
        return (hi**p, lo**p)
    return (0, max(lo**p, hi**p))


def ineg(x: Interval) -> Interval:
    return (-x[1], -x[0])


def hull(*xs: Interval) -> Interval:
    return (min(x[0] for x in xs), max(x[1] for x in xs))


def meet(x: Interval, y: Interval) -> Interval:
    return (max(x[0], y[0]), min(x[1], y[1]))


def _fdiv(n, d):
    """``n // d`` extended to infinite endpoints by its limit (``d != 0``)."""
    if d in (INF, -INF):
        if n in (INF, -INF):
            return INF if (n > 0) == (d > 0) else -INF
        if d > 0:
            return 0 if n >= 0 else -1
        return -1 if n > 0 else 0
    if n in (INF, -INF):
        return n if d > 0 else -n
    return n // d


def _div_pos(n: Interval, d: Interval) -> Interval:
    """``n // d`` for ``d`` in ``[d1, d2]``, ``d1 >= 1``: n//d is monotone in each argument,
    so the extremes sit at corners (n1 for the minimum, n2 for the maximum)."""
    (n1, n2), (d1, d2) = n, d
    return (min(_fdiv(n1, d1), _fdiv(n1, d2)), max(_fdiv(n2, d1), _fdiv(n2, d2)))


def idiv(n: Interval, d: Interval) -> Interval:
    """Floor division over the non-zero part of ``d``."""
    parts = []
    if d[1] >= 1:
        parts.append(_div_pos(n, (max(d[0], 1), d[1])))
    if d[0] <= -1:  # n // d == (-n) // (-d)
        parts.append(_div_pos(ineg(n), (max(1, -d[1]), -d[0])))
    return hull(*parts) if parts else FULL


def _mod_pos(n: Interval, d: Interval) -> Interval:
    (n1, n2), (d1, d2) = n, d
    if n1 >= 0 and n2 < d1:
        return n  # n % d == n
    if d1 == d2 and n2 - n1 < d1 and n1 % d1 <= n2 % d1:
        return (n1 % d1, n2 % d1)  # no wrap-around inside [n1, n2]
    hi = d2 - 1
    if n1 >= 0:
        hi = min(hi, n2)
    return (0, hi)


def imod(n: Interval, d: Interval) -> Interval:
    """Python ``%`` (sign of the divisor) over the non-zero part of ``d``."""
    parts = []
    if d[1] >= 1:
        parts.append(_mod_pos(n, (max(d[0], 1), d[1])))
    if d[0] <= -1:  # n % d == -((-n) % (-d))
        parts.append(ineg(_mod_pos(ineg(n), (max(1, -d[1]), -d[0]))))
    return hull(*parts) if parts else FULL


# ------------------------------------------------------------------------ expressions


class _Eval:
    """One interval evaluation; memoises atoms and numbers its fresh remainders."""

    __slots__ = ("box", "fresh", "memo")

    def __init__(self, box: Mapping[str, Interval]):
        self.box = box
        self.memo: dict = {}
        self.fresh = 0

    def expr(self, e: Expr, depth: int = 0) -> Interval:
        plain = self.plain(e)
        if depth < _SPLIT_DEPTH and plain[0] != plain[1]:
            split = self.split(e, depth)
            if split is not None:
                return meet(plain, split)
        return plain

    def plain(self, e: Expr) -> Interval:
        lo = hi = 0
        for m, c in e.terms:
            if not m:
                lo, hi = _add(lo, c), _add(hi, c)
                continue
            x = (1, 1)
            for a, p in m:
                ai = self.atom(a)
                x = imul(x, ai if p == 1 else ipow(ai, p))
            x = iscale(c, x)
            lo = _add(lo, x[0])
            hi = _add(hi, x[1])
        return (lo, hi)

    def atom(self, a) -> Interval:
        got = self.memo.get(a)
        if got is None:
            got = self.memo[a] = self._atom(a)
        return got

    def _atom(self, a) -> Interval:
        if isinstance(a, Sym):
            return self.box.get(a.name, (1, INF))
        assert isinstance(a, Op)
        k = a.kind
        if k == "where":
            c, x, y = a.args
            t = self.truth(c)
            if t is True:
                return self.expr(x)
            if t is False:
                return self.expr(y)
            return hull(self.expr(x), self.expr(y))
        vals = [self.expr(x) for x in a.args]
        if k == "floordiv":
            return idiv(*vals)
        if k == "mod":
            return imod(*vals)
        if k == "cdiv":
            return ineg(idiv(ineg(vals[0]), vals[1]))
        if k == "min":
            return (min(v[0] for v in vals), min(v[1] for v in vals))
        if k == "max":
            return (max(v[0] for v in vals), max(v[1] for v in vals))
        if k == "abs":
            lo, hi = vals[0]
            if lo >= 0:
                return (lo, hi)
            if hi <= 0:
                return (-hi, -lo)
            return (0, max(-lo, hi))
        raise AssertionError(k)

    # -- exact rewritings of one lone term (see the module docstring)
    def split(self, e: Expr, depth: int) -> Interval | None:
        for m, c in e.terms:
            if len(m) != 1 or m[0][1] != 1 or not isinstance(m[0][0], Op):
                continue
            a = m[0][0]
            rest = Expr([t for t in e.terms if t[0] != m])
            if rest.is_const:
                continue
            k = a.kind
            if k in ("min", "max", "abs"):
                args = a.args if k != "abs" else (a.args[0], -a.args[0])
                if not (rest.free_symbols() & set().union(*(x.free_symbols() for x in args))):
                    continue
                parts = [self.expr(rest + c * x, depth + 1) for x in args]
                use_min = (k == "min") == (c > 0)
                pick = min if use_min else max
                return (pick(p[0] for p in parts), pick(p[1] for p in parts))
            if (
                k in ("floordiv", "mod", "cdiv")
                and a.args[1].is_const
                and a.args[1].const_value > 0
            ):
                n, kd = a.args[0], a.args[1].const_value
                if not (rest.free_symbols() & n.free_symbols()):
                    continue
                self.fresh += 1
                v = Sym(f"\x00t{self.fresh}")
                if k == "mod":  # n % k == n - k*q
                    self.memo[v] = idiv(self.expr(n), (kd, kd))
                    return self.expr(rest + c * (n - kd * Expr.atom(v)), depth + 1)
                sign = 1 if k == "floordiv" else -1  # cdiv(n, k) == -((-n) // k)
                self.memo[v] = imod(self.expr(sign * n), (kd, kd))
                # k*(n // k) == n - r ;  k*cdiv(n, k) == n + r'
                scaled = self.expr(kd * rest + c * (n - sign * Expr.atom(v)), depth + 1)
                return (_ceil_div(scaled[0], kd), _floor_div(scaled[1], kd))
        return None

    def truth(self, f: Formula) -> bool | None:
        if isinstance(f, BoolConst):
            return f.value
        if isinstance(f, Cmp):
            return _cmp_truth(f.op, self.expr(f.lhs - f.rhs))
        assert isinstance(f, BoolOp)
        ts = [self.truth(x) for x in f.args]
        if f.kind == "not":
            return None if ts[0] is None else not ts[0]
        if f.kind == "and":
            return False if False in ts else (True if all(t is True for t in ts) else None)
        return True if True in ts else (False if all(t is False for t in ts) else None)


def _ceil_div(x, k):
    return x if x in (INF, -INF) else -((-x) // k)


def _floor_div(x, k):
    return x if x in (INF, -INF) else x // k


def _cmp_truth(op: str, d: Interval) -> bool | None:
    lo, hi = d
    if op == ">=":
        return True if lo >= 0 else (False if hi < 0 else None)
    if op == ">":
        return True if lo > 0 else (False if hi <= 0 else None)
    if op == "<=":
        return True if hi <= 0 else (False if lo > 0 else None)
    if op == "<":
        return True if hi < 0 else (False if lo >= 0 else None)
    if op == "==":
        return True if lo == hi == 0 else (False if lo > 0 or hi < 0 else None)
    if lo == hi == 0:
        return False
    return True if lo > 0 or hi < 0 else None


def interval(e: Expr, box: Mapping[str, Interval]) -> Interval:
    """Sound bounds of ``e`` over ``box`` (symbols missing from ``box`` are ``>= 1``)."""
    return _Eval(box).expr(e)


def formula_truth(f: Formula, box: Mapping[str, Interval]) -> bool | None:
    """``True``/``False`` when ``f`` holds/fails at every point of ``box``, else ``None``."""
    return _Eval(box).truth(f)
