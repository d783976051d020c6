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
from ...model import Access, Barrier, Branch, Comm, Fold, Lanes, Loop, Node
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
    # (lanes region instance, lane, lanes barriers that lane passed there) inside lanes(),
    # else None: lanes run one after the other here, a lanes barrier orders them
    lane: tuple[int, int, int] | None = None


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

    Every value honours every declaration -- the dtype, ``values``, ``distinct`` (no value
    twice in one tensor) and work tables (their count) -- and a tensor is only used when
    the rest of it can be completed admissibly too (a ``distinct`` table of n entries needs
    n admissible values): a finding confirmed on these values is one some admissible input
    really shows.  When no such values are found the run raises :class:`TooLarge` (the
    caller then answers ``unknown``, never ``violated``).
    """

    _SCAN = 1 << 18  # candidate values tried when checking that a tensor can be completed

    def __init__(self, an: Analysis, sizes: Mapping[str, int], proposed: Mapping[str, int],
                 cells: Mapping | None = None):
        self.an, self.sizes, self.proposed = an, dict(sizes), dict(proposed)
        self.cells = dict(cells or {})
        self.table: dict = {}
        self.used: dict[str, set[int]] = {}  # values taken, per distinct tensor
        self.checked: set[str] = set()
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

    def admissible(self, tensor: str, v: int) -> bool:
        """Does ``v`` fit the tensor's dtype and ``values`` (distinctness aside)?"""
        decl = self.an.model.tensors[tensor]
        bits = 8 * decl.itemsize
        if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
            return False
        try:
            return decl.values is None or bool(decl.values.evaluate({**self.sizes, "v": v}))
        except (ZeroDivisionError, shapes.ShapeError):
            return False

    def _candidates(self, tensor: str, limit: int):
        """Values nearest 0 first, then upward (from the declared lower bound where it is
        above 64), within the declared bounds, ``limit`` of them at most."""
        lo, hi = _bounds(self.an.model.tensors[tensor], self.sizes)
        lo = -(2 ** 63) if lo is None else lo
        hi = 2 ** 63 if hi is None else hi
        n = 0
        for k in range(0, 65):
            for v in ((k, -k) if k else (0,)):
                if lo <= v < hi:
                    yield v
                    n += 1
        v = max(lo, 65)
        while n < limit and v < hi:
            yield v
            n += 1
            v += 1

    def _elements(self, tensor: str) -> int:
        decl = self.an.model.tensors[tensor]
        total = 1
        for d in decl.shape:
            total *= max(d.evaluate(self.sizes), 0)
        return total

    def _completable(self, tensor: str) -> None:
        """The whole tensor can hold admissible values: at least one (``distinct``: one per
        element) -- else no admissible input exists at these sizes."""
        if tensor in self.checked:
            return
        self.checked.add(tensor)
        decl = self.an.model.tensors[tensor]
        n = self._elements(tensor)
        need = n if getattr(decl, "distinct", False) else min(n, 1)
        if need == 0:
            return
        if decl.values is None:  # the dtype's whole range
            if need <= 2 ** (8 * decl.itemsize):
                return
        found = 0
        for v in self._candidates(tensor, need + self._SCAN):
            if self.admissible(tensor, v):
                found += 1
                if found >= need:
                    return
        raise TooLarge(f"no admissible values for {tensor} at {dict(self.sizes)}: "
                       f"its declaration needs {need} (values {decl.values}"
                       f"{', distinct' if decl.distinct else ''}), found {found}")

    def _take(self, tensor: str, key, v: int) -> int:
        self.table[key] = v
        if getattr(self.an.model.tensors[tensor], "distinct", False):
            self.used.setdefault(tensor, set()).add(v)
        return v

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
        self._completable(tensor)
        used = self.used.get(tensor, set()) if getattr(decl, "distinct", False) else set()
        cands = []
        if name is not None and name in self.proposed:
            cands.append(self.proposed[name])
        if key in self.cells:
            cands.append(self.cells[key])
        for v in cands:
            if v not in used and self.admissible(tensor, v):
                return self._take(tensor, key, v)
        for v in self._candidates(tensor, len(used) + self._SCAN):
            if v not in used and self.admissible(tensor, v):
                return self._take(tensor, key, v)
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
            if cell in self.table and self.table[cell] != len(live):
                raise TooLarge(f"work table {name}: its count {cell[0]}{list(cell[1])} was read "
                               f"as {self.table[cell]} but {len(live)} keys are live")
            if not self.admissible(cell[0], len(live)):
                raise TooLarge(f"work table {name}: {len(live)} live keys, a count that "
                               f"{cell[0]}'s declared values do not admit")
            self.table[cell] = len(live)
        elif t.count is not None:  # a count given by sizes (and reads): it must agree
            reads, env = t.read_map, dict(self.sizes)
            vals = {}
            for r in t.count.free_symbols() & set(reads):
                tensor, idx = reads[r]
                vals[r] = self.cell(tensor, tuple(x.evaluate(env) for x in idx))
            n = t.count.evaluate({**env, **vals})
            if n != len(live):
                raise TooLarge(f"work table {name}: count {t.count} is {n} but {len(live)} "
                               "keys are live")


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def _bounds(decl, sizes) -> tuple[int | None, int | None]:
    """``[lo, hi)`` around the values a tensor's ``values`` admits, from its comparisons of
    ``v`` alone with a side free of ``v`` (None where it states no bound)."""
    lo = hi = None
    stack = [decl.values] if decl.values is not None else []
    while stack:
        f = stack.pop()
        if isinstance(f, shapes.BoolOp) and f.kind == "and":
            stack.extend(f.args)
            continue
        if not isinstance(f, shapes.Cmp) or f.op not in _FLIP:
            continue
        for a, op, b in ((f.lhs, f.op, f.rhs), (f.rhs, _FLIP[f.op], f.lhs)):
            if a.as_symbol() != "v" or "v" in b.free_symbols():
                continue
            try:
                k = b.evaluate(sizes)
            except (ZeroDivisionError, shapes.ShapeError):
                continue
            if op in (">=", ">", "=="):
                lo = max(lo, k + (op == ">")) if lo is not None else k + (op == ">")
            if op in ("<=", "<", "=="):
                hi = min(hi, k + (op != "<")) if hi is not None else k + (op != "<")
    return lo, hi


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
                outer = state[2]
                regions[0] += 1
                for lane in range(n.n):
                    state[2] = [regions[0], lane, 0]
                    run(n.body, {**env, n.var: lane}, state, prog)
                state[2] = outer
                continue
            if isinstance(n, Access) and n.value is not None:
                idx = tuple(d.start.evaluate(env) for d in n.dims)
                env[n.value] = oracle(n.value, idx)
            if want(n):
                out.append(Event(an.by_node[id(n)], dict(env), state[0], state[1], prog,
                                 tuple(state[2]) if state[2] else None))
                state[1] += 1
            if isinstance(n, Barrier) and n.ends_phase:
                state[0] += 1
            if isinstance(n, Barrier) and n.scope == "lanes" and state[2]:
                state[2][2] += 1
        return True

    regions = [0]
    for p in programs(an, sizes):
        env = {**sizes, **p}
        run(an.model.body, env, [0, 0, None], tuple(p.values()))
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
