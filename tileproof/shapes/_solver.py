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

__all__ = ["RLIMIT", "Session", "clear"]

RLIMIT = 1_500_000  # z3 resource units per check: about 0.1-0.3 s on the reference machine
TIMEOUT_MS = 5_000  # wall-clock backstop only; rlimit is what normally stops a check


class _Terms:
    """Expressions, formulas and quotients translated once per process, shared by sessions.

    Building z3 terms through its Python API costs far more than checking the
    small problems the verifier asks (each operation coerces, checks sorts
    and wraps a new reference), and consecutive problems share most of their
    facts.  So every translation is memoised with the quotients it relies on:
    ``term(x)`` is ``(z3 term, deps)``, ``deps`` the quotient keys ``(n, d)``
    whose definitions the term needs, inner ones first, in the order a
    depth-first translation meets them.  A session asserts the definitions
    of the quotients it has not defined yet, in that order, exactly where a
    fresh translator would have produced them.  A quotient has one z3
    variable per process (``%q<k>``), so two sessions that use the same
    ``n // d`` share a name; each still asserts its definition itself.
    """

    def __init__(self) -> None:
        self.vars: dict[str, z3.ArithRef] = {}
        self.memo: dict = {}
        self.quot: dict = {}  # (n, d) -> (z3 variable, definitions)
        self.fresh = 0

    def var(self, name: str) -> z3.ArithRef:
        v = self.vars.get(name)
        if v is None:
            v = self.vars[name] = z3.Int(name)
        return v

    def expr(self, e: Expr):
        got = self.memo.get(e)
        if got is None:
            got = self.memo[e] = self._expr(e)
        return got

    def _expr(self, e: Expr):
        total = None
        deps: tuple = ()
        for m, c in e.terms:
            term = z3.IntVal(c) if not m or c != 1 else None
            for a, p in m:
                t, d = self.atom(a)
                deps = _merge(deps, d)
                for _ in range(p):
                    term = t if term is None else term * t
            total = term if total is None else total + term
        return (total if total is not None else z3.IntVal(0)), deps

    def atom(self, a):
        key = ("atom", a)
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = self._atom(a)
        return got

    def _atom(self, a):
        if isinstance(a, Sym):
            return self.var(a.name), ()
        assert isinstance(a, Op)
        k = a.kind
        if k == "where":
            c, x, y = a.args
            (tc, dc), (tx, dx), (ty, dy) = self.formula(c), self.expr(x), self.expr(y)
            return z3.If(tc, tx, ty), _merge(dc, dx, dy)
        if k == "floordiv":
            return self.quotient(*a.args)
        if k == "mod":
            n, d = a.args
            (tn, dn), (td, dd), (tq, dq) = self.expr(n), self.expr(d), self.quotient(n, d)
            return tn - td * tq, _merge(dn, dd, dq)
        if k == "cdiv":
            n, d = a.args
            tq, dq = self.quotient(-n, d)
            return -tq, dq
        pairs = [self.expr(x) for x in a.args]
        xs = [t for t, _ in pairs]
        deps = _merge(*(d for _, d in pairs))
        if k == "abs":
            return z3.If(xs[0] >= 0, xs[0], -xs[0]), deps
        out = xs[0]
        for x in xs[1:]:
            out = z3.If(x < out, x, out) if k == "min" else z3.If(x > out, x, out)
        return out, deps

    def quotient(self, n: Expr, d: Expr):
        key = (n, d)
        got = self.quot.get(key)
        if got is None:
            (N, dn), (D, dd) = self.expr(n), self.expr(d)
            self.fresh += 1
            q = z3.Int(f"%q{self.fresh}")
            pos = z3.And(D * q <= N, N < D * q + D)
            neg = z3.And(D * q >= N, N > D * q + D)
            if d.is_const:
                # a constant 0 divisor is unreachable (see _normal.rebuild)
                defs = ([pos if d.const_value > 0 else neg] if d.const_value else [])
            else:
                defs = [z3.Implies(D > 0, pos), z3.Implies(D < 0, neg)]
            got = self.quot[key] = (q, defs, _merge(dn, dd, (key,)))
        return got[0], got[2]

    def formula(self, f: Formula):
        got = self.memo.get(f)
        if got is None:
            got = self.memo[f] = self._formula(f)
        return got

    def _formula(self, f: Formula):
        if isinstance(f, BoolConst):
            return z3.BoolVal(f.value), ()
        if isinstance(f, Cmp):
            (a, da), (b, db) = self.expr(f.lhs), self.expr(f.rhs)
            deps = _merge(da, db)
            op = f.op
            if op == "==":
                return a == b, deps
            if op == "!=":
                return a != b, deps
            if op == "<":
                return a < b, deps
            if op == "<=":
                return a <= b, deps
            if op == ">":
                return a > b, deps
            return a >= b, deps
        assert isinstance(f, BoolOp)
        pairs = [self.formula(x) for x in f.args]
        args = [t for t, _ in pairs]
        deps = _merge(*(d for _, d in pairs))
        if f.kind == "not":
            return z3.Not(args[0]), deps
        return (z3.And(*args) if f.kind == "and" else z3.Or(*args)), deps

    def bound(self, name: str, lo, hi) -> list:
        key = ("bound", name, lo, hi)
        got = self.memo.get(key)
        if got is None:
            v = self.var(name)
            got = self.memo[key] = ([v >= lo] if lo != -INF else []) + (
                [v <= hi] if hi != INF else [])
        return got


