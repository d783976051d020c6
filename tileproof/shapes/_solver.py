"""The only module that imports z3: one translator from expressions to z3, and checks.

Every check runs under a deterministic resource limit (z3's ``rlimit``, plus a
wall-clock timeout as a backstop), so a hard query answers ``unknown``
promptly and the same way on every run, instead of hanging.

Floor division ``q = n // d`` becomes a fresh integer ``q`` with

* ``d > 0``:  ``d*q <= n < d*q + d``
* ``d < 0``:  ``d*q >= n > d*q + d``

Sound and exact: for ``d > 0`` the first line says ``q <= n/d < q + 1``,
which one integer satisfies, ``floor(n/d)``; for ``d < 0`` dividing by ``d``
flips both inequalities into the same statement.  Python's ``n % d`` is then
``n - d*q`` (the sign of the divisor) and ``cdiv(n, d)`` is ``-((-n) // d)``.
Where ``d == 0`` the variable is left unconstrained; callers decide what a
zero divisor means (a refutation for ``prove``, outside the domain for
``bounds``) from the side conditions :func:`._normal.side_conditions` lists.
``min``/``max``/``abs``/``where`` become if-then-else terms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import z3

from ._expr import BoolConst, BoolOp, Cmp, Expr, Formula, Op, Sym
from ._interval import INF, Interval

__all__ = ["RLIMIT", "Session"]

RLIMIT = 1_500_000  # z3 resource units per check: about 0.1-0.3 s on the reference machine
TIMEOUT_MS = 5_000  # wall-clock backstop only; rlimit is what normally stops a check


class _Translator:
    def __init__(self) -> None:
        self.vars: dict[str, z3.ArithRef] = {}
        self.atoms: dict = {}
        self.quot: dict = {}
        self.defs: list = []
        self.fresh = 0

    def var(self, name: str) -> z3.ArithRef:
        v = self.vars.get(name)
        if v is None:
            v = self.vars[name] = z3.Int(name)
        return v

    def expr(self, e: Expr):
        total = None
        for m, c in e.terms:
            term = z3.IntVal(c) if not m or c != 1 else None
            for a, p in m:
                t = self.atom(a)
                for _ in range(p):
                    term = t if term is None else term * t
            total = term if total is None else total + term
        return total if total is not None else z3.IntVal(0)

    def atom(self, a):
        got = self.atoms.get(a)
        if got is None:
            got = self.atoms[a] = self._atom(a)
        return got

    def _atom(self, a):
        if isinstance(a, Sym):
            return self.var(a.name)
        assert isinstance(a, Op)
        k = a.kind
        if k == "where":
            c, x, y = a.args
            return z3.If(self.formula(c), self.expr(x), self.expr(y))
        if k == "floordiv":
            return self.quotient(*a.args)
        if k == "mod":
            n, d = a.args
            return self.expr(n) - self.expr(d) * self.quotient(n, d)
        if k == "cdiv":
            n, d = a.args
            return -self.quotient(-n, d)
        xs = [self.expr(x) for x in a.args]
        if k == "abs":
            return z3.If(xs[0] >= 0, xs[0], -xs[0])
        out = xs[0]
        for x in xs[1:]:
            out = z3.If(x < out, x, out) if k == "min" else z3.If(x > out, x, out)
        return out

    def quotient(self, n: Expr, d: Expr):
        key = (n, d)
        q = self.quot.get(key)
        if q is not None:
            return q
        self.fresh += 1
        q = self.quot[key] = z3.Int(f"%q{self.fresh}")
        N, D = self.expr(n), self.expr(d)
        pos = z3.And(D * q <= N, N < D * q + D)
        neg = z3.And(D * q >= N, N > D * q + D)
        if d.is_const:
            if d.const_value:  # a constant 0 divisor is unreachable (see _normal.rebuild)
                self.defs.append(pos if d.const_value > 0 else neg)
        else:
            self.defs.append(z3.Implies(D > 0, pos))
            self.defs.append(z3.Implies(D < 0, neg))
        return q

    def formula(self, f: Formula):
        if isinstance(f, BoolConst):
            return z3.BoolVal(f.value)
        if isinstance(f, Cmp):
            a, b = self.expr(f.lhs), self.expr(f.rhs)
            op = f.op
            if op == "==":
                return a == b
            if op == "!=":
                return a != b
            if op == "<":
                return a < b
            if op == "<=":
                return a <= b
            if op == ">":
                return a > b
            return a >= b
        assert isinstance(f, BoolOp)
        args = [self.formula(x) for x in f.args]
        if f.kind == "not":
            return z3.Not(args[0])
        return z3.And(*args) if f.kind == "and" else z3.Or(*args)


class Session:
    """A solver holding fixed facts and symbol bounds; :meth:`check` adds one more fact."""

    def __init__(
        self, facts: Sequence[Formula], box: Mapping[str, Interval], symbols: Iterable[str]
    ):
        self.tr = _Translator()
        self.solver = z3.Solver()
        self.solver.set("timeout", TIMEOUT_MS)
        self.symbols = sorted(set(symbols))
        for s in self.symbols:
            lo, hi = box.get(s, (1, INF))
            v = self.tr.var(s)
            if lo != -INF:
                self.solver.add(v >= lo)
            if hi != INF:
                self.solver.add(v <= hi)
        for f in facts:
            self.solver.add(self.tr.formula(f))
        self.solver.add(*self.tr.defs)
        self.tr.defs = []
        self._base = (dict(self.tr.atoms), dict(self.tr.quot))

    def check(
        self, *extra: Formula, rlimit: int = RLIMIT
    ) -> tuple[str, dict[str, int] | None, str]:
        """``("sat", model, "")``, ``("unsat", None, "")`` or ``("unknown", None, reason)``."""
        s = self.solver
        s.push()
        try:
            for f in extra:
                s.add(self.tr.formula(f))
            if self.tr.defs:
                s.add(*self.tr.defs)  # definitions are scoped with the facts that need them
                self.tr.defs = []
            s.set("rlimit", rlimit)
            r = s.check()
            if r == z3.sat:
                m = s.model()
                model = {
                    n: m.eval(self.tr.var(n), model_completion=True).as_long() for n in self.symbols
                }
                return "sat", model, ""
            if r == z3.unsat:
                return "unsat", None, ""
            return "unknown", None, f"z3: {s.reason_unknown()}"
        finally:
            s.pop()
            # terms translated inside the scope lost their definitions with the pop
            self.tr.atoms, self.tr.quot = dict(self._base[0]), dict(self._base[1])
            self.tr.defs = []
