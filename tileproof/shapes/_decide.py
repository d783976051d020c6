"""``prove`` and ``bounds``: the public decisions, solver-free whenever possible.

A query goes through increasingly expensive stages and stops at the first
that decides it:

1. the prepared assumption set (:mod:`._context`, cached per assumption set):
   declared domains, divisibility and equality substitutions, propagated
   symbol bounds;
2. normal form: the rewritten query folds to a constant, or its canonical form
   (:func:`._normal.canon`) is an identity;
3. interval arithmetic (:mod:`._interval`) decides the comparison for every
   point of the bounds;
4. a small concrete search finds a counterexample (valid by construction);
5. z3 (:mod:`._solver`), first on the linear relaxation of a nonlinear
   problem (:mod:`._relax`), then on the exact problem, under a resource limit.

"proved" only ever comes from stages 2, 3 or an unsat answer of z3; every
"refuted" carries a counterexample that was re-evaluated on the query and the
assumptions as the user wrote them.  "unknown" says why.

Bounds: an exact bound is a value some admissible point attains (a witness)
that is also a proved bound (interval arithmetic or an unsat z3 query).  A
bound beyond ``±2**62`` (``UNBOUNDED``) is reported as ``None``; the search for
it is a concrete witness past the threshold or a satisfiable z3 query.
"""

from __future__ import annotations

import itertools
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import _known
from ._context import clear_memo as clear_context_memo
from ._expr import BoolConst, Expr, Formula, ShapeError, conj, eq, lt, negate
from ._input import clear_memo as clear_input_memo
from ._input import expr_input, formula_input
from ._interval import INF, formula_truth, interval
from ._normal import canon_formula, clear_memo, has_division, side_conditions, simplify
from ._parse import written
from ._search import holds, points, probe_points, shrink

__all__ = ["UNBOUNDED", "Decision", "bounds", "clear_caches", "forget_history", "prove"]

UNBOUNDED = 2**62
_SEARCH_POINTS = 48
_BOUNDS_POINTS = 48
_CACHE_SIZE = 2048
_QUICK_RLIMIT = 300_000  # z3 resource units for the exact check tried before a relaxation

VERDICTS = ("proved", "refuted", "unknown", "inconsistent")


@dataclass(frozen=True)
class Decision:
    """The answer to ``prove(query, assume)``.

    ``verdict`` is one of ``proved``, ``refuted``, ``unknown``, ``inconsistent``;
    ``counterexample`` (``refuted`` only) maps every symbol to a value where
    the assumptions hold and the query fails (or a divisor is zero); ``reason``
    says what was refuted or why the answer is unknown.  ``query`` and
    ``assume`` are what the caller passed.

    ``bool(decision)`` raises: an ``unknown`` must not read as a pass or a
    failure by accident.  Compare ``decision.verdict`` or use ``.proved``.
    """

    verdict: str
    counterexample: dict[str, int] | None = field(default=None)
    reason: str = ""
    query: object = None
    assume: tuple = ()

    @property
    def proved(self) -> bool:
        return self.verdict == "proved"

    def __bool__(self) -> bool:
        raise ShapeError(
            f"a Decision ({self.verdict}) has no truth value: test decision.verdict == 'proved' "
            "(or decision.proved); an 'unknown' is not a pass"
        )

    def __str__(self) -> str:
        out = self.verdict
        if self.counterexample:
            out += " at " + ", ".join(f"{k}={v}" for k, v in self.counterexample.items())
        if self.reason:
            out += f" ({self.reason})"
        return out


# ------------------------------------------------------------------------------ caches

_contexts: OrderedDict = OrderedDict()
_proofs: OrderedDict = OrderedDict()
_bounds: OrderedDict = OrderedDict()


