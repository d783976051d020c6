"""Counterexamples a user can read: completed to every name a message shows, then minimised.

A solver's model binds the names of the query it decided.  A message shows
more (the whole element, a phase), and a counterexample that is shown must be
one: :meth:`Counterexamples.complete` decides the refutation again with the
missing names in their ranges and the found values pinned, and
:meth:`Counterexamples.minimise` looks for smaller sizes by refutations of
``NAME <= v``.  Every result is a refutation re-checked by evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ... import shapes
from ...shapes._context import declared_lower_bounds
from ._decide import INT64_MIN
from ._explain import COORD
from ._sites import loop_range

__all__ = ["Counterexamples"]


class Counterexamples:
    """Completion and minimisation of counterexamples (a base of :class:`._context.Analysis`,
    whose names and solver door it uses: declared here for the reader and the type checker)."""

    sizes: list[str]
    pids: list[str]
    rank_var: str | None
    per_instance: set[str]
    data: dict
    loop_vars: dict
    lane_vars: dict
    decide: Any  # Callable[..., Answer], from ._decide.Decider
    ranges: Any  # Callable[[Iterable[str] | None], list[Formula]]
    data_facts: Any  # Callable[[Iterable], list[Formula]]
    _spent: Any  # Callable[[], str]

    def complete(
        self,
        query: shapes.Formula,
        assume: Sequence[shapes.Formula],
        cex: Mapping[str, int],
        show: Iterable,
    ) -> dict[str, int] | None:
        """``cex`` extended to every name the expressions in ``show`` use, re-checked.

        A solver's model binds the names of the query it decided; a message evaluates more
        (the whole element, a phase), and a name the decided query no longer mentions (a
        shared term cancelled from both sides of an equation, say) has no value.  So the
        missing names get their ranges (declared data ranges, id, lane and loop ranges,
        tile coordinates), every value already found is pinned, and the refutation is
        decided again: the answer is a complete assignment that still refutes ``query``
        under ``assume``, or None when there is none to be had.
        """
        full = dict(cex)
        need: set[str] = set()
        for e in show:
            if e is not None:
                need |= e.free_symbols()
        facts: list[shapes.Formula] = []
        seen: set[str] = set()
        todo = sorted(need - set(full))
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            got = self._range_of(n)
            facts += got
            for f in got:
                todo += sorted(f.free_symbols() - set(full) - seen)
        missing = sorted(need - set(full))
        if not missing:
            return full
        # mention every missing name so that the model binds it
        facts += [shapes.ge(shapes.sym(n), INT64_MIN) for n in missing]
        pins = [shapes.eq(shapes.sym(k), v) for k, v in full.items()]
        ans = self.decide(query, (*assume, *facts, *pins))
        if ans.status != "refuted" or ans.cex is None:
            return None
        full.update(ans.cex)
        try:
            if query.evaluate(full) or not all(f.evaluate(full) for f in assume):
                return None
        except (shapes.ShapeError, ZeroDivisionError):
            return None
        return full if not (need - set(full)) else None

    def _range_of(self, name: str) -> list[shapes.Formula]:
        """The range facts of one (possibly renamed) name: ids, lanes, loops, data, coords."""
        base, sep, tag = name.partition("__")
        ren = (
            (
                lambda f: f.subs(
                    {
                        m: shapes.sym(f"{m}__{tag}")
                        for m in f.free_symbols()
                        if m in self.per_instance or COORD.match(m)
                    }
                )
            )
            if sep
            else (lambda f: f)
        )
        v = shapes.sym(name)
        if base in self.pids or base == self.rank_var:
            return [ren(f) for f in self.ranges([base])]
        if base in self.lane_vars:
            return [shapes.ge(v, 0), shapes.lt(v, self.lane_vars[base].n)]
        if base in self.loop_vars:
            return [ren(f) for f in loop_range(self.loop_vars[base])]
        if base in self.data:
            return self.data_facts([v])
        return []

    def minimise(
        self,
        query: shapes.Formula,
        assume: Sequence[shapes.Formula],
        cex: dict[str, int],
        *,
        steps: int = 64,
    ) -> dict[str, int]:
        """Smallest sizes (one after the other, in declaration order), then smallest data
        values, that still refute: a binary search of refutable ``NAME <= v`` queries.

        Every returned counterexample is a refutation re-checked by :meth:`decide`; the
        search stops after ``steps`` queries (a count, not a time: the counterexample a
        user sees must not depend on machine load) with the best one found so far.
        """
        left = steps
        best = dict(cex)
        fixed: list[shapes.Formula] = []
        lower = declared_lower_bounds(assume)
        for name in [*self.sizes, *sorted(n for n in cex if n in self.data)]:
            if name not in best:
                continue
            v = shapes.sym(name)
            lo, hi = lower.get(name, 1 if name in self.sizes else best[name]), best[name]
            while lo < hi and left > 0 and not self._spent():
                left -= 1
                mid = (lo + hi) // 2
                ans = self.decide(query, (*assume, *fixed, shapes.le(v, mid)))
                if ans.status == "refuted" and ans.cex and ans.cex.get(name, hi) <= mid:
                    best, hi = ans.cex, ans.cex.get(name, mid)
                else:
                    lo = mid + 1
            fixed.append(shapes.eq(v, best[name]))
        return best
