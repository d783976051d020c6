"""A linear relaxation of a nonlinear problem, so that products do not reach z3's nonlinear core.

Raw z3 gives up on shape arithmetic such as ``b*H + q*16 + 16 <= B*H`` (given
``b <= B - 1``, ``q <= H//16 - 1``): nonlinear integer arithmetic is
undecidable and its heuristics time out.  The relaxation keeps only linear
facts, which z3 decides quickly:

1. a symbolic division ``n // d`` becomes a fresh ``q`` with its defining
   inequalities (``d > 0 -> d*q <= n <= d*q + d - 1``, mirrored for ``d < 0``);
2. ``min``/``max``/``abs``/``where`` factors of a product are pushed outwards,
   ``min(x, y)*R == where(x <= y, x*R, y*R)``;
3. every remaining product (monomial of degree >= 2) becomes a fresh variable,
   tied to its factors by *product lemmas*, each the product of two
   non-negative quantities:

   * bounds (McCormick): ``(x - lo_x)*(R - lo_R) >= 0`` and the three other
     corner combinations, for ``M = x*R``;
   * facts: a linear fact ``L >= 0`` mentioning ``x`` times ``R - lo_R >= 0``
     (or ``hi_R - R``), e.g. ``(B - 1 - b)*h >= 0``, which is exactly the
     monotonicity step ``b <= B - 1  =>  b*h <= (B - 1)*h``.

Every added formula is true of the original values, so every original
solution extends to a relaxed one: *unsat of the relaxation proves unsat of
the original*.  A relaxed model proves nothing and is never reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeGuard

from ._expr import BoolOp, Cmp, Expr, Formula, Op, Sym, conj, disj, ge, le, maximum, minimum
from ._interval import INF, Interval, _Eval, idiv, imul
from ._normal import fmap, rebuild

__all__ = ["is_linear", "relax"]

_MAX_LEMMAS = 400


def _is_div(a: object) -> TypeGuard[Op]:
    """``a`` is a division atom (``//``, ``%``, ``cdiv``); narrows it to :class:`Op`."""
    return isinstance(a, Op) and a.kind in ("floordiv", "mod", "cdiv")


def _nonlinear(e: Expr) -> bool:
    return any(sum(p for _, p in m) > 1 for m, _ in e.terms)


def is_linear(fs: Sequence[Formula | Expr]) -> bool:
    """No product of non-constants and no symbolic divisor, anywhere (inside opaque
    operations and the conditions of ``where`` too).

    The one test of linearity: the decision procedure relaxes what fails it, and the
    static checks try a query under the assumptions that pass it first.
    """
    for f in fs:
        if any(_nonlinear(e) for e in _exprs(f)):
            return False
        for a in f.atoms():  # every atom, nested ones included
            if _is_div(a) and not a.args[1].is_const:
                return False
            if isinstance(a, Op) and any(_nonlinear(e) for x in a.args for e in _exprs(x)):
                return False
    return True


def _exprs(f: Formula | Expr):
    """The expressions a formula compares (an expression is its own)."""
    if isinstance(f, Expr):
        yield f
    elif isinstance(f, Cmp):
        yield f.lhs
        yield f.rhs
    elif isinstance(f, BoolOp):
        for a in f.args:
            yield from _exprs(a)


class _Relaxer:
    def __init__(self, box: Mapping[str, Interval]):
        self.box: dict[str, Interval] = dict(box)
        self.ev = _Eval(self.box)
        self.defs: list[Formula] = []
        self.mono: dict = {}  # monomial over linear-space atoms -> its variable (an Expr)
        self.pending: list = []  # monomials whose lemmas are still to be written
        self.n = 0

    def fresh(self, interval: Interval) -> Expr:
        self.n += 1
        name = f"%r{self.n}"
        self.box[name] = interval
        return Expr.atom(Sym(name))

    # 1. symbolic divisions -> quotient variables
    def pure(self, e: Expr) -> Expr:
        return e._map_atoms(self._pure_atom)

    def _pure_atom(self, a) -> Expr:
        if isinstance(a, Sym):
            return Expr.atom(a)
        args = [self.pure(x) if isinstance(x, Expr) else fmap(x, self.pure) for x in a.args]
        if not _is_div(a):
            return rebuild(a.kind, args)
        n, d = args
        # a division's operands are expressions (only ``where`` holds a condition)
        assert isinstance(n, Expr) and isinstance(d, Expr), a
        if d.is_const:
            return rebuild(a.kind, args)
        if a.kind == "cdiv":
            n = -n
        q = self.fresh(idiv(self.ev.expr(n), self.ev.expr(d)))
        self.defs.append(disj(le(d, 0), conj(le(d * q, n), le(n, d * q + d - 1))))
        self.defs.append(disj(ge(d, 0), conj(ge(d * q, n), ge(n, d * q + d + 1))))
        if a.kind == "floordiv":
            return q
        if a.kind == "cdiv":
            return -q
        return n - d * q

    # 2. + 3. products -> variables
    def lin(self, e: Expr) -> Expr:
        out = Expr.const(0)
        for m, c in e.terms:
            out = out + c * self.lin_mono(m)
        return out

    def lin_atom(self, a) -> Expr:
        if isinstance(a, Sym):
            return Expr.atom(a)
        args = [self.lin(x) if isinstance(x, Expr) else fmap(x, self.lin) for x in a.args]
        return rebuild(a.kind, args)

    def lin_mono(self, m) -> Expr:
        if not m:
            return Expr.const(1)
        if len(m) == 1 and m[0][1] == 1:
            return self.lin_atom(m[0][0])
        for i, (a, _p) in enumerate(m):
            if isinstance(a, Op) and a.kind in ("min", "max", "abs", "where"):
                rest = Expr({_mono_without(m, i): 1})
                return self.lin(_push(a, rest))
        # a product of symbols and division atoms with constant divisors
        factors = []
        for a, p in m:
            la = self.lin_atom(a)
            factors.extend([la] * p)
        prod = Expr.const(1)
        for f in factors:
            prod = prod * f
        key = prod.terms
        if len(key) != 1 or key[0][1] != 1 or sum(p for _, p in key[0][0]) < 2:
            return self.lin(prod)  # a factor folded into a constant or a sum
        km = key[0][0]
        v = self.mono.get(km)
        if v is None:
            iv = (1, 1)
            for a, p in km:
                for _ in range(p):
                    iv = imul(iv, self.ev.atom(a))
            v = self.mono[km] = self.fresh(iv)
            self.pending.append(km)
        return v

    def lemmas(self, facts: Sequence[Formula], budget: int) -> list[Formula]:
        """Product lemmas for the monomials met so far (see the module docstring)."""
        linear = [_as_geq(f) for f in facts]
        linear = [x for x in linear if x is not None]
        out: list[Formula] = []
        done = set()
        while self.pending and len(out) < budget:
            km = self.pending.pop(0)
            if km in done:
                continue
            done.add(km)
            M = self.mono[km]
            for i, (a, _p) in enumerate(km):
                x = Expr.atom(a)
                rm = _mono_without(km, i)
                R = Expr({rm: 1})
                xl, xu = self.ev.atom(a)
                Rl, Ru = self._mono_iv(rm)
                Rlin = self.lin(R)
                for (sx, bx), (sr, br) in (
                    ((1, xl), (1, Rl)),
                    ((-1, xu), (-1, Ru)),
                    ((-1, xu), (1, Rl)),
                    ((1, xl), (-1, Ru)),
                ):
                    if bx in (INF, -INF) or br in (INF, -INF):
                        continue
                    # (sx*(x - bx)) * (sr*(R - br)) >= 0, expanded with M = x*R
                    s = sx * sr
                    e = s * (M - br * x - bx * Rlin + bx * br)
                    out.append(ge(e, 0))
                for L, is_eq in linear:
                    if a not in L.atoms() or len(out) >= budget:
                        continue
                    if is_eq:
                        out.append(ge(self.lin(L * R), 0))
                        out.append(le(self.lin(L * R), 0))
                        continue
                    if Rl not in (INF, -INF):
                        out.append(ge(self.lin(L * (R - Rl)), 0))
                    if Ru not in (INF, -INF):
                        out.append(ge(self.lin(L * (Ru - R)), 0))
        return out

    def _mono_iv(self, m) -> Interval:
        iv = (1, 1)
        for a, p in m:
            for _ in range(p):
                iv = imul(iv, self.ev.atom(a))
        return iv


def _mono_without(m, i):
    a, p = m[i]
    out = list(m)
    if p == 1:
        del out[i]
    else:
        out[i] = (a, p - 1)
    return tuple(out)


def _push(a: Op, rest: Expr) -> Expr:
    """``a * rest`` with the choice moved outside the product."""
    k = a.kind
    if k == "where":
        c, x, y = a.args
        return Expr.atom(Op("where", (c, x * rest, y * rest)))
    if k == "abs":
        x = a.args[0]
        return Expr.atom(Op("where", (ge(x, 0), x * rest, -x * rest)))
    x, others = a.args[0], a.args[1:]
    other = minimum(*others) if k == "min" else maximum(*others)
    cond = le(x, other) if k == "min" else ge(x, other)
    return Expr.atom(Op("where", (cond, x * rest, other * rest)))


def _as_geq(f: Formula):
    """A linear top-level fact as ``(L, is_equality)`` meaning ``L >= 0`` / ``L == 0``."""
    if not isinstance(f, Cmp):
        return None
    d = f.difference()
    if any(sum(p for _, p in m) > 1 for m, _ in d.terms):
        return None
    return {
        ">=": (d, False),
        ">": (d - 1, False),
        "<=": (-d, False),
        "<": (-d - 1, False),
        "==": (d, True),
    }.get(f.op)


def relax(formulas: Sequence[Formula], box: Mapping[str, Interval]) -> tuple[list[Formula], dict]:
    """Linear formulas and an extended box whose unsat implies unsat of ``formulas``."""
    r = _Relaxer(box)
    pure = [fmap(f, r.pure) for f in formulas]
    pure += [fmap(f, r.pure) for f in r.defs]
    r.defs = []
    lin = [fmap(f, r.lin) for f in pure]
    # facts usable for lemmas: the linear ones among the purified top-level conjuncts
    tops: list[Formula] = []
    for f in pure:
        tops.extend(f.args if isinstance(f, BoolOp) and f.kind == "and" else [f])
    lin += r.lemmas([t for t in tops if isinstance(t, Cmp)], _MAX_LEMMAS)
    return lin, r.box
