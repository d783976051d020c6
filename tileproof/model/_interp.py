"""One concrete interpreter of the schedule model: what happens at ``B=1, S=48``.

Where :mod:`tileproof.verify.static` proves facts for *all* sizes, this module
runs the model at concrete sizes, exactly, for the pictures (:mod:`tileproof.show`),
for the static layer's confirmation of counterexamples and bounded ring checks,
and for tests.  It walks the model once with a batch of *rows* -- one row per
combination of program ids, rank, lane and loop indices -- held as numpy arrays,
so a tile of ``16 x 128`` elements over a few hundred programs is a handful of
array operations rather than a Python loop per element.

Semantics (the model's, see :mod:`._nodes`):

- expressions use floor semantics (``//``, ``%``, ``cdiv``, :mod:`._eval`); a
  division by zero is reported, never silently 0; :func:`events` evaluates on
  Python ints (exact at any magnitude), :func:`run` on int64;
- programs are the grid's ids, plus the rank where it is no grid axis;
- a :class:`Loop` runs ``[lo, hi)`` per row (empty when ``hi <= lo``); loops
  without a barrier inside are expanded into rows, those with one run iteration
  by iteration so the barrier counts (the *phase*) stay exact;
- a :class:`Branch` splits the rows by its condition; an early exit
  (``exit=True``, top level only) ends the rows that fail it;
- :class:`Lanes` multiply the rows by the lane count; the lanes of one program
  run one after the other in program order, a ``lanes`` barrier orders them;
- a load of an index tensor binds its data symbol to the tensor's value at the
  index: from whole tables (:func:`run`, sampled or given, :mod:`._sample`) or
  from the lazy :class:`._data.Oracle` (:func:`events`); either honours every
  declaration (``values``, ``distinct``, work tables), so every read of one
  entry agrees;
- a grid-scoped :class:`Barrier` (or a launch boundary) advances the row's phase.

Nothing here proves anything; it never produces a verdict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping

import numpy as np

from ._data import Oracle, RunError, TooLarge
from ._eval import evaluate, holds, in_range
from ._events import (
    PROG,
    AccessEvents,
    BarrierEvents,
    CommEvents,
    Event,
    ExitEvents,
    FoldEvents,
    Schedule,
)
from ._nodes import (
    Access,
    Barrier,
    Branch,
    Comm,
    Fold,
    Lanes,
    Loop,
    Model,
    Node,
    Unsupported,
    walk,
)
from ._sample import _concrete_shape, sample_data

__all__ = [
    "AccessEvents",
    "BarrierEvents",
    "CommEvents",
    "Event",
    "ExitEvents",
    "FoldEvents",
    "Schedule",
    "covers",
    "events",
    "programs",
    "run",
    "touched",
]

DEFAULT_BUDGET = 5_000_000  # element events one run may produce (about 40 bytes each)
DEFAULT_STEPS = 50_000  # node executions one run of events() may take


# ------------------------------------------------------------------------------- walk


def _axes(model: Model, sizes: Mapping[str, int]) -> list[tuple[str, int]]:
    """The program axes and their extents: the grid, and the rank where it is no grid axis."""
    axes = [(name, int(extent.evaluate(sizes))) for name, extent in model.grid]
    if model.ranks is not None and model.ranks[0] not in dict(model.grid):
        axes.append((model.ranks[0], int(model.ranks[1].evaluate(sizes))))
    return axes


def programs(model: Model, sizes: Mapping[str, int]) -> list[dict[str, int]]:
    """Every program's ids, in the order the runs visit them."""
    axes = _axes(model, sizes)
    return [
        dict(zip([a for a, _ in axes], vals))
        for vals in itertools.product(*(range(max(e, 0)) for _, e in axes))
    ]


def _programs(axes, dt) -> dict[str, np.ndarray]:
    extents = [max(e, 0) for _, e in axes]
    count = math.prod(extents)
    grids = np.indices(extents).reshape(len(extents), -1) if axes else np.zeros((0, 1), np.int64)
    programs = {name: grids[k].astype(np.int64).astype(dt) for k, (name, _) in enumerate(axes)}
    programs[PROG] = np.arange(count, dtype=np.int64)
    return programs


