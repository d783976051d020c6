"""The one door to the solver: decision strategies, each sound on its own, cheapest first.

Every obligation kind asks :meth:`Decider.decide` whether ``assume => query``
holds for all integer values of the free names.  The answer is ``proved``,
``refuted`` with a counterexample that satisfies every assumption and falsifies
the query when *evaluated* (never a solver model taken on trust), or
``unknown`` with the reason.  The strategies, in the order tried, and why each
is sound:

1. **Equal symbols** (:func:`merge_equal_symbols`): assumed ``x == y`` between two
   symbols, ``y`` is replaced by ``x`` everywhere and the class keeps the
   largest declared lower bound.  An equivalence: the points of the new problem
   are exactly those of the old with ``y = x``; a counterexample gets ``y`` back.
2. **Division split** (:meth:`Decider._divisions`, :func:`split_divisions`):
   ``x // G`` and ``x % G`` of a symbol ``x`` by a symbolic ``G`` proved ``>= 1``
   become ``q`` and ``r`` with ``x = G*q + r, 0 <= r < G``
   (:class:`._witness.Quotients`).  An equivalence (each ``x`` has exactly one such
   ``(q, r)`` when ``G >= 1``); ``x``'s lower bound is kept as ``G*q + r >= k``.
3. **Syntactic**: every conjunct of the query is one of the assumptions.
4. **Linear first** (:meth:`Decider._linear_first`): the query under the linear
   assumptions alone.  A proof from fewer hypotheses is a proof, provided no
   symbol's domain narrows: a lower-bound declaration inside a dropped assumption
   (``N >= 0 and N*M <= 64``) is restored (:func:`tileproof.shapes._context.weaker`).
   A refutation counts only when it evaluates as one under *all* assumptions.
5. **Relaxed** (:meth:`Decider._relaxed`): nonlinear terms as opaque symbols
   (:mod:`tileproof.shapes._atomise`); only a proof counts.
6. **Local first** (:meth:`Decider._local_first`): the query under the
   assumptions about its own symbols (then their neighbours), declarations
   restored as in 4; only a proof counts.
7. **The full problem**, :func:`tileproof.shapes.prove`, its counterexample
   re-evaluated (:meth:`Decider._answer`).  ``inconsistent`` assumptions (the
   context is unreachable) give a *vacuous* proof only once the domain itself
   was shown consistent.

``quick`` stops after 5.  Verdicts are deterministic: the budget counts solver
checks, each under z3's resource limit, not seconds.  ``tests/test_verify_strategies.py``
compares every strategy with enumeration on small sizes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ... import shapes
from ...shapes._atomise import atomise
from ...shapes._context import declared_lower_bounds, flatten, weaker
from ...shapes._normal import division_atoms
from ...shapes._relax import is_linear
from ...shapes._solver import RLIMIT
from ._witness import Quotients

__all__ = [
    "CHECK_BUDGET",
    "INT64_MIN",
    "Answer",
    "Decider",
    "equal_symbols",
    "merge_equal_symbols",
    "nonlinear",
    "split_divisions",
    "unmerge",
    "unsplit",
]

CHECK_BUDGET = 20_000  # shapes.prove calls per kernel (the catalog needs a few hundred)
T = shapes.conj()  # True
F = shapes.disj()  # False
INT64_MIN = -(2**63)


@dataclass
class Answer:
    """A decision re-checked on the model: ``proved``, ``refuted`` (with ``cex``) or ``unknown``."""

    status: str
    cex: dict[str, int] | None = None
    reason: str = ""
    vacuous: bool = False  # proved because the context admits no values (unreachable)

    @property
    def proved(self) -> bool:
        return self.status == "proved"


class Decider:
    """The solver door and its deterministic budget (a base of :class:`._context.Analysis`).

    ``domain_status`` is set by the ``shape`` check (``consistent`` / ``inconsistent``):
    until the domain is known to admit a point, unreachable is not vacuous.
    """

    def __init__(self, *, timeout_ms: int | None = None, budget: int = CHECK_BUDGET):
        # The budget that decides verdicts is deterministic: at most ``budget`` solver
        # checks per kernel, each under z3's rlimit (see :mod:`tileproof.shapes._solver`),
        # so a loaded machine answers exactly as an idle one.  ``timeout_ms`` is an opt-in
        # wall-clock cap on top (the ``solver-timeout-ms`` setting): only a user who sets it
        # trades determinism for a bounded wall time.
        self.budget = budget
        self.deadline = (
            time.perf_counter() + timeout_ms / 1000.0 if timeout_ms is not None else None
        )
        self.domain_status: str | None = None
        self.solver_seconds = 0.0
        self.queries = 0
        self._cache: dict = {}
        self.log: list[tuple[float, shapes.Formula, str]] = []  # (seconds, query, status)
        self._splitting = False  # inside the divisor checks of a division split
        self.checks = 0  # calls of shapes.prove: what the deterministic budget counts

    def decide(
        self, query: shapes.Formula, assume: Sequence[shapes.Formula], *, quick: bool = False
    ) -> Answer:
        """``prove(query, assume)``, counterexample re-checked; unreachable means vacuous.

        The strategies of the module docstring, in its order, each answer cached;
        ``quick`` stops after the relaxation (``unknown``).
        """
        key = (query, tuple(assume), quick)
        got = self._cache.get(key)
        if got is not None:
            return got
        spent = self._spent()
        if spent:
            return Answer("unknown", reason=spent)
        merged = merge_equal_symbols(query, assume)
        if merged is not None:  # x == y assumed: decide the equivalent problem over x
            q2, a2, ren = merged
            ans = self.decide(q2, a2, quick=quick)
            if ans.cex is not None:
                ans = Answer(ans.status, unmerge(ans.cex, ren), ans.reason, ans.vacuous)
            self._cache[key] = ans
            return ans
        quot = None if self._splitting else self._divisions(query, assume)
        if quot:  # x // G, x % G (symbolic G >= 1): decide it over x = G*q + r
            q2, a2 = split_divisions(query, assume, quot)
            ans = self.decide(q2, a2, quick=quick)
            if ans.cex is not None:
                try:
                    ans = Answer(ans.status, unsplit(ans.cex, quot), ans.reason, ans.vacuous)
                except (shapes.ShapeError, ZeroDivisionError):
                    ans = Answer("unknown", reason="a counterexample could not be mapped back")
            self._cache[key] = ans
            return ans
        t0 = time.perf_counter()
        given = set(flatten(list(assume)))
        rest = [f for f in flatten([query]) if f not in given]
        if not rest:  # every part of the query is one of the assumptions
            ans = Answer("proved")
            self._cache[key] = ans
            return ans
        try:
            ans = self._linear_first(query, assume)
            if ans is None:
                ans = self._relaxed(query, assume)
            if ans is None and quick:
                ans = Answer("unknown", reason="not decided by the quick attempts")
            if ans is None:
                ans = self._local_first(query, assume)
            if ans is None:
                ans = self._answer(self._prove(query, assume), query, assume)
        except shapes.ShapeError as e:
            ans = Answer("unknown", reason=f"the solver rejected the query: {e}")
        dt = time.perf_counter() - t0
        self.solver_seconds += dt
        self.queries += 1
        self.log.append((dt, query, ans.status))
        self._cache[key] = ans
        return ans

    def _prove(self, query, assume) -> shapes.Decision:
        """:func:`tileproof.shapes.prove`, counted against the budget (cached answers too, so
        the count does not depend on what an earlier kernel left in the cache)."""
        self.checks += 1
        return shapes.prove(query, assume)

    def _spent(self) -> str:
        """Why no further query may be asked (empty while the budgets last)."""
        if self.checks >= self.budget:
            return (
                f"solver budget of the static check exhausted ({self.budget} checks of at "
                f"most {RLIMIT} z3 resource units each, per kernel)"
            )
        if self.deadline is not None and time.perf_counter() > self.deadline:
            return "time budget of the static check exhausted (the solver-timeout-ms setting)"
        return ""

    def _linear_first(self, query, assume) -> Answer | None:
        """Try the query under the linear assumptions only (fewer hypotheses: a proof there is
        a proof, once the lower-bound declarations the dropped ones made are restored, see
        :func:`tileproof.shapes._context.weaker`).  A refutation counts only if it
        satisfies every assumption as well."""
        linear = tuple(f for f in assume if not nonlinear(f))
        if len(linear) == len(assume):
            return None
        d = self._prove(query, tuple(weaker(assume, linear)))
        if d.verdict == "proved":
            return Answer("proved")
        if d.verdict == "refuted":
            cex = dict(d.counterexample or {})
            try:
                if all(f.evaluate(cex) for f in assume) and not query.evaluate(cex):
                    return self._answer(d, query, assume)
            except (ZeroDivisionError, shapes.ShapeError):
                pass
        return None

    def _divisions(self, query, assume):
        """Splits ``x = G*q + r`` for the atoms ``x // G`` / ``x % G`` of the problem (``x`` a
        symbol, ``G`` symbolic, free of ``x`` and provably ``>= 1`` here): see
        :class:`._witness.Quotients`; an equivalence, so proofs and counterexamples carry
        over (``x`` of a counterexample is ``G*q + r``)."""
        atoms: list = []
        for f in (query, *assume):
            atoms += [a for a in division_atoms(f) if a not in atoms]
        cands = {
            a.args[0].as_symbol()
            for a in atoms
            if a.args[0].as_symbol()
            and not a.args[1].is_const
            and a.args[0].as_symbol() not in a.args[1].free_symbols()
        }
        if not cands:
            return None
        names = {n: (shapes.as_expr(0), shapes.as_expr(1)) for n in cands}
        self._splitting = True  # the divisor checks themselves are decided as they are
        try:
            quot = Quotients.find(
                [query, *assume],
                names,
                lambda g: self.decide(shapes.ge(g, 1), assume).proved,
                prefix="_d",
            )
        finally:
            self._splitting = False
        return quot or None

    def _local_first(self, query, assume) -> Answer | None:
        """Try the query under the assumptions about its own symbols only (and the literal
        bounds of those): a proof from fewer hypotheses is a proof, and a small problem is
        often decided at once where the whole one exhausts the solver (the declarations of
        lower bounds the dropped ones made are restored, see
        :func:`tileproof.shapes._context.weaker`).  Refutations are ignored (the dropped
        assumptions may exclude them)."""
        names = query.free_symbols()
        parts = flatten(list(assume))
        tried: set[int] = set()
        for _hop in range(2):  # the query's own symbols, then their small neighbourhood
            local = tuple(f for f in parts if f.free_symbols() <= names)
            if len(local) == len(parts) or len(local) in tried:
                return None
            tried.add(len(local))
            if self._prove(query, tuple(weaker(parts, local))).verdict == "proved":
                return Answer("proved")
            near = [f.free_symbols() for f in parts if f.free_symbols() & names]
            names = names.union(*(fs for fs in near if len(fs) <= 4))
        return None

    def _relaxed(self, query, assume) -> Answer | None:
        """Proved in the linear relaxation (see :mod:`tileproof.shapes._atomise`), or None."""
        got = atomise(query, assume)
        if got is None:
            return None
        d = self._prove(*got)
        return Answer("proved") if d.verdict == "proved" else None

    def _answer(self, d, query, assume) -> Answer:
        if d.verdict == "proved":
            return Answer("proved")
        if d.verdict == "inconsistent":
            if self.domain_status == "consistent":
                return Answer("proved", vacuous=True)
            return Answer("unknown", reason="the assumptions admit no values")
        if d.verdict == "unknown":
            return Answer("unknown", reason=d.reason or "the solver gave no answer")
        cex = dict(d.counterexample or {})
        try:
            ok = all(f.evaluate(cex) for f in assume)
            fails = not query.evaluate(cex)
        except ZeroDivisionError:
            return Answer(
                "unknown", cex=cex, reason="a divisor can be zero here (see the shape obligations)"
            )
        except shapes.ShapeError as e:
            return Answer("unknown", reason=f"counterexample could not be re-checked: {e}")
        if not (ok and fails):
            return Answer("unknown", reason=f"solver counterexample {cex} did not re-check")
        if (d.reason or "").startswith("division by zero"):
            return Answer(
                "unknown", cex=cex, reason="a divisor can be zero here (see the shape obligations)"
            )
        return Answer("refuted", cex=cex)


def merge_equal_symbols(query: shapes.Formula, assume: Sequence[shapes.Formula]):
    """``(query', assume', ren)``: the problem with every symbol ``y`` assumed equal to a
    symbol ``x`` replaced by ``x`` (``ren = {y: x}``), or None when there is none.

    An equivalence: a point of the new problem extended by ``y = x`` is a point of the old
    one and conversely, provided ``x`` keeps the larger of the two declared lower bounds
    (``1`` by default), stated as a literal ``x >= k``.
    """
    ren = equal_symbols(assume)
    if not ren:
        return None
    low = declared_lower_bounds(assume)
    keep: dict[str, int] = {}
    for y, x in ren.items():  # the class keeps the largest lower bound (1 by default)
        rep = x.as_symbol()
        keep[rep] = max(keep.get(rep, low.get(rep, 1)), low.get(y, 1))
    q2 = query.subs(ren)
    a2 = tuple(
        dict.fromkeys(
            [
                *(f.subs(ren) for f in assume),
                *(shapes.ge(shapes.sym(x), k) for x, k in keep.items()),
            ]
        )
    )
    return q2, tuple(f for f in a2 if f != T), ren


def unmerge(cex: dict[str, int], ren: dict[str, shapes.Expr]) -> dict[str, int]:
    """A counterexample of the merged problem as one of the original (``y = x``)."""
    out = dict(cex)
    for y, x in ren.items():
        out[y] = x.evaluate(out)
    return out


def split_divisions(query: shapes.Formula, assume: Sequence[shapes.Formula], quot):
    """``(query', assume')`` over ``x = G*q + r, 0 <= r < G`` for the splits of ``quot``
    (:class:`._witness.Quotients`, every ``G`` proved ``>= 1`` by the caller).

    An equivalence: for ``G >= 1`` every ``x`` has exactly one such ``(q, r)``, so
    ``x // G = q`` and ``x % G = r``; ``q`` is any integer (a literal ``q >= INT64_MIN``)
    and ``x``'s lower bound (declared, ``1`` by default) is kept as ``G*q + r >= k``.
    """
    low = declared_lower_bounds(assume)
    facts = list(quot.facts())
    for x, g, q, r in quot.splits:
        facts += [
            shapes.ge(shapes.sym(q), INT64_MIN),
            shapes.ge(g * shapes.sym(q) + shapes.sym(r), low.get(x, 1)),
        ]
    q2 = quot.rewrite(query)
    a2 = tuple(dict.fromkeys([*(quot.rewrite(f) for f in assume), *facts]))
    return q2, tuple(f for f in a2 if f != T)


def unsplit(cex: dict[str, int], quot) -> dict[str, int]:
    """A counterexample of the split problem as one of the original (``x = G*q + r``)."""
    full = quot.complete(dict(cex))
    return {k: int(v.evaluate(full)) if isinstance(v, shapes.Expr) else v for k, v in full.items()}


def nonlinear(f) -> bool:
    """Does ``f`` multiply two non-constant quantities, or divide by one (anywhere)?"""
    return not is_linear([f])


def equal_symbols(assume: Sequence[shapes.Formula]) -> dict[str, shapes.Expr]:
    """``{y: x}`` for the assumed equalities ``x == y`` between two symbols (conjuncts of the
    assumptions), ``x`` the representative of its class (the smallest name)."""
    parent: dict[str, str] = {}

    def find(n: str) -> str:
        while parent.get(n, n) != n:
            n = parent[n]
        return n

    for f in flatten(list(assume)):
        if isinstance(f, shapes.Cmp) and f.op == "==":
            a, b = f.lhs.as_symbol(), f.rhs.as_symbol()
            if a and b and a != b:
                ra, rb = find(a), find(b)
                if ra != rb:
                    lo, hi = sorted((ra, rb))
                    parent[hi] = lo
    return {n: shapes.sym(find(n)) for n in parent}
