"""The model's conditions, points that exercise them, and which sides a numeric run covered.

A numeric run only finds what its sizes and index values exercise: a tail mask that is
never false, a ``when`` that is never taken, a split that is never empty.  The static
model knows every such condition (branch and ``when`` conditions, access masks), so:

* :func:`conditions` lists them (source line, text), with each loop whose trip count
  varies (``lo < hi``: a split or a page loop that may run zero times);
* :func:`condition_points` asks the solver, for each condition, for admissible sizes and
  index values that make it true, false, and sit on its boundary (the sides of its first
  comparison at most 1 apart), within the numeric cap, and keeps a few that together cover the
  most sides not covered yet (a greedy cover: the numeric check stays quick);
* :func:`impossible_sides` proves, under the kernel's assumptions and the path to the
  condition, the sides no admissible execution reaches (a loop over ``B >= 1`` items
  always runs): the report marks them ``"unreachable"`` rather than uncovered, and a side
  the solver cannot decide stays uncovered;
* :func:`covered` replays the model concretely at a run's sizes on the run's own index
  inputs and says, per condition, whether some program evaluated it true, false, or at
  its boundary (a comparison whose sides differ by at most 1, or a mask that changes
  inside one tile).

No verdict comes from here: the points only steer the numeric run, and the coverage
is a report.  A replay too large for its budget leaves that run's coverage unknown.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ... import shapes
from ...model import Access, Branch, Loop
from ._caps import CAP_ELEMENTS, CAP_PROGRAMS

__all__ = [
    "UNREACHABLE",
    "Condition",
    "condition_points",
    "conditions",
    "covered",
    "impossible_sides",
]

SIDES = ("true", "false", "boundary")
UNREACHABLE = "unreachable"  # a side's value when the solver proves no execution reaches it
_REPLAY_STEPS = 200_000
_MAX_CELLS = 1 << 17


@dataclass
class Condition:
    """A branch/``when`` condition or an access mask, where it is in the source."""

    index: int
    kind: str  # "branch" | "mask" | "loop" (its trip count is positive)
    formula: shapes.Formula
    site: object
    text: str

    @property
    def location(self) -> str:
        return str(self.site.loc)

    def describe(self, seen: set[str] | None, impossible: Sequence[str] = ()) -> dict:
        """JSON: source line, text, and per side ``true`` (the run covered it), ``false``
        (it did not: a gap of the run), ``None`` (unknown: a run too large to replay) or
        ``"unreachable"`` (no admissible execution reaches it, proved by the solver: no gap
        at all); the proved sides are listed under ``impossible`` too."""
        out: dict = {"location": self.location, "kind": self.kind, "condition": self.text}
        for s in SIDES:
            if seen is not None and s in seen:
                out[s] = True
            elif s in impossible:
                out[s] = UNREACHABLE
            else:
                out[s] = None if seen is None else False
        if impossible:
            out["impossible"] = list(impossible)
        return out


def impossible_sides(an, c: Condition, sides) -> list[str]:
    """The ``sides`` of ``c`` that no admissible execution reaches (a proof each; a side the
    solver cannot decide is left out: it may be reachable)."""
    out = []
    for side, q in _queries(c):
        if side not in sides:
            continue
        scope = an.scope(c.site) + (an.coords(c.site.node) if c.kind == "mask" else [])
        ans = an.decide(q, an.assume(scope, query=q))
        if ans.status == "proved":
            out.append(side)
    return out


def _analysis(model):
    from ..static._context import Analysis

    return Analysis(model, timeout_ms=4000)


def conditions(an) -> list[Condition]:
    """Every branch condition (``when``, ``if``, early exits), loop with a variable trip count
    (``lo < hi``: it runs at all) and access mask of the model."""
    from ..static._explain import plain

    out: list[Condition] = []
    for s in an.sites:
        n = s.node
        if isinstance(n, Branch) and not _trivial(n.cond):
            out.append(Condition(len(out), "branch", n.cond, s, plain(n.cond, an)))
        elif isinstance(n, Loop) and not (n.hi - n.lo).is_const:
            runs = shapes.lt(n.lo, n.hi)  # true: the loop runs; false: no iteration
            out.append(
                Condition(
                    len(out),
                    "loop",
                    runs,
                    s,
                    f"loop {plain(shapes.sym(n.var), an)} runs: {plain(runs, an)}",
                )
            )
        elif isinstance(n, Access) and n.mask is not None and not _trivial(n.mask):
            out.append(
                Condition(len(out), "mask", n.mask, s, f"{n.kind} {n.tensor}: {plain(n.mask, an)}")
            )
    return out


def _trivial(f) -> bool:
    return f == shapes.conj() or f == shapes.disj()


def _cmps(f) -> list:
    if isinstance(f, shapes.Cmp):
        return [f]
    if isinstance(f, shapes.BoolOp):
        return [c for a in f.args for c in _cmps(a)]
    return []


# --------------------------------------------------------------------------- replay


class _Cells:
    """Index values of a replay: the run's own inputs where given, else the static oracle."""

    def __init__(self, an, sizes, inputs: Mapping | None, pins: Mapping | None):
        from ...model._data import Oracle

        self.inputs = dict(inputs or {})  # host copies made on first read (index tensors only)
        self.oracle = Oracle(an.model, sizes, {}, dict(pins or {}))
        self.an = an

    def __call__(self, name: str, idx: tuple[int, ...]) -> int:
        tensor = self.an.data[name].tensor
        arr = self.inputs.get(tensor)
        if arr is not None:
            if not isinstance(arr, np.ndarray):
                arr = self.inputs[tensor] = np.asarray(arr)
            if all(0 <= i < n for i, n in zip(idx, arr.shape)) and len(idx) == arr.ndim:
                return int(arr[idx])
            raise IndexError(f"{tensor}{list(idx)} out of bounds")
        return self.oracle(name, idx)


