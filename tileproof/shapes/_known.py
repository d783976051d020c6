"""Admissible points seen so far: a concrete shortcut for "do the assumptions admit a value?".

A verifier asks many questions under assumption sets that differ in a few
facts (the same kernel domain plus one access's loop ranges, one pair of
programs, ...).  Whenever a proof needs the assumptions to be consistent and
the small witness search of :class:`._context.Context` finds no point, the
fallback is a z3 satisfiability check of the whole prepared set, which was
most of the solver time of the catalog kernels (one or two sessions over
hundreds of facts each time).

Points that already satisfied *some* assumption set (z3 models of consistency
checks, re-checked counterexamples) very often satisfy the next one too, with
the symbols the next set adds at their lower bound.  A hit is a concrete
evaluation of the user's assumptions at a point of the user's domain, so
"consistent" is established exactly as a z3 model would; a miss changes
nothing.  Only the *consistency* flag is set from here: witnesses used to
build counterexamples still come from the context's own search or z3, so
counterexamples do not depend on what was asked before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from ._search import holds

__all__ = ["admits", "clear", "remember"]

_KEEP = 24  # points tried per miss: evaluation is cheap, but a miss costs them all

_points: deque = deque(maxlen=_KEEP)


def clear() -> None:
    _points.clear()


def remember(point: Mapping[str, int] | None) -> None:
    """Keep an admissible user-space point of some assumption set (most recent first)."""
    if not point:
        return
    p = dict(point)
    if p in _points:
        return
    _points.appendleft(p)


def admits(ctx) -> bool:
    """A remembered point, completed with lower bounds, satisfies ``ctx``'s assumptions."""
    if not _points:
        return False
    syms, lower = ctx.user_symbols, ctx.lower
    facts = ctx.flat
    for p in _points:
        q = {s: p.get(s, lower[s]) for s in syms}
        if any(type(v) is not int or v < lower[s] for s, v in q.items()):
            continue
        if holds(facts, q):
            return True
    return False
