"""Run-time findings of the tiled execution: out-of-bounds, poisoned reads, races, ...

Every check site (a load, a store, a loop, a barrier, a ring step) produces a
:class:`Record`: how many elements were bad and *which one came first* — the
first in the order (rank, program, loop iteration, lane, element) — with the
ids of whoever touched it.  Records are JAX arrays with static metadata, so
they come out of ``jit``/``vmap``/``scan`` like any other value; batch axes
added by those transformations are folded away by :func:`reduce_record`.

:class:`Flags` holds the reduced records of one execution and turns them into
messages worded in the kernel's terms (program ids by grid-axis name, the
tensor element, the source line).

**Counts only.**  Naming the first offender (a min-reduction per check site, the
ids gathered at it, the fold over programs and iterations) is about a third of
what XLA compiles for an execution, and it is only read when something is wrong.
Under :func:`counts_only` every record carries its exact count and constant
ids: the same ``bad`` arrays are counted, so ``count > 0`` exactly when the
detailed record has a hit.  :func:`~tileproof.verify.numeric.check_numeric`
runs that way first and executes again with details only when a count is
non-zero, so every message is the one a detailed run gives.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...spec._errors import Location

__all__ = [
    "KINDS",
    "Finding",
    "Flags",
    "Record",
    "counts_only",
    "detailed",
    "empty_record",
    "fold_records",
    "make_record",
    "pack",
    "reduce_record",
    "unpack",
    "unravel",
]

# kind -> what it means (the first line of its message)
KINDS = {
    "oob_load": "out-of-bounds load",
    "oob_store": "out-of-bounds store",
    "poison": "read of an element never written",
    "race": "two writers of one element in one phase",
    "rw_race": "an element read by one program and written by another in one phase",
    "unwritten": "output element never written",
    "loop_bound": "loop ran past its static trip bound",
    "barrier": "program left before a grid barrier",
    "ring_recv": "receive with no matching send",
    "ring_send": "send with no matching receive",
    "ring_edge": "send off the edge of an open mesh",
}

# ids columns
RANK, PID, LANE, ITER, PID2, LANE2 = range(6)
NIDS = 6


@dataclass(frozen=True)
class Info:
    """Static half of a record: what was checked, where."""

    kind: str
    tensor: str | None = None
    site: Location | None = None
    ndim: int = 0
    detail: str = ""  # e.g. the static trip bound


@jax.tree_util.register_pytree_node_class
class Record:
    """``count`` bad elements; ``ids`` (6 int scalars) and ``elem`` (``ndim`` int scalars) of the first.

    Leading batch axes (programs, ranks, loop iterations, lanes) are allowed on
    every field alike; :func:`reduce_record` folds them.
    """

    def __init__(self, info: Info, count, ids: tuple, elem: tuple):
        self.info, self.count, self.ids, self.elem = info, count, tuple(ids), tuple(elem)

    def tree_flatten(self):
        return (self.count, self.ids, self.elem), self.info

    @classmethod
    def tree_unflatten(cls, info, children):
        return cls(info, *children)

    def __repr__(self) -> str:
        return f"Record({self.info.kind}, {self.info.tensor}, {self.info.site})"


def _i32(x):
    return jnp.asarray(x, jnp.int32)


_MODE = threading.local()  # records traced now: detailed (the default) or counts only


def detailed() -> bool:
    """Whether records traced now name their first offender (see :func:`counts_only`)."""
    return getattr(_MODE, "detail", True)


@contextmanager
def counts_only(on: bool = True):
    """Trace records with exact counts but constant ids and elements (see the module docstring)."""
    before = detailed()
    _MODE.detail = not on
    try:
        yield
    finally:
        _MODE.detail = before


def counted_record(info: Info, count) -> Record:
    """A counts-only record: ``count`` with placeholder ids and element."""
    return Record(info, _i32(count), (_i32(-1),) * NIDS, (_i32(0),) * info.ndim)


def empty_record(info: Info) -> Record:
    return Record(info, _i32(0), (_i32(-1),) * NIDS, (_i32(0),) * info.ndim)


def make_record(info: Info, bad, elem_at, ids) -> Record:
    """A record from a boolean array ``bad`` (any shape, any size).

    ``elem_at(ix)`` gives the element (``info.ndim`` int scalars) at multi-index
    ``ix`` of ``bad`` (a tuple of int32 scalars, one per axis of ``bad``); ``ids``
    is a list of 6 int scalars (``-1`` where not applicable) or a function of
    ``ix`` giving them.  Indices stay per-axis so that no flat position of a tensor
    of 2**31 elements or more is ever formed in 32-bit arithmetic.
    """
    bad = jnp.asarray(bad, bool)
    if bad.size == 0:
        return empty_record(info)
    count = count_true(bad)
    if not detailed():
        return counted_record(info, count)
    ix = first_true_nd(bad)
    elem = tuple(_i32(c) for c in elem_at(ix)) if info.ndim else ()
    ids = ids(ix) if callable(ids) else ids
    return Record(info, count, tuple(_i32(i) for i in ids), elem)


# counts and flat positions of at most this many elements are exact in int32
_FLAT_MAX = (1 << 31) - 1
# a count at or above this is reported as "at least COUNT_SATURATED" (no int64 without x64)
COUNT_SATURATED = 1 << 30


def _split(shape) -> int:
    """The first axis ``k`` with ``prod(shape[k:])`` below 2**30 (a chunk countable in int32)."""
    k = len(shape)
    while k > 0 and int(np.prod(shape[k - 1 :], dtype=object)) < COUNT_SATURATED:
        k -= 1
    return k


def saturating_sum(counts, axis=None):
    """Sum of non-negative int32 counts, saturated at :data:`COUNT_SATURATED` (never wraps).

    The int32 sum is exact while the true total is below 2**31; a float32 sum of the
    same non-negative terms (relative error far below 1/2) tells when it may not be."""
    counts = jnp.asarray(counts, jnp.int32)
    exact = jnp.sum(jnp.minimum(counts, COUNT_SATURATED), axis=axis, dtype=jnp.int32)
    approx = jnp.sum(counts.astype(jnp.float32), axis=axis)
    return jnp.where(approx >= COUNT_SATURATED, _i32(COUNT_SATURATED), exact)


_FOLD = 1 << 15


def _fold_last(bad):
    """``bad`` with a last axis of 2**30 elements or more folded into ``[rows, 2**15]``
    (padded with False), so that every chunk counted or searched is below 2**30."""
    n = bad.shape[-1]
    if n < COUNT_SATURATED:
        return bad, False
    if n > _FLAT_MAX:
        raise ValueError(f"an axis of {n} elements is beyond the executor's int32 indices")
    rows = -(-n // _FOLD)
    widths = [(0, 0)] * (bad.ndim - 1) + [(0, rows * _FOLD - n)]
    return jnp.pad(bad, widths).reshape((*bad.shape[:-1], rows, _FOLD)), True


def count_true(bad):
    """How many elements of ``bad`` are True: exact below 2**30, saturated above."""
    if bad.size < COUNT_SATURATED:
        return jnp.sum(bad.reshape(-1), dtype=jnp.int32)
    bad, _ = _fold_last(bad)
    k = _split(bad.shape)
    rows = jnp.sum(bad, axis=tuple(range(k, bad.ndim)), dtype=jnp.int32)
    return saturating_sum(rows)


def first_true(flat):
    """Index of the first True of a 1-D boolean (0 if none): a min-reduction, which fuses with
    the count (an argmax is a variadic reduction, several times slower on CPUs)."""
    n = flat.shape[0]
    if n == 1:
        return _i32(0)
    if n > _FLAT_MAX:
        raise ValueError(f"a flat axis of {n} elements is beyond the executor's int32 indices")
    k = jnp.min(jnp.where(flat, jnp.arange(n, dtype=jnp.int32), _i32(n)))
    return jnp.where(k == n, _i32(0), k)


def first_true_nd(bad) -> tuple:
    """Multi-index (row-major first) of the first True of ``bad``; all zeros if none.

    Below 2**31 elements: one flat min-reduction (as :func:`first_true`).  Above, the
    leading axes are searched first (any True in their rows), then the chosen row:
    every index is per axis, so no flat position needs more than 32 bits."""
    if bad.ndim == 0:
        return ()
    if bad.size <= _FLAT_MAX:
        return tuple(unravel(first_true(bad.reshape(-1)), bad.shape))
    bad, folded = _fold_last(bad)
    shape = bad.shape
    k = _split(shape)
    row_any = jnp.any(bad, axis=tuple(range(k, bad.ndim)))
    lead = first_true_nd(row_any)
    row = bad[lead]
    ix = (*lead, *unravel(first_true(row.reshape(-1)), shape[k:]))
    if folded:  # (row, column) of the folded last axis: below its extent, so below 2**31
        ix = (*ix[:-2], ix[-2] * _i32(_FOLD) + ix[-1])
    return ix


def unravel(k, shape) -> list:
    """Multi-index of flat position ``k`` in ``shape`` (row-major), as int scalars."""
    out = []
    k = _i32(k)
    for n in reversed(shape):  # k >= 0: truncating division is floor division
        out.append(lax.rem(k, _i32(n)))
        k = lax.div(k, _i32(n))
    return list(reversed(out))


def set_ids(rec: Record, col: int, value) -> Record:
    """Set id column ``col`` (e.g. the loop iteration) in every row of ``rec``."""
    ids = list(rec.ids)
    ids[col] = jnp.broadcast_to(_i32(value), jnp.shape(ids[col]))
    return Record(rec.info, rec.count, ids, rec.elem)


def reduce_record(rec: Record) -> Record:
    """Fold all leading batch axes: total count, ids/elem of the first row with a hit."""
    if jnp.ndim(rec.count) == 0:
        return rec
    count = rec.count.reshape(-1)
    if count.shape[0] == 0:
        return empty_record(rec.info)
    if not detailed():
        return counted_record(rec.info, saturating_sum(count))
    k = jnp.argmax(count > 0)
    pick = [jnp.broadcast_to(x, rec.count.shape).reshape(-1)[k] for x in (*rec.ids, *rec.elem)]
    return Record(rec.info, saturating_sum(count), pick[:NIDS], pick[NIDS:])


def _columns(rec: Record, detail: bool, width: int, shape) -> list:
    """A record's fields as int32 columns broadcast to ``shape`` (see :func:`fold_records`)."""
    cols = [rec.count]
    if detail:
        cols += [*rec.ids, *rec.elem] + [_i32(0)] * (width - NIDS - len(rec.elem))
    return [jnp.broadcast_to(_i32(c), shape) for c in cols]