def _remember(cache: OrderedDict, key, value):
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def clear_caches() -> None:
    """Forget every cached decision, prepared assumption set, parse and memo (for timing)."""
    from ._atom import clear_memo as clear_algebra_memo

    clear_algebra_memo()
    _contexts.clear()
    _proofs.clear()
    _bounds.clear()
    _known.clear()
    clear_memo()
    clear_context_memo()
    solver = sys.modules.get(__package__ + "._solver")  # z3 is imported lazily: only if loaded
    if solver is not None:
        solver.clear()
    written.cache_clear()
    clear_input_memo()


def forget_history() -> None:
    """Answer the next questions as a fresh process would (the verifier calls it per kernel).

    What z3 answers, and so which counterexample a refutation carries, depends on the
    terms its context already holds (it numbers them in creation order and orders its
    rewriting and search by those numbers), and a cached decision or a remembered
    admissible point is what an earlier question left behind.  So a kernel's report
    would depend on what the process verified before it.  This drops every cached
    decision, prepared assumption set and remembered point, and starts a new z3
    context; the memos of pure functions (parses, normal forms, atoms, propagation
    steps) are kept, as they answer the same whatever came first.
    """
    _contexts.clear()
    _proofs.clear()
    _bounds.clear()
    _known.clear()
    solver = sys.modules.get(__package__ + "._solver")  # z3 is imported lazily: only if loaded
    if solver is not None:
        solver.clear()


def _context(assume: tuple[Formula, ...]):
    from ._context import Context

    ctx = _contexts.get(assume)
    if ctx is None:
        ctx = _remember(_contexts, assume, Context(assume))
    return ctx


def _as_assumptions(assume) -> tuple:
    if isinstance(assume, (str, Formula, bool)):
        return (assume,)
    return tuple(assume)


# ------------------------------------------------------------------------------- prove


def prove(query, assume: Sequence = ()) -> Decision:
    """Decide whether ``query`` holds for every admissible value of its symbols.

    ``query`` and each assumption are strings or :class:`Formula` objects.  A
    query that divides by zero at an admissible point (as written, before any
    folding: ``x // x == 1`` with ``x >= 0``) is ``refuted`` there; an
    assumption is false wherever it would divide by zero.
    """
    given = _as_assumptions(assume)
    try:
        verdict, cex, reason = _prove(query, given)
    except (OverflowError, RecursionError) as e:  # a safety net behind the input limits
        verdict, cex, reason = (
            "unknown",
            None,
            f"input too large to decide ({type(e).__name__}: {e}); "
            "an expression object nested this deep or with numbers this large is past "
            "what the decision procedure handles",
        )
    return Decision(verdict, dict(cex) if cex is not None else None, reason, query, given)


def _prove(query, given: tuple):
    qi = formula_input(query)
    ais = [formula_input(a) for a in given]
    key = (qi.key, _assumption_set(ais))
    res = _proofs.get(key)
    if res is None:
        res = _remember(_proofs, key, _Prove(qi, ais, key[1]).run())
    return res


def _assumption_set(ais) -> tuple[Formula, ...]:
    """The assumptions' formulas, then the side conditions of their divisors as written."""
    A = [a.obj for a in ais]
    for a in ais:
        if a.text is not None:
            for f in a.side_conditions():
                if f not in A:
                    A.append(f)
    return tuple(A)


def _admissible(ctx, A, ais, user) -> bool:
    """``user`` satisfies the assumptions, as the caller wrote them."""
    return holds(A, user) and all(a.outcome(user) == "true" for a in ais)


