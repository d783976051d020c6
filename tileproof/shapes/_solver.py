"""The only module that imports z3: one translator from expressions to z3, and checks.

Every check runs under a deterministic resource limit (z3's ``rlimit``, plus a
wall-clock timeout as a backstop far above it), so a hard query answers
``unknown`` promptly and the same way on every run, instead of hanging; the
``unknown`` says which budget ran out.

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

import time
from collections.abc import Iterable, Mapping, Sequence

import z3

from ._expr import BoolConst, BoolOp, Cmp, Expr, Formula, Op, Sym
from ._interval import INF, Interval

__all__ = ["RLIMIT", "Session", "clear"]

RLIMIT = 1_500_000  # z3 resource units per check: about 0.1-0.3 s on the reference machine
# Wall-clock backstop only, far above what RLIMIT takes even on a loaded machine, so that
# the deterministic rlimit is what stops a check and verdicts do not depend on load.
TIMEOUT_MS = 20_000


class _Terms:
    """z3 terms built once per process and shared by sessions.

    Building z3 terms through its Python API costs far more than checking the
    small problems the verifier asks (each operation coerces, checks sorts
    and wraps a new reference), and consecutive problems share most of their
    facts.  So translations are memoised, keyed by the expression *and the
    names its quotient variables get in the session*: a session numbers its
    quotients ``%q1, %q2, ...`` in the order a depth-first translation meets
    them (a quotient before its operands, except ``mod``, whose operands come
    first), and asserts their definitions innermost first.  A session that
    uses the memo therefore hands z3 exactly the terms, names and assertion
    order a fresh translation would, so answers and models are unchanged.

    ``order(x)``: the quotient keys ``(n, d)`` of ``x`` in numbering order;
    ``deps(x)``: the same keys in definition order (operands first).
    """

    def __init__(self) -> None:
        # A context of its own: z3 numbers terms in creation order (recycling freed
        # numbers) and its rewriting and search orders follow those numbers, so a
        # context shared with earlier work would let that work change the models found.
        self.ctx = z3.Context()
        self.vars: dict[str, z3.ArithRef] = {}
        self.memo: dict = {}
        self._order: dict = {}
        self._deps: dict = {}

    def var(self, name: str) -> z3.ArithRef:
        v = self.vars.get(name)
        if v is None:
            v = self.vars[name] = z3.Int(name, self.ctx)
        return v

    # -- naming-independent structure
    def order(self, x) -> tuple:
        got = self._order.get(x)
        if got is None:
            got = self._order[x] = _uniq(self._walk(x, pre=True))
        return got

    def deps(self, x) -> tuple:
        got = self._deps.get(x)
        if got is None:
            got = self._deps[x] = _uniq(self._walk(x, pre=False))
        return got

    def _walk(self, x, pre: bool) -> list:
        out: list = []
        if isinstance(x, Expr):
            for m, _c in x.terms:
                for a, _p in m:
                    out += self._walk_atom(a, pre)
        elif isinstance(x, Cmp):
            out += self.order(x.lhs) if pre else self.deps(x.lhs)
            out += self.order(x.rhs) if pre else self.deps(x.rhs)
        elif isinstance(x, BoolOp):
            for f in x.args:
                out += self.order(f) if pre else self.deps(f)
        return out

    def _walk_atom(self, a, pre: bool) -> list:
        sub = self.order if pre else self.deps
        if isinstance(a, Sym):
            return []
        k = a.kind
        if k in ("floordiv", "mod", "cdiv"):
            n, d = a.args
            key = (-n, d) if k == "cdiv" else (n, d)
            inner = [*sub(n), *sub(d)]
            if pre and k != "mod":
                return [key, *inner]
            return [*inner, key]
        return [y for x in a.args for y in sub(x)]

    # -- terms under a naming
    def _names(self, x, names: dict) -> tuple:
        return tuple([names[k] for k in self.order(x)])

    def expr(self, e: Expr, names: dict):
        key = (e, self._names(e, names))
        got = self.memo.get(key)
        if got is None:
            total = None
            for m, c in e.terms:
                term = z3.IntVal(c, self.ctx) if not m or c != 1 else None
                for a, p in m:
                    t = self.atom(a, names)
                    for _ in range(p):
                        term = t if term is None else term * t
                total = term if total is None else total + term
            got = self.memo[key] = total if total is not None else z3.IntVal(0, self.ctx)
        return got

    def atom(self, a, names: dict):
        if isinstance(a, Sym):
            return self.var(a.name)
        assert isinstance(a, Op)
        k = a.kind
        if k == "where":
            c, x, y = a.args
            return z3.If(self.formula(c, names), self.expr(x, names), self.expr(y, names))
        if k == "floordiv":
            n, d = a.args
            return self.quotient(n, d, names)
        if k == "mod":
            n, d = a.args
            return self.expr(n, names) - self.expr(d, names) * self.quotient(n, d, names)
        if k == "cdiv":
            n, d = a.args
            return -self.quotient(-n, d, names)
        xs = [self.expr(x, names) for x in a.args]
        if k == "abs":
            return z3.If(xs[0] >= 0, xs[0], -xs[0])
        out = xs[0]
        for x in xs[1:]:
            out = z3.If(x < out, x, out) if k == "min" else z3.If(x > out, x, out)
        return out

    def quotient(self, n: Expr, d: Expr, names: dict):
        return self.var(f"%q{names[(n, d)]}")

    def definitions(self, key: tuple, names: dict) -> list:
        """The defining inequalities of quotient ``key = (n, d)`` under ``names``."""
        n, d = key
        mk = (key, names[key], self._names(n, names), self._names(d, names))
        got = self.memo.get(mk)
        if got is None:
            q = self.quotient(n, d, names)
            N, D = self.expr(n, names), self.expr(d, names)
            pos = z3.And(D * q <= N, N < D * q + D)
            neg = z3.And(D * q >= N, N > D * q + D)
            if d.is_const:
                # a constant 0 divisor is unreachable (see _normal.rebuild)
                got = [pos if d.const_value > 0 else neg] if d.const_value else []
            else:
                got = [z3.Implies(D > 0, pos), z3.Implies(D < 0, neg)]
            self.memo[mk] = got
        return got

    def formula(self, f: Formula, names: dict):
        key = (f, self._names(f, names))
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = self._formula(f, names)
        return got

    def _formula(self, f: Formula, names: dict):
        if isinstance(f, BoolConst):
            return z3.BoolVal(f.value, self.ctx)
        if isinstance(f, Cmp):
            a, b = self.expr(f.lhs, names), self.expr(f.rhs, names)
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
        args = [self.formula(x, names) for x in f.args]
        if f.kind == "not":
            return z3.Not(args[0])
        if not args:  # z3.And() / z3.Or() alone would build in z3's global context
            return z3.BoolVal(f.kind == "and", self.ctx)
        return z3.And(*args) if f.kind == "and" else z3.Or(*args)

    def bound(self, name: str, lo, hi) -> list:
        key = ("bound", name, lo, hi)
        got = self.memo.get(key)
        if got is None:
            v = self.var(name)
            got = self.memo[key] = ([v >= lo] if lo != -INF else []) + (
                [v <= hi] if hi != INF else []
            )
        return got


def _why_unknown(reason: str, rlimit: int, elapsed: float) -> str:
    """Which budget ran out: z3 reports both the rlimit and the timeout as ``canceled``."""
    if reason in ("canceled", "timeout", "max. resource limit exceeded"):
        if elapsed * 1000 >= 0.9 * TIMEOUT_MS:
            return (
                f"z3 stopped by the wall-clock backstop ({TIMEOUT_MS // 1000} s) before its "
                f"resource limit of {rlimit} units: the machine may be overloaded"
            )
        return f"z3 ran out of its resource limit ({rlimit} rlimit units, deterministic)"
    return f"z3 gave up: {reason}"


def _uniq(keys: list) -> tuple:
    return tuple(dict.fromkeys(keys))


_TERMS = _Terms()
_MAX_TERMS = 1 << 16


def clear() -> None:
    """Forget every memoised translation and start a new z3 context (see :class:`_Terms`)."""
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
        self.solver = z3.Solver(ctx=tr.ctx)
        self.solver.set("timeout", TIMEOUT_MS)
        self.symbols = sorted(set(symbols))
        self.names: dict = {}  # quotient key -> its number in this session
        self.fresh = 0
        asserted = []
        for s in self.symbols:
            lo, hi = box.get(s, (1, INF))
            asserted += tr.bound(s, lo, hi)
        pending: list = []
        for f in facts:
            asserted.append(self._translate(f, pending))
        self._assert(asserted + pending)
        self._base = dict(self.names)

    def _translate(self, f: Formula, pending: list):
        """``f`` as a z3 term; definitions of the quotients it introduces go to ``pending``."""
        tr, names = self.tr, self.names
        new = [k for k in tr.order(f) if k not in names]
        for k in new:
            self.fresh += 1
            names[k] = self.fresh
        t = tr.formula(f, names)
        if new:
            fresh = set(new)
            for k in tr.deps(f):
                if k in fresh:
                    pending += tr.definitions(k, names)
        return t

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
            pending: list = []
            asserted = [self._translate(f, pending) for f in extra]
            # definitions are scoped with the facts that need them
            self._assert(asserted + pending)
            s.set("rlimit", rlimit)  # per check: z3 counts it from the current usage
            t0 = time.perf_counter()
            r = s.check()
            if r == z3.sat:
                m = s.model()
                model = {
                    n: m.eval(self.tr.var(n), model_completion=True).as_long() for n in self.symbols
                }
                return "sat", model, ""
            if r == z3.unsat:
                return "unsat", None, ""
            return (
                "unknown",
                None,
                _why_unknown(s.reason_unknown(), rlimit, time.perf_counter() - t0),
            )
        finally:
            s.pop()
            # quotients first met inside the scope lost their definitions with the pop;
            # their numbers are not reused (the counter goes on, as it always has)
            self.names = dict(self._base)