def pack(records: list[Record], shape=()) -> jax.Array:
    """Records whose fields broadcast to ``shape`` as one int32 array ``[*shape, n, K]``:
    count, then (when records are detailed) the 6 ids and the element, zero-padded.

    A loop carries its records out as one array per iteration instead of ``7 + ndim``
    scalars per record (every stacked output is a write into a loop buffer of its own,
    the most numerous operation of a loop body on a GPU; issue 13)."""
    detail = detailed()
    width = 1 + (NIDS + max((r.info.ndim for r in records), default=0) if detail else 0)
    rows = [jnp.stack(_columns(r, detail, width - 1, shape), axis=-1) for r in records]
    return jnp.stack(rows, axis=-2)


def unpack(infos: list[Info], packed) -> list[Record]:
    """The inverse of :func:`pack` (leading axes kept on every field)."""
    out = []
    detail = packed.shape[-1] > 1
    for i, info in enumerate(infos):
        row = packed[..., i, :]
        if not detail:
            count = row[..., 0]
            shape = count.shape
            out.append(
                Record(
                    info,
                    count,
                    tuple(jnp.full(shape, -1, jnp.int32) for _ in range(NIDS)),
                    tuple(jnp.zeros(shape, jnp.int32) for _ in range(info.ndim)),
                )
            )
            continue
        ids = tuple(row[..., 1 + j] for j in range(NIDS))
        elem = tuple(row[..., 1 + NIDS + j] for j in range(info.ndim))
        out.append(Record(info, row[..., 0], ids, elem))
    return out