class _Run:
    """One walk.  ``sched`` set: record every node for pictures (:func:`run`); else record
    the nodes ``want`` selects as :class:`Event` rows (:func:`events`), exactly."""

    def __init__(
        self,
        model: Model,
        sizes: dict,
        sched: Schedule | None,
        *,
        budget: int,
        read: Callable | None = None,
        want: Callable | None = None,
        steps: int | None = None,
        masked_zero: bool = False,
    ):
        self.model, self.sizes, self.s = model, sizes, sched
        self.budget, self.spent = budget, 0
        self.read, self.want, self.steps, self.taken = read, want, steps, 0
        self.masked_zero = masked_zero
        self.dt = np.int64 if sched is not None else object
        self.order = {id(node): k for k, node in enumerate(model.walk())}
        self.rows: list = []  # events: (node, env, phase, path)

    def charge(self, n: int, node: Node) -> None:
        self.spent += n
        if self.spent > self.budget:
            raise TooLarge(
                f"the run at {', '.join(f'{k}={v}' for k, v in self.sizes.items())} exceeds "
                f"{self.budget:,} events",
                node.loc,
                "Choose smaller sizes.",
            )

    def base(self, node: Node, env, phase, loops, lanes) -> dict:
        return dict(
            node=node,
            env=env,
            phase=phase[:, 0].copy(),
            loops=loops,
            lanes=lanes,
            order=self.order[id(node)],
        )

    def record(self, node: Node, env: dict, phase: np.ndarray, path: tuple) -> None:
        want = self.want
        assert want is not None, "record() is for events mode, which passes want="
        if want(node):
            self.rows.append((node, dict(env), phase.copy(), path))

    def block(
        self,
        nodes: list[Node],
        env: dict,
        phase: np.ndarray,
        loops: tuple,
        lanes: tuple,
        path: tuple = (),
    ) -> np.ndarray:
        """Run ``nodes`` for the rows of ``env``; returns the rows' phases afterwards
        (column 0: grid barriers passed; column 1: lanes barriers passed in the innermost
        lanes region)."""
        for node in nodes:
            n = len(phase)
            if n == 0:
                return phase
            try:
                phase = self.step(node, env, phase, loops, lanes, path)
            except RunError as e:  # name the line of the innermost node that failed
                if e.location is None:
                    e.location = node.loc
                    e.args = (str(e),)
                raise
        return phase

    def step(
        self, node: Node, env: dict, phase: np.ndarray, loops: tuple, lanes: tuple, path: tuple
    ) -> np.ndarray:
        """Run one node for the rows of ``env``; returns the rows' phases afterwards."""
        n = len(phase)
        if self.steps is not None:
            self.taken += n
            if self.taken > self.steps:
                raise TooLarge(f"more than {self.steps} steps")
        if self.s is None and isinstance(node, (Loop, Branch)):
            self.record(node, env, phase, path)  # where a caller watches its condition
        if isinstance(node, Loop):
            phase = self.loop(node, env, phase, loops, lanes, path)
        elif isinstance(node, Branch):
            mask = np.broadcast_to(holds(node.cond, env), (n,))
            phase = phase.copy()
            if node.exit:
                gone = ~mask
                if gone.any() and self.s is not None:
                    self.s.exits.append(
                        ExitEvents(**self.base(node, _take(env, gone), phase[gone], loops, lanes))
                    )
                phase[mask] = self.block(
                    node.then, _take(env, mask), phase[mask], loops, lanes, path
                )
                return phase
            for sel, body in ((mask, node.then), (~mask, node.orelse)):
                if body and sel.any():
                    phase[sel] = self.block(body, _take(env, sel), phase[sel], loops, lanes, path)
        elif isinstance(node, Lanes):
            idx = np.repeat(np.arange(n), node.n)
            sub = _take(env, idx)
            sub[node.var] = np.tile(np.arange(node.n, dtype=np.int64), n).astype(self.dt)
            inner = phase[idx].copy()
            inner[:, 1] = 0
            after = self.block(
                node.body,
                sub,
                inner,
                loops,
                (*lanes, node.var),
                (*path, (self.order[id(node)], node.var, True)),
            )
            phase = phase.copy()
            phase[:, 0] = after[:, 0].reshape(n, node.n).max(axis=1)
        elif isinstance(node, Access):
            self.access(node, env, phase, loops, lanes, path)
        elif isinstance(node, Barrier):
            if self.s is None:
                self.record(node, env, phase, path)
            else:
                self.s.barriers.append(BarrierEvents(**self.base(node, env, phase, loops, lanes)))
            if node.ends_phase:
                phase = phase.copy()
                phase[:, 0] += 1
            elif node.scope == "lanes":
                phase = phase.copy()
                phase[:, 1] += 1
        elif self.s is None:
            self.record(node, env, phase, path)
        elif isinstance(node, Comm):
            self.comm(node, env, phase, loops, lanes)
        elif isinstance(node, Fold):
            chunk = self.prov(node.prov, env, n)
            cond = np.broadcast_to(holds(node.cond, env), (n,))
            self.s.folds.append(
                FoldEvents(**self.base(node, env, phase, loops, lanes), chunk=chunk, cond=cond)
            )
        elif isinstance(node, Unsupported):
            self.s.unsupported.append(node)
        return phase

    def loop(
        self, node: Loop, env: dict, phase: np.ndarray, loops: tuple, lanes: tuple, path: tuple
    ) -> np.ndarray:
        n = len(phase)
        lo = self.ints(node.lo, env, (n,)).astype(self.dt)
        hi = self.ints(node.hi, env, (n,)).astype(self.dt)
        counts = np.maximum(hi - lo, 0)
        if self.steps is not None and counts.max(initial=0) > self.steps:
            raise TooLarge(f"a loop of {counts.max()} iterations")
        counts = counts.astype(np.int64)
        self.charge(int(counts.sum()), node)
        inner = (*loops, node.var)
        path = (*path, (self.order[id(node)], node.var, False))
        # events count lanes barriers per lane too: iterate in order when there are any
        has_barrier = any(
            isinstance(x, Barrier) and (x.ends_phase or (self.s is None and x.scope == "lanes"))
            for x in walk(node.body)
        )
        if not has_barrier:  # independent iterations: expand them into rows
            idx = np.repeat(np.arange(n), counts)
            sub = _take(env, idx)
            start = np.cumsum(counts) - counts
            sub[node.var] = lo[idx] + (np.arange(len(idx)) - start[idx]).astype(self.dt)
            self.block(node.body, sub, phase[idx], inner, lanes, path)
            return phase
        phase = phase.copy()
        for k in range(int(counts.max(initial=0))):  # a barrier inside: iterate in order
            live = k < counts
            sub = _take(env, live)
            sub[node.var] = lo[live] + k
            phase[live] = self.block(node.body, sub, phase[live], inner, lanes, path)
        return phase

    def access(
        self, node: Access, env: dict, phase: np.ndarray, loops: tuple, lanes: tuple, path: tuple
    ) -> None:
        n = len(phase)
        if self.s is None:  # events: bind the data symbol first, as the program does
            if node.value is not None:
                read = self.read
                assert read is not None, "events mode reads data through read="
                idx = [np.broadcast_to(evaluate(d.start, env), (n,)) for d in node.dims]
                on = self.any_on(node, env, n) if self.masked_zero else np.ones(n, bool)
                env[node.value] = np.array(
                    [
                        read(node.value, tuple(int(i[r]) for i in idx)) if on[r] else 0
                        for r in range(n)
                    ],
                    dtype=self.dt,
                )
            self.record(node, env, phase, path)
            return
        extents = [d.size for d in node.dims if not d.point]
        tile = math.prod(extents)
        self.charge(n * tile, node)
        grids = (
            np.indices(extents).reshape(len(extents), -1) if extents else np.zeros((0, 1), np.int64)
        )
        coords = {f"_c{k}": grids[k][None, :] for k in range(len(extents))}
        cenv = {
            **{k: (v[:, None] if isinstance(v, np.ndarray) else v) for k, v in env.items()},
            **coords,
        }
        element, k = [], 0
        for d in node.dims:
            start = self.ints(d.start, cenv, (n, 1))
            element.append(
                np.broadcast_to(start if d.point else start + grids[k][None, :], (n, tile))
            )
            k += 0 if d.point else 1
        keep = np.ones((n, tile), dtype=bool)
        if node.mask is not None:
            keep = np.broadcast_to(holds(node.mask, cenv), (n, tile))
        row = np.broadcast_to(np.arange(n)[:, None], (n, tile))[keep]
        element_t = tuple(e[keep].astype(np.int64) for e in element)
        shape = self.s.shapes[node.tensor]
        inside = np.ones(len(row), dtype=bool)
        for e, extent in zip(element_t, shape):
            inside &= (e >= 0) & (e < extent)
        self.s.accesses.append(
            AccessEvents(
                **self.base(node, env, phase, loops, lanes),
                element=element_t,
                row=row,
                in_bounds=inside,
            )
        )
        if node.value is not None:  # an index-tensor read binds its data symbol for what follows
            data = self.s.data[node.tensor]
            at = tuple(self.ints(d.start, env, (n,)).astype(np.int64) for d in node.dims)
            ok = np.ones(n, dtype=bool)
            for i, extent in zip(at, data.shape):
                ok &= (i >= 0) & (i < extent)
            safe = tuple(np.where(ok, i, 0) for i in at)
            # an out-of-bounds read yields the lowest admissible value (the bounds
            # obligation reports the read itself; the picture shows where it went)
            env[node.value] = np.where(ok, data[safe], data.min(initial=0))

    @staticmethod
    def any_on(node: Access, env: dict, n: int) -> np.ndarray:
        """Per row: does the access's mask let any element of its tile through?"""
        if node.mask is None:
            return np.ones(n, dtype=bool)
        extents = [d.size for d in node.dims if not d.point]
        grids = (
            np.indices(extents).reshape(len(extents), -1) if extents else np.zeros((0, 1), np.int64)
        )
        cenv = {
            **{k: (v[:, None] if isinstance(v, np.ndarray) else v) for k, v in env.items()},
            **{f"_c{k}": grids[k][None, :].astype(object) for k in range(len(extents))},
        }
        return np.asarray(np.broadcast_to(holds(node.mask, cenv), (n, grids.shape[1])).any(axis=1))

    def comm(self, node: Comm, env: dict, phase: np.ndarray, loops: tuple, lanes: tuple) -> None:
        n = len(phase)
        dst = self.ints(node.dst, env, (n,))
        src = self.ints(node.src, env, (n,))
        sent = self.prov(node.prov, env, n)
        sched = self.s
        assert sched is not None, "comm() runs in schedule mode"
        rank = sched.model.ranks[0] if sched.model.ranks else None
        received = np.full(n, -1, dtype=np.int64)
        if node.prov is not None and rank is not None:
            received = self.ints(node.prov.subs({rank: node.src}), env, (n,))
        sched.comms.append(
            CommEvents(
                **self.base(node, env, phase, loops, lanes),
                dst=dst,
                src=src,
                send=np.broadcast_to(holds(node.send, env), (n,)),
                recv=np.broadcast_to(holds(node.recv, env), (n,)),
                sent=sent,
                received=received,
            )
        )

    def prov(self, expr, env, n) -> np.ndarray:
        if expr is None:
            return np.full(n, -1, dtype=np.int64)
        return self.ints(expr, env, (n,)).astype(np.int64)

    def ints(self, expr, env, shape: tuple) -> np.ndarray:
        """``expr`` per row; for pictures (int64 rows) refused at or past ``2**62`` (see
        :mod:`._eval`): a value that does not fit must not wrap into a wrong element."""
        v = evaluate(expr, env)
        if self.s is not None:
            in_range(v, expr)
        return np.broadcast_to(v, shape)

    def events(self, axes) -> list[Event]:
        """The recorded rows as events, per program in program order."""
        names = [a for a, _ in axes]
        out = []
        for node, env, phase, path in self.rows:
            mine = self.order[id(node)]
            lanes_at = max((k for k, p in enumerate(path) if p[2]), default=None)
            for r in range(len(phase)):
                row = {
                    k: (int(v[r]) if isinstance(v, np.ndarray) else v)
                    for k, v in env.items()
                    if k != PROG
                }
                key = (*(x for o, var, _ in path for x in (o, row[var])), mine)
                lane = None
                if lanes_at is not None:
                    region = (int(env[PROG][r]), key[: 2 * lanes_at + 1])
                    lane = (region, row[path[lanes_at][1]], int(phase[r, 1]))
                prog = tuple(row[a] for a in names)
                out.append(
                    ((int(env[PROG][r]), key), Event(node, row, int(phase[r, 0]), 0, prog, lane))
                )
        out.sort(key=lambda t: t[0])
        seq: dict[int, int] = {}
        for (p, _), ev in out:
            ev.seq = seq.get(p, 0)
            seq[p] = ev.seq + 1
        return [ev for _, ev in out]


