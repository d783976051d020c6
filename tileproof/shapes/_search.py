"""Concrete search for witnesses: small points first, then a few very large ones.

Search only ever *finds* things (a counterexample, an admissible point, a
value an expression attains); each hit is a concrete evaluation, so it is
valid by construction.  It never proves anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from ._interval import INF, Interval

__all__ = ["BIG", "holds", "points", "probe_points", "shrink"]

BIG = 2**64  # "large" probe value, past the 2**62 threshold used for unbounded


def holds(facts: Sequence, env: Mapping[str, int]) -> bool:
    """All facts true at ``env``; a division by zero makes the point inadmissible."""
    try:
        return all(f.evaluate(env) for f in facts)
    except ZeroDivisionError:
        return False


def _compositions(total: int, caps: Sequence) -> Iterator[tuple[int, ...]]:
    """Tuples ``t`` with ``sum(t) == total`` and ``0 <= t[i] <= caps[i]``, lexicographic."""
    n = len(caps)
    if n == 0:
        if total == 0:
            yield ()
        return
    if n == 1:
        if total <= caps[0]:
            yield (total,)
        return
    for first in range(min(total, caps[0]) + 1):
        for rest in _compositions(total - first, caps[1:]):
            yield (first, *rest)


def points(syms: Sequence[str], box: Mapping[str, Interval], limit: int) -> Iterator[dict]:
    """Up to ``limit`` points of ``box``, by increasing total distance from the lower corner."""
    los = [box.get(s, (1, INF))[0] for s in syms]
    caps = [box.get(s, (1, INF))[1] - lo for s, lo in zip(syms, los)]
    if any(lo == -INF for lo in los) or any(c < 0 for c in caps):
        return
    caps = [c if c != INF else 1 << 62 for c in caps]
    reach = sum(caps)
    count = 0
    total = 0
    while total <= reach:
        for comp in _compositions(total, caps):
            yield {s: lo + c for s, lo, c in zip(syms, los, comp)}
            count += 1
            if count >= limit:
                return
        total += 1


def probe_points(syms: Sequence[str], box: Mapping[str, Interval]) -> Iterator[dict]:
    """Corners and large values: each symbol alone at its top (or BIG), then all of them."""
    los = {s: box.get(s, (1, INF))[0] for s in syms}
    tops = {}
    for s in syms:
        lo, hi = box.get(s, (1, INF))
        tops[s] = hi if hi != INF else max(lo, 0) + BIG
    for s in syms:
        yield {**los, s: tops[s]}
    if len(syms) > 1:
        yield dict(tops)
        for s in syms:
            yield {**tops, s: los[s]}


def shrink(
    env: dict, ok: Callable[[dict], bool], box: Mapping[str, Interval], budget: int = 200
) -> dict:
    """Greedily move each value toward its lower bound while ``ok`` stays true."""
    env = dict(env)
    for _ in range(4):
        moved = False
        for s in sorted(env):
            lo = box.get(s, (1, INF))[0]
            if lo == -INF:
                lo = min(env[s], 0)
            while env[s] > lo and budget > 0:
                v = env[s]
                cands = [lo, lo + (v - lo) // 2, v - 1]
                better = None
                for c in cands:
                    if c >= v or c < lo:
                        continue
                    budget -= 1
                    if ok({**env, s: c}):
                        better = c
                        break
                if better is None:
                    break
                env[s] = better
                moved = True
        if not moved or budget <= 0:
            break
    return env