def _zero_divisor(ctx, A, ais, names, guard: Formula, d: Expr, text: str, recheck):
    """None when ``d`` is non-zero wherever evaluation reaches it, else a decision.

    ``recheck(user)`` confirms on the caller's input that evaluation divides by
    zero at the point found.
    """
    try:
        g2, d2 = ctx.rewrite(guard), ctx.rewrite(d)
    except ShapeError as e:
        return ("unknown", None, f"could not rewrite divisor {text}: {e}")
    if isinstance(g2, BoolConst) and not g2.value:
        return None
    lo, hi = interval(d2, ctx.box)
    if lo > 0 or hi < 0 or formula_truth(g2, ctx.box) is False:
        return None
    at_zero = conj(g2, eq(d2, 0))
    syms = ctx.symbols_for(at_zero)

    def zero_here(p):
        return holds(ctx.facts, p) and holds((at_zero,), p)

    found = next((p for p in points(syms, ctx.box, _SEARCH_POINTS) if zero_here(p)), None)
    if found is None:
        status, found, why = _solve(ctx.facts, at_zero, ctx.box, syms)
        if status == "unsat":
            return None
        if status != "sat":
            return ("unknown", None, f"could not rule out division by zero by {text}: {why}")
    found = shrink(found, zero_here, ctx.box)
    user = ctx.user_point(found, names)
    if not (_admissible(ctx, A, ais, user) and recheck(user)):
        return ("unknown", None, f"internal: division-by-zero witness {user} failed re-check")
    always = d.is_const or d2.is_const
    return ("refuted", user, f"division by zero: {text} {'is' if always else 'can be'} 0")


class _Prove:
    def __init__(self, qi, ais, A: tuple[Formula, ...]):
        self.qi, self.ais, self.A = qi, ais, A
        self.q = qi.obj
        self.ctx = _context(A)
        self.extra = set(qi.names)
        for a in ais:
            self.extra |= a.names

    def run(self):
        ctx = self.ctx
        if ctx.empty:
            return ("inconsistent", None, "the assumptions admit no values")
        for guard, d, text in self.qi.divisors:
            res = _zero_divisor(
                ctx,
                self.A,
                self.ais,
                self.extra,
                guard,
                d,
                text,
                lambda u: self.qi.outcome(u) == "zero",
            )
            if res is not None:
                if res[0] == "refuted":
                    _known.remember(res[1])
                return res
        try:
            g = ctx.rewrite(self.q)
        except ShapeError as e:
            return ("unknown", None, f"could not rewrite the query: {e}")
        if not isinstance(g, BoolConst) and has_division(g):
            c = canon_formula(g)
            if c is not g:
                g = simplify(c, ctx.box)
        if isinstance(g, BoolConst):
            return self.proved() if g.value else self.refute_anywhere()
        syms = ctx.symbols_for(g)
        facts = ctx.facts

        def falsifies(p):
            return holds(facts, p) and not holds((g,), p)

        for p in points(syms, ctx.box, _SEARCH_POINTS):
            if falsifies(p):
                return self.refuted(p, falsifies)
        status, model, why = _solve(facts, negate(g), ctx.box, syms, divisors_of=[g])
        if status == "unsat":
            return self.proved()
        if status == "sat":
            return self.refuted(model, falsifies)
        return ("unknown", None, why)

    # -- outcomes
    def proved(self):
        ctx = self.ctx
        if ctx.consistent or ctx.witness() is not None:
            return ("proved", None, "")
        if _known.admits(ctx):  # a point seen before satisfies these assumptions too
            ctx.consistent = True
            return ("proved", None, "")
        status, m, _why = _solve(ctx.facts, None, ctx.box, ctx.symbols_for())
        if status == "unsat":
            ctx.consistent = False
            return ("inconsistent", None, "the assumptions admit no values")
        if status == "sat":
            ctx.consistent = True
            _known.remember(ctx.user_point(m))
            return ("proved", None, "")
        return (
            "proved",
            None,
            "holds wherever the assumptions do; whether they admit any value is unknown",
        )

    def refute_anywhere(self):
        ctx = self.ctx
        w = ctx.witness()
        if w is None:
            status, w, why = _solve(ctx.facts, None, ctx.box, ctx.symbols_for())
            if status == "unsat":
                ctx.consistent = False
                return ("inconsistent", None, "the assumptions admit no values")
            if status != "sat":
                return ("unknown", None, why)
            ctx.consistent = True
            _known.remember(ctx.user_point(w))
        return self.refuted(w, lambda p: holds(ctx.facts, p))

    def refuted(self, point, ok, reason: str = ""):
        ctx = self.ctx
        point = shrink(point, ok, ctx.box)
        user = ctx.user_point(point, self.extra)
        if not _admissible(ctx, self.A, self.ais, user):
            return ("unknown", None, f"internal: counterexample {user} violates the assumptions")
        outcome = self.qi.outcome(user)  # on the query as written
        if outcome == "true":
            return ("unknown", None, f"internal: counterexample {user} satisfies the query")
        _known.remember(user)  # admissible: re-checked on the assumptions above
        if outcome == "zero":
            return ("refuted", user, f"division by zero at {_show(user)}")
        return ("refuted", user, reason or f"fails at {_show(user)}")


