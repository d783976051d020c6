"""Run the schedule model at concrete sizes, vectorised: every access, barrier, ring step and fold.

Where :mod:`tileproof.verify.static` proves facts for *all* sizes, this module
answers "what happens at ``B=1, S=48``" exactly, for pictures and for people.
It walks the model once with a batch of *rows* — one row per combination of
program ids, rank, lane and loop indices — held as numpy arrays, so a tile of
``16 x 128`` elements over a few hundred programs is a handful of array
operations rather than a Python loop per element.

Semantics (the model's, see :mod:`tileproof.model`):

- expressions use Python floor semantics (``//``, ``%``, ``cdiv``) on int64
  arrays; a division by zero is reported, never silently 0;
- a :class:`Loop` runs ``[lo, hi)`` per row (empty when ``hi <= lo``); loops
  without a grid barrier inside are expanded into rows, those with one run
  iteration by iteration so the barrier count (the *phase*) stays exact;
- a :class:`Branch` splits the rows by its condition; an early exit
  (``exit=True``) ends the rows that fail it;
- :class:`Lanes` multiply the rows by the lane count;
- a load of an index tensor binds its data symbol to the tensor's concrete
  value at the index (given by the caller or sampled within the declared
  range), so every read of one entry agrees;
- a grid-scoped :class:`Barrier` (or a launch boundary) advances the row's phase.

Nothing here proves anything; it never produces a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import shapes
from ..model import (
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
)
from ..shapes._expr import BoolConst, BoolOp, Cmp, Op, Sym
from ..spec._decl import build_enumeration
from ..spec._errors import Location, SpecError

__all__ = [
    "AccessEvents",
    "BarrierEvents",
    "CommEvents",
    "EnumerateError",
    "ExitEvents",
    "FoldEvents",
    "Schedule",
    "evaluate",
    "holds",
    "resolve_sizes",
    "run",
]

PROG = "_prog"  # the row's program number (index into Schedule.programs)
DEFAULT_BUDGET = 5_000_000  # element events one run may produce (about 40 bytes each)


class EnumerateError(SpecError):
    """The concrete run cannot proceed (sizes outside the domain, a division by zero, too large)."""

    def __init__(self, message: str, location: Location | None = None, hint: str = ""):
        if hint and not message.endswith((".", "?", "!")):
            message += "."
        super().__init__(message, location, hint)


# ---------------------------------------------------------------- expression evaluation

Env = Mapping[str, object]


def evaluate(expr: shapes.Expr, env: Env):
    """The value of ``expr`` with numpy arrays (or ints) for symbols; floor semantics."""
    total = 0
    for mono, coef in expr.terms:
        value = coef
        for atom, power in mono:
            x = _atom(atom, env)
            value = value * (x if power == 1 else x**power)
        total = total + value
    return total


def _atom(atom, env: Env):
    if isinstance(atom, Sym):
        try:
            return env[atom.name]
        except KeyError:
            raise EnumerateError(
                f"no value for {atom.name!r}", None, f"Give it with --sizes {atom.name}=... ."
            ) from None
    assert isinstance(atom, Op)
    if atom.kind == "where":
        c, a, b = atom.args
        return np.where(holds(c, env), evaluate(a, env), evaluate(b, env))
    vals = [evaluate(a, env) for a in atom.args]
    if atom.kind in ("floordiv", "mod", "cdiv"):
        n, d = vals
        if np.any(np.asarray(d) == 0):
            raise EnumerateError(
                f"{_atom_text(atom)} divides by zero at these sizes",
                None,
                "Choose sizes inside the kernel's domain.",
            )
        if atom.kind == "floordiv":
            return np.floor_divide(n, d)
        if atom.kind == "mod":
            return np.mod(n, d)
        return -np.floor_divide(-np.asarray(n), d)
    if atom.kind == "min":
        return _reduce(np.minimum, vals)
    if atom.kind == "max":
        return _reduce(np.maximum, vals)
    if atom.kind == "abs":
        return np.abs(vals[0])
    raise AssertionError(atom.kind)


def _atom_text(atom) -> str:
    return str(shapes.Expr.atom(atom))


def _reduce(fn, vals):
    out = vals[0]
    for v in vals[1:]:
        out = fn(out, v)
    return out


_CMP = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def holds(cond: shapes.Formula, env: Env):
    """The truth of ``cond`` (a bool or a bool array) under ``env``."""
    if isinstance(cond, Cmp):
        return _CMP[cond.op](evaluate(cond.lhs, env), evaluate(cond.rhs, env))
    if isinstance(cond, BoolConst):
        return np.bool_(cond.value)
    assert isinstance(cond, BoolOp)
    parts = [holds(a, env) for a in cond.args]
    if cond.kind == "not":
        return np.logical_not(parts[0])
    return _reduce(np.logical_and if cond.kind == "and" else np.logical_or, parts)


# ---------------------------------------------------------------------------- events


@dataclass
class _Events:
    node: Node
    env: dict[str, np.ndarray]  # every bound name for these rows: program, lanes, loops, data
    phase: np.ndarray  # grid barriers the row passed before the event
    loops: tuple[str, ...]  # enclosing loop variables, outermost first
    lanes: tuple[str, ...]  # enclosing lane variables
    order: int  # the node's position in program order

    @property
    def program(self) -> np.ndarray:
        return self.env[PROG]

    def __len__(self) -> int:
        return len(self.phase)


@dataclass
class AccessEvents(_Events):
    """One row per (execution, tile element): ``element[k]`` is the index along dimension k."""

    element: tuple[np.ndarray, ...] = ()
    row: np.ndarray | None = None  # which execution each element belongs to (index into env)
    in_bounds: np.ndarray | None = None


@dataclass
class BarrierEvents(_Events):
    pass


@dataclass
class ExitEvents(_Events):
    """Rows that left the kernel at an early exit."""


@dataclass
class CommEvents(_Events):
    dst: np.ndarray | None = None
    src: np.ndarray | None = None
    send: np.ndarray | None = None
    recv: np.ndarray | None = None
    sent: np.ndarray | None = None  # origin rank of the chunk sent (-1 unknown)
    received: np.ndarray | None = None  # origin rank of the chunk received (-1 unknown)


@dataclass
class FoldEvents(_Events):
    chunk: np.ndarray | None = None  # origin rank of the chunk folded (-1 unknown)
    cond: np.ndarray | None = None


@dataclass
class Schedule:
    """Everything one concrete run produced, per node, in program order."""

    model: Model
    sizes: dict[str, int]
    data: dict[str, np.ndarray]
    programs: dict[str, np.ndarray]  # grid ids (and the rank) of each program number
    shapes: dict[str, tuple[int, ...]]  # concrete tensor shapes
    accesses: list[AccessEvents] = field(default_factory=list)
    barriers: list[BarrierEvents] = field(default_factory=list)
    exits: list[ExitEvents] = field(default_factory=list)
    comms: list[CommEvents] = field(default_factory=list)
    folds: list[FoldEvents] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)

    @property
    def n_programs(self) -> int:
        return len(self.programs[PROG])

    def writes(self, tensor: str) -> tuple[np.ndarray, int]:
        """How many times each element of ``tensor`` is stored, and the stores outside it."""
        shape = self.shapes[tensor]
        counts = np.zeros(shape, dtype=np.int64)
        outside = 0
        for ev in self.accesses:
            if ev.node.kind != "store" or ev.node.tensor != tensor:
                continue
            ok = ev.in_bounds
            outside += int((~ok).sum())
            np.add.at(counts, tuple(e[ok] for e in ev.element), 1)
        return counts, outside

    def program_label(self, p: int) -> str:
        return ", ".join(f"{k}={int(v[p])}" for k, v in self.programs.items() if k != PROG)


# ------------------------------------------------------------------------- sizes, data


def resolve_sizes(
    model: Model,
    given: Mapping[str, int],
    defaults: Mapping[str, int] | None = None,
    where: Location | None = None,
) -> dict[str, int]:
    """A value for every size: ``given``, else ``defaults``; checked against the domain."""
    sizes: dict[str, int] = {}
    unknown = sorted(set(given) - set(model.sizes))
    if unknown:
        raise EnumerateError(
            f"kernel {model.name} has no size named {', '.join(unknown)} "
            f"(sizes: {', '.join(model.sizes) or 'none'})",
            where,
            "Fix the --sizes argument.",
        )
    missing = []
    for s in model.sizes:
        if s in given:
            sizes[s] = int(given[s])
        elif defaults and s in defaults:
            sizes[s] = int(defaults[s])
        else:
            missing.append(s)
    if missing:
        example = ",".join(f"{s}=..." for s in missing)
        raise EnumerateError(
            f"kernel {model.name} needs concrete values for {', '.join(missing)}",
            where,
            f"Pass them as --sizes {example}.",
        )
    for s, v in sizes.items():
        lo = model.lower_bounds.get(s, 1)
        if v < lo:
            raise EnumerateError(
                f"size {s}={v} is below its minimum {lo}",
                where,
                "Choose sizes inside the kernel's domain.",
            )
    bad = []
    for a in model.assume:
        try:
            ok = bool(a.evaluate(sizes))
        except ZeroDivisionError:
            ok = False
        if not ok:
            bad.append(str(a))
    if bad:
        shown = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise EnumerateError(
            f"the sizes {shown} are outside the domain of {model.name}: "
            f"{'; '.join(bad)} does not hold",
            where,
            "Choose sizes that satisfy the kernel's assume=[...].",
        )
    return sizes


def _concrete_shape(model: Model, name: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(int(d.evaluate(sizes)) for d in model.tensors[name].shape)


def _value_interval(
    cond: shapes.Formula, sizes: Mapping[str, int]
) -> tuple[int | None, int | None]:
    """Bounds on ``v`` read off the comparisons of a conjunction (``0 <= v < P`` and the like)."""
    lo, hi = None, None
    parts = cond.args if isinstance(cond, BoolOp) and cond.kind == "and" else (cond,)
    v = shapes.sym("v")
    for c in parts:
        if not isinstance(c, Cmp):
            continue
        diff = c.lhs - c.rhs  # c: diff OP 0
        coef = (diff - diff.subs({"v": 0})).subs({"v": 1})
        if not coef.is_const or (diff - coef * v).free_symbols() & {"v"}:
            continue
        k = coef.const_value
        if k not in (1, -1):
            continue
        rest = int((diff - coef * v).evaluate(sizes))  # k*v + rest OP 0
        op = (
            c.op
            if k == 1
            else {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[c.op]
        )
        bound = -rest * k  # v OP bound
        if op in ("<", "<="):
            b = bound - (op == "<")
            hi = b if hi is None else min(hi, b)
        elif op in (">", ">="):
            b = bound + (op == ">")
            lo = b if lo is None else max(lo, b)
        elif op == "==":
            lo = bound if lo is None else max(lo, bound)
            hi = bound if hi is None else min(hi, bound)
    return lo, hi


def sample_data(
    model: Model, sizes: Mapping[str, int], given: Mapping[str, object] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Concrete contents for every index tensor: ``given`` ones checked, the others sampled."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    given = dict(given or {})
    explicit = set(given)
    for name, t in model.tensors.items():
        if t.values is None:
            continue
        shape = _concrete_shape(model, name, sizes)
        if name in given:
            arr = np.broadcast_to(np.asarray(given.pop(name), dtype=np.int64), shape).copy()
            ok = holds(t.values, {**sizes, "v": arr})
            if not np.all(ok):
                bad = tuple(int(i) for i in np.argwhere(~np.broadcast_to(ok, shape))[0])
                raise EnumerateError(
                    f"the given {name}{list(bad)} = {int(arr[bad])} is outside its declared "
                    f"range {t.values}",
                    t.where,
                    "Give values inside the range.",
                )
            out[name] = arr
            continue
        lo, hi = _value_interval(t.values, sizes)
        lo = 0 if lo is None else lo
        hi = lo + 1023 if hi is None else hi
        if hi < lo:
            raise EnumerateError(
                f"the range {t.values} of {name} admits no value at these sizes",
                t.where,
                "Choose other sizes.",
            )
        if getattr(t, "distinct", False):  # pairwise different: a sample without replacement
            count = math.prod(shape)
            if hi - lo + 1 < count:
                raise EnumerateError(
                    f"{name} holds {count} distinct values but its range {t.values} admits "
                    f"only {hi - lo + 1} at these sizes",
                    t.where,
                    "Choose other sizes.",
                )
            out[name] = (lo + rng.permutation(hi - lo + 1)[:count]).reshape(shape).astype(np.int64)
            continue
        arr = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
        for _ in range(8):  # the range may hold more than bounds (``v % 2 == 0``): resample misses
            ok = np.broadcast_to(holds(t.values, {**sizes, "v": arr}), shape)
            if ok.all():
                break
            arr[~ok] = rng.integers(lo, hi + 1, size=int((~ok).sum()), dtype=np.int64)
        else:
            raise EnumerateError(
                f"could not sample values of {name} satisfying {t.values}",
                t.where,
                f"Pass its contents explicitly (data={{'{name}': ...}}).",
            )
        out[name] = arr
    if given:
        raise EnumerateError(
            f"data given for {', '.join(sorted(given))}, which "
            f"{'is' if len(given) == 1 else 'are'} no index tensor of {model.name}"
        )
    for name, t in model.tensors.items():  # work tables: built from what they enumerate
        if getattr(t, "enumerates", None) is None or name in explicit:
            continue
        try:
            built = build_enumeration(model.tensors, name, sizes, out)
        except SpecError as e:
            raise EnumerateError(
                e.message, t.where, "Choose other sizes or pass the table."
            ) from None
        out.update(
            {
                k: np.asarray(v, dtype=np.int64)
                for k, v in built.items()
                if k == name or k not in explicit
            }
        )
    return out


# ------------------------------------------------------------------------------- walk


class _Run:
    def __init__(self, sched: Schedule, budget: int):
        self.s = sched
        self.budget = budget
        self.spent = 0
        self.order: dict[int, int] = {}
        for k, node in enumerate(sched.model.walk()):
            self.order[id(node)] = k

    def charge(self, n: int, node: Node) -> None:
        self.spent += n
        if self.spent > self.budget:
            raise EnumerateError(
                f"the run at {', '.join(f'{k}={v}' for k, v in self.s.sizes.items())} exceeds "
                f"{self.budget:,} events",
                node.loc,
                "Choose smaller sizes.",
            )

    def base(self, node: Node, env, phase, loops, lanes) -> dict:
        return dict(
            node=node, env=env, phase=phase, loops=loops, lanes=lanes, order=self.order[id(node)]
        )

    def block(
        self, nodes: list[Node], env: dict, phase: np.ndarray, loops: tuple, lanes: tuple
    ) -> np.ndarray:
        """Run ``nodes`` for the rows of ``env``; returns the rows' phases afterwards."""
        for node in nodes:
            n = len(phase)
            if n == 0:
                return phase
            if isinstance(node, Loop):
                phase = self.loop(node, env, phase, loops, lanes)
            elif isinstance(node, Branch):
                mask = np.broadcast_to(holds(node.cond, env), (n,))
                phase = phase.copy()
                if node.exit:
                    gone = ~mask
                    if gone.any():
                        self.s.exits.append(
                            ExitEvents(
                                **self.base(node, _take(env, gone), phase[gone], loops, lanes)
                            )
                        )
                    phase[mask] = self.block(node.then, _take(env, mask), phase[mask], loops, lanes)
                    continue
                for sel, body in ((mask, node.then), (~mask, node.orelse)):
                    if body and sel.any():
                        phase[sel] = self.block(body, _take(env, sel), phase[sel], loops, lanes)
            elif isinstance(node, Lanes):
                idx = np.repeat(np.arange(n), node.n)
                sub = _take(env, idx)
                sub[node.var] = np.tile(np.arange(node.n, dtype=np.int64), n)
                after = self.block(node.body, sub, phase[idx], loops, (*lanes, node.var))
                phase = after.reshape(n, node.n).max(axis=1)
            elif isinstance(node, Access):
                self.access(node, env, phase, loops, lanes)
            elif isinstance(node, Barrier):
                self.s.barriers.append(BarrierEvents(**self.base(node, env, phase, loops, lanes)))
                if node.ends_phase:
                    phase = phase + 1
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
        self, node: Loop, env: dict, phase: np.ndarray, loops: tuple, lanes: tuple
    ) -> np.ndarray:
        n = len(phase)
        lo = np.broadcast_to(evaluate(node.lo, env), (n,)).astype(np.int64)
        hi = np.broadcast_to(evaluate(node.hi, env), (n,)).astype(np.int64)
        counts = np.maximum(hi - lo, 0)
        self.charge(int(counts.sum()), node)
        inner = (*loops, node.var)
        has_barrier = any(isinstance(x, Barrier) and x.ends_phase for x in _walk(node.body))
        if not has_barrier:  # independent iterations: expand them into rows
            idx = np.repeat(np.arange(n), counts)
            sub = _take(env, idx)
            start = np.cumsum(counts) - counts
            sub[node.var] = lo[idx] + (np.arange(len(idx)) - start[idx])
            self.block(node.body, sub, phase[idx], inner, lanes)
            return phase
        phase = phase.copy()
        for k in range(int(counts.max(initial=0))):  # a barrier inside: iterate in order
            live = k < counts
            sub = _take(env, live)
            sub[node.var] = lo[live] + k
            phase[live] = self.block(node.body, sub, phase[live], inner, lanes)
        return phase

    def access(
        self, node: Access, env: dict, phase: np.ndarray, loops: tuple, lanes: tuple
    ) -> None:
        n = len(phase)
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
            start = np.broadcast_to(evaluate(d.start, cenv), (n, 1))
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
            idx = tuple(
                np.broadcast_to(evaluate(d.start, env), (n,)).astype(np.int64) for d in node.dims
            )
            ok = np.ones(n, dtype=bool)
            for i, extent in zip(idx, data.shape):
                ok &= (i >= 0) & (i < extent)
            safe = tuple(np.where(ok, i, 0) for i in idx)
            # an out-of-bounds read yields the lowest admissible value (the bounds
            # obligation reports the read itself; the picture shows where it went)
            env[node.value] = np.where(ok, data[safe], data.min(initial=0))

    def comm(self, node: Comm, env: dict, phase: np.ndarray, loops: tuple, lanes: tuple) -> None:
        n = len(phase)
        dst = np.broadcast_to(evaluate(node.dst, env), (n,))
        src = np.broadcast_to(evaluate(node.src, env), (n,))
        sent = self.prov(node.prov, env, n)
        rank = self.s.model.ranks[0] if self.s.model.ranks else None
        received = np.full(n, -1, dtype=np.int64)
        if node.prov is not None and rank is not None:
            received = np.broadcast_to(evaluate(node.prov.subs({rank: node.src}), env), (n,))
        self.s.comms.append(
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

    @staticmethod
    def prov(expr, env, n) -> np.ndarray:
        if expr is None:
            return np.full(n, -1, dtype=np.int64)
        return np.broadcast_to(evaluate(expr, env), (n,)).astype(np.int64)


def _take(env: dict, sel) -> dict:
    return {k: (v[sel] if isinstance(v, np.ndarray) and v.ndim == 1 else v) for k, v in env.items()}


def _walk(nodes):
    for node in nodes:
        yield node
        for attr in ("body", "then", "orelse"):
            yield from _walk(getattr(node, attr, ()) or ())


def run(
    model: Model,
    sizes: Mapping[str, int],
    *,
    data: Mapping[str, object] | None = None,
    seed: int = 0,
    budget: int = DEFAULT_BUDGET,
    derive=None,
) -> Schedule:
    """Execute ``model`` at ``sizes`` (already inside the domain, see :func:`resolve_sizes`).

    ``derive(inputs, sizes) -> {name: array}`` is a kernel's host-side hook
    (``numeric={"derive": ...}``): index tensors the host computes from others,
    such as a work table built from sequence lengths, replace the sampled ones.
    """
    sizes = {k: int(v) for k, v in sizes.items()}
    tensor_shapes = {}
    for name in model.tensors:
        try:
            tensor_shapes[name] = _concrete_shape(model, name, sizes)
        except ZeroDivisionError:
            raise EnumerateError(
                f"the shape of {name} divides by zero at these sizes", model.tensors[name].where
            ) from None
    axes = [(name, int(extent.evaluate(sizes))) for name, extent in model.grid]
    if model.ranks is not None:
        axes.append((model.ranks[0], int(evaluate(model.ranks[1], sizes))))
    extents = [max(e, 0) for _, e in axes]
    count = math.prod(extents)
    grids = np.indices(extents).reshape(len(extents), -1) if axes else np.zeros((0, 1), np.int64)
    programs = {name: grids[k].astype(np.int64) for k, (name, _) in enumerate(axes)}
    programs[PROG] = np.arange(count, dtype=np.int64)
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
        _Run(sched, budget).block(
            model.body, {**sizes, **programs}, np.zeros(count, dtype=np.int64), (), ()
        )
    return sched
