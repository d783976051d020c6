"""Concrete execution of the model at given sizes: the events each program produces.

Used to *confirm* what the witness method cannot conclude (that no program
writes an element), for bounded ring checks, and by tests and benchmarks as
the brute-force oracle the symbolic verdicts are compared with.  It never
proves anything for all sizes.

Data values (reads of index tensors) come from an oracle: a table keyed by
``(tensor, index)`` so that two reads of one entry agree, filled from the
values a caller proposes (by data symbol) when they are admissible, else with
the admissible value nearest 0.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ... import shapes
from ...lowering._model import Access, Barrier, Branch, Comm, Fold, Lanes, Loop, Node
from ...spec._decl import count_cell
from ...spec._errors import SpecError
from ._context import Analysis, Site

__all__ = ["Event", "TooLarge", "events", "programs"]


class TooLarge(Exception):
    """The concrete run would exceed its budget."""


@dataclass
class Event:
    site: Site
    env: dict[str, int]
    phase: int  # grid barriers this program passed before the event
    seq: int  # position of the event in its program's run
    program: tuple[int, ...]  # program ids (and the rank when it is no grid axis)


def programs(an: Analysis, sizes: Mapping[str, int]) -> list[dict[str, int]]:
    axes = list(an.pids)
    extents = [an.extents[p].evaluate(sizes) for p in axes]
    if an.rank_var and an.rank_var not in an.extents:
        axes.append(an.rank_var)
        extents.append(an.rank_size.evaluate(sizes))
    return [dict(zip(axes, vals)) for vals in itertools.product(*(range(max(e, 0)) for e in extents))]


class _Data:
    """Values of index-tensor elements, one per element (reads of one entry agree).

    A read takes the value proposed for its data symbol, else the one proposed for its
    element (``cells``), else the admissible value nearest 0.  A work table declared with
    ``enumerates=`` (and the element holding its count) is built as a whole from the
    declaration when first read, from the values of the elements its condition reads, so
    that it lists exactly the keys the declaration says.
    """

    def __init__(self, an: Analysis, sizes: Mapping[str, int], proposed: Mapping[str, int],
                 cells: Mapping | None = None):
        self.an, self.sizes, self.proposed = an, dict(sizes), dict(proposed)
        self.cells = dict(cells or {})
        self.table: dict = {}
        self.tables = {n: t for n, t in an.model.tensors.items()
                       if getattr(t, "enumerates", None) is not None}
        self.counts: dict = {}
        for n, t in self.tables.items():
            try:
                cell = count_cell(t, self.sizes)
            except (ZeroDivisionError, shapes.ShapeError):
                cell = None
            if cell is not None:
                self.counts[cell] = n

    def __call__(self, name: str, index: tuple[int, ...]) -> int:
        return self.cell(self.an.data[name].tensor, index, name)

    def cell(self, tensor: str, index: tuple[int, ...], name: str | None = None) -> int:
        key = (tensor, tuple(index))
        if key in self.table:
            return self.table[key]
        owner = tensor if tensor in self.tables else self.counts.get(key)
        if owner is not None:
            self._build(owner)
            if key in self.table:
                return self.table[key]
        decl = self.an.model.tensors[tensor]
        cands = []
        if name is not None and name in self.proposed:
            cands.append(self.proposed[name])
        if key in self.cells:
            cands.append(self.cells[key])
        cands += [v for k in range(0, 65) for v in ((k, -k) if k else (0,))]
        bits = 8 * decl.itemsize
        for v in cands:
            if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
                continue
            try:
                if decl.values is None or decl.values.evaluate({**self.sizes, "v": v}):
                    self.table[key] = v
                    return v
            except (ZeroDivisionError, shapes.ShapeError):
                continue
        raise TooLarge(f"no small admissible value for {tensor}{list(index)}")

    def _build(self, name: str) -> None:
        from ...spec._decl import enumerate_keys

        t = self.tables[name]
        try:
            live, tail = enumerate_keys(self.an.model.tensors, name, self.sizes,
                                        lambda tensor, at: self.cell(tensor, at))
        except SpecError as e:
            raise TooLarge(f"work table {name}: {e.message}") from None
        for i, k in enumerate(live + tail):
            self.table[(name, (i,))] = k
        cell = count_cell(t, self.sizes)
        if cell is not None:
            self.table[cell] = len(live)


def events(an: Analysis, sizes: Mapping[str, int], *, data: Mapping[str, int] | None = None,
           cells: Mapping | None = None, budget: int = 50_000,
           want: Callable[[Node], bool] | None = None) -> list[Event]:
    """Every event (accesses, barriers, ring steps, folds) of every program, in program order.

    Index-tensor values come from ``data`` (by data symbol) and ``cells`` (by
    ``(tensor, index)``) where admissible, see :class:`_Data`."""
    oracle = _Data(an, sizes, data or {}, cells)
    want = want or (lambda n: isinstance(n, (Access, Barrier, Comm, Fold)))
    out: list[Event] = []
    steps = [0]

    def run(nodes, env, state, prog):
        for n in nodes:
            steps[0] += 1
            if steps[0] > budget:
                raise TooLarge(f"more than {budget} steps")
            if isinstance(n, Loop):
                lo, hi = n.lo.evaluate(env), n.hi.evaluate(env)
                if hi - lo > budget:
                    raise TooLarge(f"a loop of {hi - lo} iterations")
                for i in range(lo, hi):
                    if not run(n.body, {**env, n.var: i}, state, prog):
                        return False
                continue
            if isinstance(n, Branch):
                taken = n.cond.evaluate(env)
                if n.exit and not taken:
                    return False  # the program left early
                if not run(n.then if taken else n.orelse, env, state, prog):
                    return False
                continue
            if isinstance(n, Lanes):
                for lane in range(n.n):
                    run(n.body, {**env, n.var: lane}, state, prog)
                continue
            if isinstance(n, Access) and n.value is not None:
                idx = tuple(d.start.evaluate(env) for d in n.dims)
                env[n.value] = oracle(n.value, idx)
            if want(n):
                out.append(Event(an.by_node[id(n)], dict(env), state[0], state[1], prog))
                state[1] += 1
            if isinstance(n, Barrier) and n.ends_phase:
                state[0] += 1
        return True

    for p in programs(an, sizes):
        env = {**sizes, **p}
        run(an.model.body, env, [0, 0], tuple(p.values()))
    return out


def covers(acc: Access, env: Mapping[str, int], element: tuple[int, ...]) -> bool:
    """Does this access (at ``env``) touch ``element`` under its mask?"""
    coords = {}
    k = 0
    for d, e in zip(acc.dims, element):
        s = d.start.evaluate(env)
        if d.point:
            if e != s:
                return False
        else:
            if not s <= e < s + d.size:
                return False
            coords[f"_c{k}"] = e - s
            k += 1
    if acc.mask is None:
        return True
    return bool(acc.mask.evaluate({**env, **coords}))


def touched(acc: Access, env: Mapping[str, int]):
    """Every element the access touches at ``env`` (under its mask)."""
    ranges = []
    for d in acc.dims:
        s = d.start.evaluate(env)
        ranges.append([s] if d.point else range(s, s + d.size))
    for el in itertools.product(*ranges):
        if acc.mask is None or covers(acc, env, el):
            yield el