def _merge(*deps: tuple) -> tuple:
    """Concatenate dependency lists, first occurrence kept (order is definition order)."""
    parts = [d for d in deps if d]
    if len(parts) <= 1:
        return parts[0] if parts else ()
    out: dict = {}
    for d in parts:
        for k in d:
            out.setdefault(k, None)
    return tuple(out)


_TERMS = _Terms()
_MAX_TERMS = 1 << 16


def clear() -> None:
    """Forget every memoised translation (for timing from a cold start)."""
    global _TERMS
    _TERMS = _Terms()


def _terms() -> _Terms:
    global _TERMS
    if len(_TERMS.memo) > _MAX_TERMS:
        _TERMS = _Terms()
    return _TERMS


class Session:
    """A solver holding fixed facts and symbol bounds; :meth:`check` adds one more fact."""

    def __init__(
        self, facts: Sequence[Formula], box: Mapping[str, Interval], symbols: Iterable[str]
    ):
        self.tr = tr = _terms()
        self.solver = z3.Solver()
        self.solver.set("timeout", TIMEOUT_MS)
        self.symbols = sorted(set(symbols))
        self.defined: set = set()
        asserted = []
        for s in self.symbols:
            lo, hi = box.get(s, (1, INF))
            asserted += tr.bound(s, lo, hi)
        pending: list = []
        for f in facts:
            t, deps = tr.formula(f)
            asserted.append(t)
            self._define(deps, pending)
        self._assert(asserted + pending)
        self._base = frozenset(self.defined)

    def _define(self, deps: tuple, out: list) -> None:
        """Queue the definitions of the quotients in ``deps`` not defined yet."""
        for k in deps:
            if k not in self.defined:
                self.defined.add(k)
                out += self.tr.quot[k][1]

    def _assert(self, terms: list) -> None:
        s = self.solver
        ctx, ref = s.ctx.ref(), s.solver
        for t in terms:  # straight to the C API: the terms are z3 Booleans already
            z3.Z3_solver_assert(ctx, ref, t.as_ast())

    def check(
        self, *extra: Formula, rlimit: int = RLIMIT
    ) -> tuple[str, dict[str, int] | None, str]:
        """``("sat", model, "")``, ``("unsat", None, "")`` or ``("unknown", None, reason)``."""
        s = self.solver
        s.push()
        try:
            asserted, pending = [], []
            for f in extra:
                t, deps = self.tr.formula(f)
                asserted.append(t)
                self._define(deps, pending)
            # definitions are scoped with the facts that need them
            self._assert(asserted + pending)
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
            # quotients first defined inside the scope lost their definitions with the pop
            self.defined = set(self._base)