def covered(
    an,
    conds: list[Condition],
    sizes: Mapping[str, int],
    *,
    inputs: Mapping | None = None,
    pins: Mapping | None = None,
) -> dict[int, set[str]] | None:
    """Per condition index, the sides evaluated at ``sizes`` (None: the replay was too large)."""
    from ...model._interp import RunError, events

    by_node = {id(c.site.node): c for c in conds}
    seen: dict[int, set[str]] = {c.index: set() for c in conds}
    env0 = {k: int(v) for k, v in sizes.items()}
    try:
        data = _Cells(an, env0, inputs, pins)
    except Exception:
        return None

    full = {"true", "false", "boundary"}
    open_ = {c.index for c in conds}  # conditions with a side not seen yet

    def note(c: Condition, env) -> None:
        got = seen[c.index]
        if c.index not in open_:  # every side seen: evaluating again adds nothing
            return
        corners = [{}]
        if isinstance(c.site.node, Access):
            ranges = c.site.node.coord_ranges()
            corners = [
                dict(zip([r[0] for r in ranges], vals))
                for vals in itertools.product(*([0, n - 1] for _c, n in ranges))
            ]
        vals = []
        for extra in corners:
            e = {**env, **extra}
            v = bool(c.formula.evaluate(e))
            vals.append(v)
            got.add("true" if v else "false")
            if any(abs(x.lhs.evaluate(e) - x.rhs.evaluate(e)) <= 1 for x in _cmps(c.formula)):
                got.add("boundary")
        if len(set(vals)) > 1:
            got.add("boundary")  # the mask changes inside one tile: its edge is crossed
        if got >= full:
            open_.discard(c.index)

    try:  # the model's one interpreter, on this run's index values (masked-off loads read 0)
        for ev in events(
            an.model,
            env0,
            budget=_REPLAY_STEPS,
            read=data,
            masked_zero=True,
            want=lambda n: id(n) in by_node,
        ):
            note(by_node[id(ev.node)], ev.env)
            if not open_:  # every side of every condition seen: the rest of the replay adds nothing
                break
    except (RunError, ZeroDivisionError, shapes.ShapeError, IndexError, KeyError):
        return None
    return seen


