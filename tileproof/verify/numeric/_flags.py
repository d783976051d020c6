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
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ...spec._errors import Location

__all__ = ["KINDS", "Finding", "Flags", "Record", "make_record", "reduce_record"]

# kind -> what it means (the first line of its message)
KINDS = {
    "oob_load": "out-of-bounds load",
    "oob_store": "out-of-bounds store",
    "poison": "read of an element never written",
    "race": "two writers of one element in one phase",
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
    """``count`` bad elements; ``ids``/``elem`` of the first (leading batch axes allowed)."""

    def __init__(self, info: Info, count, ids, elem):
        self.info, self.count, self.ids, self.elem = info, count, ids, elem

    def tree_flatten(self):
        return (self.count, self.ids, self.elem), self.info

    @classmethod
    def tree_unflatten(cls, info, children):
        return cls(info, *children)

    def __repr__(self) -> str:
        return f"Record({self.info.kind}, {self.info.tensor}, {self.info.site})"


def make_record(info: Info, bad, coords, ids) -> Record:
    """A record from a boolean tile ``bad``, per-dim element coordinates, and the ids.

    ``coords`` is a list of ``info.ndim`` int arrays broadcastable to ``bad``;
    ``ids`` a length-6 list of int scalars (``-1`` where not applicable).
    """
    bad = jnp.asarray(bad, bool)
    flat = bad.reshape(-1)
    if flat.size == 0:
        return Record(info, jnp.int32(0), jnp.full((NIDS,), -1, jnp.int32),
                      jnp.zeros((info.ndim,), jnp.int32))
    count = jnp.sum(flat, dtype=jnp.int32)
    k = jnp.argmax(flat) if flat.size > 1 else jnp.int32(0)
    elem = [jnp.broadcast_to(jnp.asarray(c, jnp.int32), bad.shape).reshape(-1)[k] for c in coords]
    elem = jnp.stack(elem) if elem else jnp.zeros((0,), jnp.int32)
    ids = jnp.stack([jnp.asarray(i, jnp.int32) for i in ids])
    return Record(info, count, ids, elem)


def set_ids(rec: Record, col: int, value, only_unset: bool = False) -> Record:
    """Fill id column ``col`` (e.g. the loop iteration) in every row of ``rec``."""
    cur = rec.ids[..., col]
    value = jnp.broadcast_to(jnp.asarray(value, jnp.int32), cur.shape)
    new = jnp.where(cur < 0, value, cur) if only_unset else value
    return Record(rec.info, rec.count, rec.ids.at[..., col].set(new), rec.elem)


def reduce_record(rec: Record, lead_ids: tuple[int | None, ...] = ()) -> Record:
    """Fold all leading batch axes: total count, ids/elem of the first row with a hit.

    ``lead_ids[k]`` names the id column that leading axis ``k`` indexes (for
    axes added by a ``scan``, that is the iteration); ``None`` leaves ids alone.
    """
    nlead = rec.count.ndim
    if nlead == 0:
        return rec
    for k, col in enumerate(lead_ids[:nlead]):
        if col is not None:
            shape = [1] * nlead
            shape[k] = rec.count.shape[k]
            idx = jnp.arange(rec.count.shape[k], dtype=jnp.int32).reshape(shape)
            rec = set_ids(rec, col, idx, only_unset=True)
    count = rec.count.reshape(-1)
    rows = count.shape[0]
    if rows == 0:
        return Record(rec.info, jnp.int32(0), jnp.full((NIDS,), -1, jnp.int32),
                      jnp.zeros((rec.elem.shape[-1],), jnp.int32))
    hit = count > 0
    k = jnp.argmax(hit)
    ids = rec.ids.reshape(rows, rec.ids.shape[-1])[k]
    elem = rec.elem.reshape(rows, rec.elem.shape[-1])[k]
    return Record(rec.info, jnp.sum(count, dtype=jnp.int32), ids, elem)


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

    def __init__(self, records: list[Record], meta: tuple):
        self.records = list(records)
        self.meta = meta  # (grid names, grid extents, has ranks, tensor shapes as tuple of pairs)

    def tree_flatten(self):
        return (self.records,), self.meta

    @classmethod
    def tree_unflatten(cls, meta, children):
        return cls(children[0], meta)

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
            ids = [int(x) for x in np.asarray(r.ids)]
            elem = tuple(int(x) for x in np.asarray(r.elem))
            out.append(_finding(r.info, count, ids, elem, names, extents, has_ranks, shapes))
        return out

    @property
    def ok(self) -> bool:
        return not any(int(np.asarray(r.count)) for r in self.records)

    def __repr__(self) -> str:
        f = self.findings() if not any(isinstance(r.count, jax.core.Tracer) for r in self.records) else None
        return f"Flags({len(self.records)} checks, {'?' if f is None else len(f)} findings)"


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