def _take(env: dict, sel) -> dict:
    return {k: (v[sel] if isinstance(v, np.ndarray) and v.ndim == 1 else v) for k, v in env.items()}


def _runnable(model: Model) -> None:
    """A model holding an over-approximated value (``Data.inexact``: a loop carry advanced
    by data-chosen steps) has no single concrete run: say so instead of guessing it."""
    for d in model.data.values():
        if getattr(d, "inexact", ""):
            raise RunError(
                f"the model over-approximates {d.inexact} at {d.loc.short}: it has no concrete run",
                d.loc,
            )


def run(
    model: Model,
    sizes: Mapping[str, int],
    *,
    data: Mapping[str, object] | None = None,
    seed: int = 0,
    budget: int = DEFAULT_BUDGET,
    derive=None,
) -> Schedule:
    """Execute ``model`` at ``sizes`` (already inside the domain, see
    :func:`._sample.resolve_sizes`), recording every access element for pictures.

    ``derive(inputs, sizes) -> {name: array}`` is a kernel's host-side hook
    (``numeric={"derive": ...}``): index tensors the host computes from others,
    such as a work table built from sequence lengths, replace the sampled ones.
    """
    _runnable(model)
    sizes = {k: int(v) for k, v in sizes.items()}
    tensor_shapes = {}
    for name in model.tensors:
        try:
            tensor_shapes[name] = _concrete_shape(model, name, sizes)
        except ZeroDivisionError:
            raise RunError(
                f"the shape of {name} divides by zero at these sizes", model.tensors[name].where
            ) from None
    programs = _programs(_axes(model, sizes), np.int64)
    count = len(programs[PROG])
    values = sample_data(model, sizes, data, seed)
    if derive is not None:
        try:
            derived = derive(dict(values), dict(sizes))
        except KeyError:  # it needs inputs other than index tensors: keep the samples
            derived = {}
        for name, arr in derived.items():
            if name in values and not (data and name in data):
                values[name] = np.broadcast_to(np.asarray(arr, np.int64), values[name].shape).copy()
    sched = Schedule(model, sizes, values, programs, tensor_shapes)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        _Run(model, sizes, sched, budget=budget).block(
            model.body, {**sizes, **programs}, np.zeros((count, 2), dtype=np.int64), (), ()
        )
    return sched