# --------------------------------------------------------------------------- points


def _cap_facts(kernel) -> list[shapes.Formula]:
    out = []
    for t in kernel.tensors.values():
        n = shapes.as_expr(1)
        for d in t.shape:
            n = n * d
        if not n.is_const:
            out.append(shapes.le(n, CAP_ELEMENTS))
    progs = shapes.as_expr(1)
    for g in kernel.grid:
        progs = progs * g.extent
    if kernel.ranks is not None:
        progs = progs * kernel.ranks.size
    if not progs.is_const:
        out.append(shapes.le(progs, CAP_PROGRAMS))
    for s in kernel.sizes:  # small values first: a numeric run on a CPU
        out.append(shapes.le(shapes.sym(s), 1 << 14))
    return out


def _queries(c: Condition) -> list[tuple[str, shapes.Formula]]:
    """(side, query) pairs: a refutation of the query is a point on that side."""
    out = [("true", shapes.negate(c.formula)), ("false", c.formula)]
    cmps = _cmps(c.formula)
    if cmps:
        # the boundary as the replay sees it: the sides of a comparison at most 1 apart
        out.append(("boundary", shapes.gt(abs(cmps[0].lhs - cmps[0].rhs), 1)))
    return out


def condition_points(
    kernel, model, chosen: list[dict], *, limit: int = 3, is_admissible=None
) -> list[tuple[dict, dict]]:
    """Up to ``limit`` ``(sizes, pins)``: solver points covering the condition sides that the
    already ``chosen`` sizes leave uncovered (greedy, most new sides first).  ``pins`` maps
    ``(tensor, index)`` to the index value the point needs there."""
    an = _analysis(model)
    conds = conditions(an)
    if not conds:
        return []
    have: set[tuple[int, str]] = set()
    for env in chosen:
        got = covered(an, conds, env)
        for i, sides in (got or {}).items():
            have |= {(i, s) for s in sides}
    cap = _cap_facts(kernel)
    cands: list[tuple[dict, dict]] = []
    for c in conds:
        for side, q in _queries(c):
            if (c.index, side) in have:
                continue
            scope = an.scope(c.site)  # reached: ranges and the path (not the condition)
            if c.kind == "mask":
                scope = scope + an.coords(c.site.node)
            ans = an.decide(q, an.assume(scope, cap, query=q))
            if ans.status != "refuted" or not ans.cex:
                continue
            sizes = {s: int(ans.cex[s]) for s in kernel.sizes if s in ans.cex}
            if len(sizes) != len(kernel.sizes):
                continue
            if is_admissible is not None and not is_admissible(sizes):
                continue
            pins = {}
            for k, v in ans.cex.items():
                d = an.data.get(k)
                if d is None:
                    continue
                try:
                    pins[(d.tensor, tuple(int(x.evaluate(ans.cex)) for x in d.index))] = int(v)
                except (shapes.ShapeError, ZeroDivisionError, KeyError):
                    continue
            if all((sizes, pins) != x for x in cands):
                cands.append((sizes, pins))
    out: list[tuple[dict, dict]] = []
    gains = []
    for sizes, pins in cands:
        got = covered(an, conds, sizes, pins=pins)
        sides = {(i, s) for i, ss in (got or {}).items() for s in ss}
        gains.append(sides)
    while len(out) < limit:
        best, best_new = None, set()
        for k, sides in enumerate(gains):
            new = sides - have
            if len(new) > len(best_new):
                best, best_new = k, new
        if best is None:
            break
        out.append(cands[best])
        have |= best_new
    return out