def _show(env: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items())


# ------------------------------------------------------------------------------ solver


def _solve(facts, extra: Formula | None, box, syms, divisors_of=()):
    """z3 on ``facts and extra``; the linear relaxation first when the problem is nonlinear.

    Symbolic divisors of ``divisors_of`` are known non-zero where reached, and
    are asserted so.  Returns ``(status, model-or-None, reason)``.

    A nonlinear problem first gets the exact check under a small budget
    (:data:`_QUICK_RLIMIT`): most are decided there within milliseconds,
    while building and checking the relaxation took up to a few hundred
    (it is sat, hence useless, for most problems the exact check decides).
    The answer is the one the relaxation-first order gives: a relaxation is
    unsat only when the exact problem is, and z3 behaves identically up to
    the point where a resource limit stops it, so a decisive quick answer
    (and its model) is the full check's answer.  Only when the quick check
    runs out does the relaxation, then the full exact check, follow as before.
    """
    from ._relax import is_linear, relax
    from ._solver import Session

    fs = list(facts) + side_conditions(divisors_of)
    goal = [extra] if extra is not None else []
    if not is_linear(fs + goal):
        quick = Session(fs, box, syms).check(*goal, rlimit=_QUICK_RLIMIT)
        if quick[0] != "unknown":
            return quick
        lin, lbox = relax(fs + goal, box)
        status, _m, _why = Session(lin, lbox, syms).check()
        if status == "unsat":
            return "unsat", None, ""
    return Session(fs, box, syms).check(*goal)


# ------------------------------------------------------------------------------ bounds


def bounds(expr, assume: Sequence = ()) -> tuple[int | None, int | None]:
    """Exact ``(lower, upper)`` of ``expr`` over the admissible points where it is defined.

    *Defined* means that evaluating ``expr`` as the caller wrote it divides by
    no zero: the divisors are collected before any folding, so ``x // x``
    under ``0 <= x <= 10`` is bounded over ``1 <= x <= 10`` and
    ``(y // (x - 1))*0 + x`` leaves out ``x == 1`` although its normal form is
    ``x``.  (``prove`` instead *refutes* a query that divides by zero.)
    ``None`` means unbounded (past ``±2**62``).  Raises :class:`ShapeError`
    when the assumptions admit no value, when no admissible point defines
    ``expr``, or when an exact bound cannot be established within the solver's
    resource limit (never a guess).
    """
    try:
        ei = expr_input(expr)
        ais = [formula_input(a) for a in _as_assumptions(assume)]
        key = (ei.key, _assumption_set(ais))
        res = _bounds.get(key)
        if res is None:
            res = _remember(_bounds, key, _Bounds(ei, ais, key[1]).run())
        return res
    except (OverflowError, RecursionError) as e:  # a safety net behind the input limits
        raise ShapeError(
            f"bounds: input too large ({type(e).__name__}: {e}); an expression object nested "
            "this deep or with numbers this large is past what the decision procedure handles"
        ) from None