def events(
    model: Model,
    sizes: Mapping[str, int],
    *,
    data: Mapping[str, int] | None = None,
    cells: Mapping | None = None,
    budget: int = DEFAULT_STEPS,
    want: Callable[[Node], bool] | None = None,
    read: Callable[[str, tuple[int, ...]], int] | None = None,
    masked_zero: bool = False,
) -> list[Event]:
    """Every execution of the nodes ``want`` selects (accesses, barriers, ring steps and
    folds by default) by every program, per program in program order, on Python ints.

    Index-tensor values come from one :class:`._data.Oracle`: ``data`` (by data symbol)
    and ``cells`` (by ``(tensor, index)``) where admissible, else the admissible value
    nearest 0, honouring every declaration -- or from ``read(symbol, index)`` where the
    caller has the run's own inputs (the numeric replay); ``masked_zero``: a load whose
    mask is off on its whole tile yields 0, as the numeric executor reads it.  ``want`` may
    select loops and branches too: they are recorded before they run.  Raises
    :class:`TooLarge` past ``budget`` node executions, :class:`RunError` on a division by
    zero."""
    _runnable(model)
    sizes = {k: int(v) for k, v in sizes.items()}
    oracle = read or Oracle(model, sizes, data or {}, cells)
    want = want or (lambda n: isinstance(n, (Access, Barrier, Comm, Fold)))
    axes = _axes(model, sizes)
    programs = _programs(axes, object)
    walker = _Run(
        model,
        sizes,
        None,
        budget=1 << 62,
        read=oracle,
        want=want,
        steps=budget,
        masked_zero=masked_zero,
    )
    walker.block(
        model.body,
        {**sizes, **programs},
        np.zeros((len(programs[PROG]), 2), dtype=np.int64),
        (),
        (),
    )
    return walker.events(axes)


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
