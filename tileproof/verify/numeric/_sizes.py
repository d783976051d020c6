"""Concrete sizes from a kernel's domain: boundary points first, then random ones.

Order of :func:`choose_sizes`:

1. the sizes passed in (``extra``: e.g. the counterexample of a violated
   static obligation, so a static finding is confirmed or shown harmless
   numerically); symbols they leave out are completed from the defaults or
   the smallest admissible values;
2. the authors' ``kernel.defaults``;
3. the smallest admissible point;
4. the admissible point that makes the most divisions (in the grid, the
   shapes and the lowered model) inexact — tails, ``//`` dropping rows;
5. points from the model's conditions (:mod:`._conditions`): for each branch,
   ``when`` and mask, solver points making it true, false and sitting on its
   boundary, with the index values they need (``pins``); the few that together
   cover the most sides the points above leave uncovered;
6. seeded random admissible points.

A point is admissible when every assumption holds (a division by zero makes
it inadmissible), every extent is non-negative, and it fits the numeric cap:
each tensor at most :data:`CAP_ELEMENTS` elements and at most
:data:`CAP_PROGRAMS` programs (ranks times grid) — numeric runs are meant to
be quick on a CPU.  The points given and the authors' defaults (1 and 2) are
held to the *device's* cap instead (:func:`device_cap_elements`): on a GPU
with the memory, the numerics run at the authors' production sizes too.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping

import numpy as np

from ... import shapes
from ._caps import CAP_ELEMENTS, CAP_PROGRAMS

__all__ = [
    "CAP_ELEMENTS",
    "CAP_PROGRAMS",
    "admissible",
    "choose_sizes",
    "cost",
    "device_cap_elements",
]

# bytes of device memory budgeted per element of the largest tensor: its data and a
# padded snapshot, the written mask, the int32 writer maps of a scatter (first, last),
# the reference's own copies; a tensor of N elements runs where N * this fits in the
# free memory (with a margin for XLA's temporaries)
BYTES_PER_ELEMENT = 24
_FREE_FRACTION = 0.8


def device_cap_elements(device=None) -> int:
    """Elements per tensor the device runs: from its free memory where JAX reports it (GPUs),
    else :data:`CAP_ELEMENTS` (CPUs: numeric runs stay quick in CI)."""
    try:
        import jax

        dev = device if device is not None else jax.devices()[0]
        if dev.platform == "cpu":
            return CAP_ELEMENTS
        stats = dev.memory_stats() or {}
    except Exception:  # no backend, or one without memory statistics
        return CAP_ELEMENTS
    limit = stats.get("bytes_limit") or stats.get("bytes_reservable_limit")
    if not limit:
        return CAP_ELEMENTS
    free = int(limit) - int(stats.get("bytes_in_use", 0))
    return max(CAP_ELEMENTS, int(free * _FREE_FRACTION) // BYTES_PER_ELEMENT)


_DIV_KINDS = ("floordiv", "cdiv", "mod")
_GRID_POINTS = 4000  # candidate points searched for the smallest and most-inexact sizes


def _bounds(kernel) -> dict[str, tuple[int, int]]:
    """Per size: (lowest, highest) from single-symbol assumptions (default lowest 1)."""
    from ._plan import linear_bound

    out = {}
    for s in kernel.sizes:
        lo, hi = 1, None
        for f in kernel.assume:
            if f.free_symbols() == {s}:
                a, b = linear_bound(f, s, {})
                if a != -np.inf:
                    lo = int(a) if lo is None else max(lo, int(a))
                if b != np.inf:
                    hi = int(b) if hi is None else min(hi, int(b))
        # an explicit lower-bound declaration may go below 1
        for f in kernel.assume:
            if isinstance(f, shapes.Cmp) and f.free_symbols() == {s}:
                a, _ = linear_bound(f, s, {})
                if a != -np.inf and a < 1:
                    lo = min(lo, int(a))
        out[s] = (lo, hi if hi is not None else 1 << 30)
    return out


def cost(kernel, env: Mapping[str, int]) -> tuple[int, int] | None:
    """(largest tensor, programs) at ``env``; None if an extent is negative or undefined."""
    try:
        biggest = 0
        for t in kernel.tensors.values():
            dims = [d.evaluate(env) for d in t.shape]
            if any(d < 0 for d in dims):
                return None
            biggest = max(biggest, int(np.prod(dims, dtype=object)))
        progs = 1
        for g in kernel.grid:
            e = g.extent.evaluate(env)
            if e < 0:
                return None
            progs *= e
        if kernel.ranks is not None:
            r = kernel.ranks.size.evaluate(env)
            if r < 1:
                return None
            progs *= r
        return biggest, progs
    except (ZeroDivisionError, KeyError):
        return None


def admissible(kernel, env: Mapping[str, int], capped: bool = True, cap: int | None = None) -> bool:
    """``env`` satisfies the domain and fits ``cap`` elements per tensor (default
    :data:`CAP_ELEMENTS`) and :data:`CAP_PROGRAMS` programs (``capped=False``: any size)."""
    try:
        if not all(f.evaluate(env) for f in kernel.assume):
            return False
    except (ZeroDivisionError, KeyError):
        return False
    c = cost(kernel, env)
    if c is None:
        return False
    return not capped or (c[0] <= (CAP_ELEMENTS if cap is None else cap) and c[1] <= CAP_PROGRAMS)


def _division_atoms(kernel) -> list:
    sizes = set(kernel.sizes)
    exprs = [d for t in kernel.tensors.values() for d in t.shape] + [g.extent for g in kernel.grid]
    try:
        from ._plan import traced

        model = traced(kernel).model
    except Exception:  # the model only adds candidates
        model = None
    if model is not None:
        from ...model import Access, Loop

        for n in model.walk():
            if isinstance(n, Access):
                exprs += [d.start for d in n.dims]
            elif isinstance(n, Loop):
                exprs += [n.lo, n.hi]
    out = []
    seen = set()
    for e in exprs:
        for a in _atoms(e):
            if isinstance(a, shapes._expr.Op) and a.kind in _DIV_KINDS:
                n, d = a.args
                if (
                    d.is_const
                    and d.const_value > 1
                    and n.free_symbols() <= sizes
                    and n.free_symbols()
                ):
                    key = (str(n), d.const_value)
                    if key not in seen:
                        seen.add(key)
                        out.append((n, d.const_value))
    return out


def _derived(kernel) -> dict:
    """Sizes the domain defines by an equation ``S == expr`` of the others (a split count
    the host computes): drawing them independently would almost never satisfy it."""
    out: dict = {}
    for f in kernel.assume:
        if not (isinstance(f, shapes.Cmp) and f.op == "=="):
            continue
        for lhs, rhs in ((f.lhs, f.rhs), (f.rhs, f.lhs)):
            name = lhs.as_symbol()
            if name and name in kernel.sizes and name not in rhs.free_symbols() and name not in out:
                out[name] = rhs
                break
    # no cycles: keep a definition only if what it reads is not itself derived from it
    for name in list(out):
        if out[name].free_symbols() & set(out):
            del out[name]
    return out


def _derive(env: dict, derived: dict) -> dict | None:
    try:
        return {**env, **{s: e.evaluate(env) for s, e in derived.items()}}
    except (ZeroDivisionError, KeyError):
        return None


def _by_total(counts: list[int]):
    """Index tuples into the candidate lists, by increasing sum (small values first)."""
    top = sum(c - 1 for c in counts)
    for total in range(top + 1):
        yield from _compositions(total, [c - 1 for c in counts])


def _compositions(total: int, caps: list[int]):
    if not caps:
        if total == 0:
            yield ()
        return
    for first in range(min(total, caps[0]) + 1):
        for rest in _compositions(total - first, caps[1:]):
            yield (first, *rest)


def _atoms(e) -> set:
    try:
        return e.atoms()
    except AttributeError:
        return set()


def _candidates(kernel, bounds, divs) -> dict[str, list[int]]:
    consts: set[int] = set()
    for f in kernel.assume:
        for tok in str(f).replace("(", " ").replace(")", " ").split():
            if tok.lstrip("-").isdigit():
                consts.add(int(tok))
    ks = {k for _, k in divs}
    out = {}
    for s, (lo, hi) in bounds.items():
        vals = {lo, lo + 1, lo + 2, 2, 3, 4, 5, 7, 8, 16}
        for c in consts:
            vals.update({c - 1, c, c + 1})
            if c > 0:
                vals.update({2 * c, c // 2})
        for k in ks:
            vals.update({k - 1, k, k + 1, 2 * k - 1, 2 * k, 2 * k + 1, 3 * k})
        if s in kernel.defaults:
            vals.add(kernel.defaults[s])
        out[s] = sorted(v for v in vals if lo <= v <= hi)
    return out


def _complete(
    kernel, partial: Mapping[str, int], cands, bounds, cap: int | None = None
) -> dict[str, int] | None:
    """Fill the symbols ``partial`` leaves out: defaults first, then small candidates."""
    env = {k: int(v) for k, v in partial.items() if k in kernel.sizes}
    rest = [s for s in kernel.sizes if s not in env]
    if not rest:
        return env if admissible(kernel, env, capped=False) else None
    base = {s: kernel.defaults[s] for s in rest if s in kernel.defaults}
    if base and len(base) == len(rest) and admissible(kernel, {**env, **base}, cap=cap):
        return {**env, **base}
    derived = {s: e for s, e in _derived(kernel).items() if s in rest}
    rest = [s for s in rest if s not in derived]
    best = None
    for idx in itertools.islice(_by_total([len(cands[s]) for s in rest]), 20000):
        trial = _derive({**env, **{s: cands[s][i] for s, i in zip(rest, idx)}}, derived)
        if trial is not None and admissible(kernel, trial):
            c = cost(kernel, trial)
            if best is None or c < best[0]:
                best = (c, trial)
    return None if best is None else best[1]


def choose_sizes(
    kernel,
    *,
    extra: Iterable[Mapping[str, int]] = (),
    budget: int = 6,
    seed: int = 0,
    tries: int = 4000,
    dropped: list | None = None,
    pins: dict | None = None,
    condition_points: int = 2,
    cap: int | None = None,
) -> list[dict[str, int]]:
    """Sizes to run ``kernel`` at (see the module docstring), at most ``budget`` plus ``extra``.

    Every point, given ones included, respects the memory cap: a given point
    beyond it (a static counterexample at production sizes, say) is appended
    to ``dropped`` instead of being run, so a numeric check never tries to
    allocate what the machine does not have.  ``pins``, when given, receives for each
    condition point (by ``tuple(sorted(sizes.items()))``) the index-tensor values it
    needs, ``{(tensor, index): value}``, for :func:`draw_inputs`.  ``cap`` is the
    per-tensor cap for the given points and the defaults (default:
    :func:`device_cap_elements`); the points chosen here (smallest, inexact, conditions,
    random) keep :data:`CAP_ELEMENTS`.
    """
    big = device_cap_elements() if cap is None else cap
    syms = kernel.sizes
    bounds = _bounds(kernel)
    divs = _division_atoms(kernel)
    cands = _candidates(kernel, bounds, divs)
    out: list[dict[str, int]] = []

    def add(env, capped=True, cap=None) -> None:
        if env is None:
            return
        env = {s: int(env[s]) for s in syms}
        if env not in out and admissible(kernel, env, capped, cap):
            out.append(env)

    if isinstance(extra, Mapping):
        extra = [extra]
    for e in extra:
        env = _complete(kernel, e, cands, bounds, big)
        if env is not None and not admissible(kernel, env, cap=big):
            if dropped is not None:
                dropped.append(env)
            continue
        add(env, cap=big)
        pinned = _pins_of(kernel, e)  # a counterexample's index values ("seq_lens[0]": 0)
        if env is not None and pinned and pins is not None:
            pins.setdefault(tuple(sorted({s: int(env[s]) for s in syms}.items())), pinned)
    n_extra = len(out)
    if not syms:
        add({})
        return out
    if all(s in kernel.defaults for s in syms):
        add(dict(kernel.defaults), cap=big)
    # smallest and most-inexact points over the candidate grid
    derived = _derived(kernel)
    free = [s for s in syms if s not in derived]
    pts = []
    for idx in itertools.islice(_by_total([len(cands[s]) for s in free]), _GRID_POINTS):
        env = _derive({s: cands[s][i] for s, i in zip(free, idx)}, derived)
        if env is not None and admissible(kernel, env):
            pts.append((cost(kernel, env), env))
    pts.sort(key=lambda t: (t[0][0] * max(t[0][1], 1), t[0]))
    if pts:
        add(pts[0][1])

        def inexact(env) -> int:
            n = 0
            for num, k in divs:
                try:
                    n += num.evaluate(env) % k != 0
                except ZeroDivisionError:
                    pass
            return n

        if divs:
            best = max(pts, key=lambda t: (inexact(t[1]), -t[0][0]))
            if inexact(best[1]):
                add(best[1])
    n_cond = 0
    if condition_points > 0:
        before = len(out)
        _add_condition_points(kernel, out, add, pins, condition_points)
        n_cond = len(out) - before
    rng = random.Random(seed)
    attempts = 0
    # a condition point takes the place of a random one besides its own slot: the runs stay
    # as few as before (the numeric check is the slow part of `tileproof check`)
    while len(out) - n_extra + n_cond < budget and attempts < tries:
        attempts += 1
        env = {}
        for s in free:
            lo, hi = bounds[s]
            u = rng.random()
            if u < 0.4 and cands[s]:
                env[s] = rng.choice(cands[s])
            elif u < 0.8:
                env[s] = rng.randint(lo, min(hi, max(lo + 1, 64)))
            else:  # now and then a large value, log-uniform up to the bound (the cap filters)
                top = min(hi, 1 << 16)
                env[s] = max(lo, round(math.exp(rng.uniform(0.0, math.log(max(top, 2))))))
        add(_derive(env, derived))
    return out[: n_extra + budget]


def _add_condition_points(kernel, out: list, add, pins: dict | None, limit: int) -> None:
    """Points that exercise the sides of the model's conditions the chosen ones miss."""
    from ._conditions import condition_points
    from ._plan import traced

    try:
        model = traced(kernel).model
    except Exception:
        model = None
    if model is None:
        return
    try:
        got = condition_points(
            kernel, model, list(out), limit=limit, is_admissible=lambda env: admissible(kernel, env)
        )
    except Exception:
        return
    for env, pin in got:
        add(env)
        key = {s: int(env[s]) for s in kernel.sizes}
        if key in out and pins is not None and pin:  # a point chosen already runs pinned
            pins.setdefault(tuple(sorted(key.items())), pin)


def _pins_of(kernel, point: Mapping) -> dict:
    """``{(tensor, index): value}`` from a counterexample's ``"tensor[i, j]": value`` entries
    (index tensors of the kernel only)."""
    out = {}
    for k, v in point.items():
        name, sep, rest = str(k).partition("[")
        t = kernel.tensors.get(name)
        if not sep or t is None or not t.is_index or not rest.endswith("]"):
            continue
        try:
            idx = tuple(int(x) for x in rest[:-1].split(","))
        except ValueError:
            continue
        if len(idx) == len(t.shape):
            out[(name, idx)] = int(v)
    return out