def fold_packed(packed, axes: int):
    """Fold the ``axes`` leading axes of a packed ``[..., n, K]`` array as
    :func:`reduce_record` folds a record's: summed counts (saturating), the other columns
    from the first row (row-major) whose count is non-zero, per record."""
    if axes == 0:
        return packed
    n, k = packed.shape[-2:]
    flat = packed.reshape((-1, n, k))
    if flat.shape[0] == 0:
        return jnp.zeros((n, k), jnp.int32).at[:, 1 : 1 + NIDS].set(-1)
    counts = flat[:, :, 0]
    total = saturating_sum(counts, axis=0)
    if k == 1:
        return total[:, None]
    first = jnp.argmax(counts > 0, axis=0)
    picked = jnp.take_along_axis(flat, first[None, :, None], axis=0)[0]
    return picked.at[:, 0].set(total)


def fold_records(records: list[Record]) -> list[Record]:
    """:func:`reduce_record` of every record, vectorised: records with the same batch
    shape are packed into one array and folded together (a few operations in all instead
    of a few per record)."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(tuple(jnp.shape(r.count)), []).append(i)
    out: list = list(records)
    for shape, idx in groups.items():
        if not shape:
            continue
        if 0 in shape:
            for i in idx:
                out[i] = empty_record(records[i].info)
            continue
        recs = [records[i] for i in idx]
        folded = fold_packed(pack(recs, shape), len(shape))
        for i, r in zip(idx, unpack([r.info for r in recs], folded)):
            out[i] = r
    return out


@dataclass(frozen=True)
class Finding:
    """One run-time finding, host-side: ``kind`` from :data:`KINDS` and a message."""

    kind: str
    message: str
    count: int
    tensor: str | None
    element: tuple[int, ...]
    program: dict[str, int]
    location: Location | None

    def __str__(self) -> str:
        return self.message


@jax.tree_util.register_pytree_node_class
class Flags:
    """The records of one execution plus what is needed to word them."""

    def __init__(self, records: list[Record], meta: tuple, detail: bool = True):
        self.records = list(records)
        self.meta = meta  # (grid names, grid extents, has ranks, tensor shapes as tuple of pairs)
        self.detail = detail  # False: traced under counts_only, ids and elements are placeholders

    def tree_flatten(self):
        return (self.records,), (self.meta, self.detail)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], *aux)

    # -- host side
    def findings(self) -> list[Finding]:
        """Every record with a hit, as messages (concrete values only; not under jit)."""
        names, extents, has_ranks, shapes = self.meta
        shapes = dict(shapes)
        out = []
        for r in self.records:
            count = int(np.asarray(r.count))
            if count == 0:
                continue
            if not self.detail:
                raise ValueError(
                    "these flags were traced counts-only: execute again with "
                    "details to word the findings"
                )
            ids = [int(np.asarray(x)) for x in r.ids]
            elem = tuple(int(np.asarray(x)) for x in r.elem)
            out.append(_finding(r.info, count, ids, elem, names, extents, has_ranks, shapes))
        return out

    @property
    def ok(self) -> bool:
        return not any(int(np.asarray(r.count)) for r in self.records)

    def __repr__(self) -> str:
        try:
            n = str(len(self.findings()))
        except Exception:  # traced (inside jit): no concrete counts yet
            n = "?"
        return f"Flags({len(self.records)} checks, {n} findings)"


def program_of(pid: int, names, extents) -> dict[str, int]:
    out = {}
    for name, e in reversed(list(zip(names, extents))):
        out[name] = pid % e if e else 0
        pid = pid // e if e else 0
    return dict(reversed(list(out.items())))


def _who(pid, lane, rank, names, extents, has_ranks) -> str:
    if pid < 0:
        return "a program"
    prog = program_of(pid, names, extents)
    text = "program (" + ", ".join(f"{k}={v}" for k, v in prog.items()) + ")"
    if lane >= 0:
        text += f" lane {lane}"
    if has_ranks and rank >= 0:
        text = f"rank {rank} " + text
    return text


def _finding(info: Info, count, ids, elem, names, extents, has_ranks, shapes) -> Finding:
    who = _who(ids[PID], ids[LANE], ids[RANK], names, extents, has_ranks)
    at = f" at {info.site}" if info.site is not None else ""
    it = f" in loop iteration {ids[ITER]}" if ids[ITER] >= 0 else ""
    el = f"{info.tensor}[{', '.join(map(str, elem))}]" if info.tensor else ""
    shape = shapes.get(info.tensor)
    shp = f" (shape {list(shape)})" if shape is not None else ""
    more = f"; {count} elements in all" if count > 1 else ""
    if count >= COUNT_SATURATED:
        more = f"; at least {count} elements in all"
    k = info.kind
    if k == "oob_load":
        msg = f"out-of-bounds load of {el}{shp} by {who}{it}{at}{more}"
    elif k == "oob_store":
        msg = f"out-of-bounds store to {el}{shp} by {who}{it}{at}{more}"
    elif k == "poison":
        msg = f"poisoned read: {el} is read by {who}{it}{at} but was never written{more}"
    elif k == "race":
        other = _who(ids[PID2], ids[LANE2], ids[RANK], names, extents, has_ranks)
        msg = f"race: {el} is written by {who} and by {other} in the same phase{at}{more}"
    elif k == "rw_race":
        other = _who(ids[PID2], -1, ids[RANK], names, extents, has_ranks)
        msg = (
            f"race: {el} is read by {who}{at} and written by {other} in the same phase "
            f"(no barrier between them){more}"
        )
    elif k == "unwritten":
        msg = f"output {el} is never written{more}"
    elif k == "loop_bound":
        msg = f"the loop{at} in {who} runs past its static trip bound {info.detail}"
    elif k == "barrier":
        msg = f"{who} exited before the grid barrier{at}, which waits for every program{more}"
    elif k == "ring_recv":
        msg = f"{who} receives{it}{at} from rank {ids[PID2]}, which sends nothing to it"
    elif k == "ring_send":
        msg = f"{who} sends{it}{at} to rank {ids[PID2]}, which does not receive from it"
    elif k == "ring_edge":
        msg = f"{who} sends{it}{at} to rank {ids[PID2]}, off the edge of the open mesh"
    else:  # pragma: no cover
        msg = f"{KINDS.get(k, k)} by {who}{at}"
    prog = program_of(ids[PID], names, extents) if ids[PID] >= 0 else {}
    return Finding(k, msg, count, info.tensor, elem, prog, info.site)