class _Bounds:
    def __init__(self, ei, ais, A: tuple[Formula, ...]):
        e = ei.obj
        self.e0, self.A = (ei.text.text if ei.text is not None else e), A  # e0: for messages
        self.ctx = ctx = _context(A)
        if ctx.empty:
            raise ShapeError(f"bounds of {self.e0}: the assumptions admit no values")
        try:
            self.e = ctx.rewrite(e)
            # defined: every divisor the caller wrote is non-zero where evaluation reaches it
            defined = [ctx.rewrite(f) for f in ei.side_conditions()]
        except ShapeError as err:
            raise ShapeError(f"bounds of {self.e0}: {err}") from None
        defined = [f for f in defined if not (isinstance(f, BoolConst) and f.value)]
        self.domain = list(ctx.facts) + defined + side_conditions([self.e])
        self.syms = ctx.symbols_for(self.e, *defined)
        self.sessions: dict = {}

    def value(self, p) -> int | None:
        if not holds(self.domain, p):
            return None
        try:
            return self.e.evaluate(p)
        except ZeroDivisionError:
            return None

    def run(self):
        ctx, e = self.ctx, self.e
        lo_proved, hi_proved = interval(e, ctx.box)
        best_lo = best_hi = None
        small = points(self.syms, ctx.box, _BOUNDS_POINTS)
        for p in itertools.chain(
            itertools.islice(small, 1), probe_points(self.syms, ctx.box), small
        ):
            v = self.value(p)
            if v is None:
                continue
            best_lo = v if best_lo is None else min(best_lo, v)
            best_hi = v if best_hi is None else max(best_hi, v)
            if best_lo in (lo_proved, -INF) or best_lo < -UNBOUNDED:
                if best_hi in (hi_proved, INF) or best_hi > UNBOUNDED:
                    break  # both ends attained (or past the threshold): nothing to search for
        if best_lo is None or best_hi is None:  # set together: no point had a value
            status, model, why = self.solve(None)
            if status == "unsat":
                raise ShapeError(f"bounds of {self.e0}: no admissible value where it is defined")
            if status != "sat":
                raise ShapeError(f"bounds of {self.e0}: could not find an admissible value ({why})")
            best_lo = best_hi = self.checked(model)
        lo = self.tighten(best_lo, lo_proved, 1)
        hi = self.tighten(best_hi, hi_proved, -1)
        return (lo, hi)

    def checked(self, model) -> int:
        v = self.value(model)
        if v is None:
            raise ShapeError(
                f"bounds of {self.e0}: internal: solver model {model} is not admissible"
            )
        return v

    def solve(self, extra):
        from ._solver import Session

        if "full" not in self.sessions:
            self.sessions["full"] = Session(self.domain, self.ctx.box, self.syms)
        return self.sessions["full"].check(*([extra] if extra is not None else []))

    def below(self, s: int, target: int):
        """Is there an admissible value with ``s*e < target``?  ``(status, value)``."""
        from ._relax import is_linear, relax
        from ._solver import Session

        f = lt(s * self.e, target)
        if not is_linear([*self.domain, f]):
            lin, lbox = relax([*self.domain, f], self.ctx.box)
            if Session(lin, lbox, self.syms).check()[0] == "unsat":
                return "unsat", None
        status, model, why = self.solve(f)
        if status == "sat":
            return "sat", self.checked(model)
        if status == "unsat":
            return "unsat", None
        raise ShapeError(f"bounds of {self.e0}: could not establish an exact bound ({why})")

    def tighten(self, best: int, proved, s: int) -> int | None:
        """The exact minimum of ``s*e`` (times ``s``): ``best`` attained, ``proved`` a proved bound."""
        best, proved = s * best, (s * proved if proved not in (INF, -INF) else -INF)
        if best < -UNBOUNDED:
            return None
        first = True
        while proved < best:
            target = best if first else (proved + best + 1) // 2
            status, v = self.below(s, target)
            if status == "unsat":
                proved = target
            else:
                best = s * v
                if best < -UNBOUNDED:
                    return None
                if first and proved == -INF:
                    status, v = self.below(s, -UNBOUNDED)
                    if status == "sat":
                        return None
                    proved = -UNBOUNDED
            first = False
        return s * best
