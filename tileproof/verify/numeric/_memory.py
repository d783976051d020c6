"""Kernel memory: poisoned buffers, tile windows, write logs and their application.

A tensor's state is its data and, for outputs and scratch, a ``written``
mask.  Buffers start *poisoned* — NaN for floats, the most negative value for
signed integers — so an unwritten element read by the kernel or left in an
output shows.

Within a phase, loads read the phase-start snapshot (or the program's private
view, see :mod:`._plan`).  Tile windows are ``dynamic_slice`` of a copy padded
by the largest tile extent on both sides, so a tile that overruns the tensor
is never shifted by clamping: its out-of-range elements are flagged and read
as 0 instead.

Stores in log mode append ``(value, starts, mask, writer, seq)`` per program;
after the phase :func:`apply_logs` scatters them, detects races (one element,
two writers) and keeps each writer's last write in program order (``seq``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._flags import LANE, LANE2, NIDS, PID, PID2, RANK, Info, Record, make_record, unravel

__all__ = ["LogEntry", "apply_logs", "merge_private", "pad", "poison_value", "unpad", "window"]

_BIG = np.iinfo(np.int32).max


def poison_value(dtype):
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.array(jnp.nan, dtype)
    if jnp.issubdtype(dtype, jnp.signedinteger):
        return jnp.array(jnp.iinfo(dtype).min, dtype)
    if jnp.issubdtype(dtype, jnp.unsignedinteger):
        return jnp.array(jnp.iinfo(dtype).max, dtype)
    return jnp.array(False, dtype)


def pad(x, pads):
    if not any(pads):
        return x
    return jnp.pad(x, [(p, p) for p in pads])


def unpad(x, pads, lead: int = 0):
    if not any(pads):
        return x
    idx = (slice(None),) * lead + tuple(slice(p, x.shape[lead + k] - p) for k, p in enumerate(pads))
    return x[idx]


def window_sizes(dims) -> tuple[int, ...]:
    return tuple(size if kind == "ds" else 1 for kind, size in dims)


def tile_shape(dims) -> tuple[int, ...]:
    return tuple(size for kind, size in dims if kind == "ds")


def window(x_padded, starts, pads, dims):
    """The tile at ``starts`` of a padded array, in tile shape (point dims dropped)."""
    idx = [jnp.asarray(s, jnp.int32) + p for s, p in zip(starts, pads)]
    w = lax.dynamic_slice(x_padded, idx, window_sizes(dims))
    return w.reshape(tile_shape(dims))


def put_window(x_padded, value, starts, pads, dims):
    idx = [jnp.asarray(s, jnp.int32) + p for s, p in zip(starts, pads)]
    return lax.dynamic_update_slice(x_padded, value.reshape(window_sizes(dims)), idx)


def coords(starts, dims):
    """Element coordinates of a tile, one broadcastable int array per tensor dim."""
    tshape = tile_shape(dims)
    out, j = [], 0
    for s, (kind, size) in zip(starts, dims):
        s = jnp.asarray(s, jnp.int32)
        if kind == "ds":
            shape = [1] * len(tshape)
            shape[j] = size
            out.append(s + jnp.arange(size, dtype=jnp.int32).reshape(shape))
            j += 1
        else:
            out.append(jnp.broadcast_to(s, (1,) * len(tshape)) if tshape else s)
    return out


def in_bounds(cs, shape, dims):
    ok = jnp.ones(tile_shape(dims), bool)
    for c, n in zip(cs, shape):
        ok = ok & (c >= 0) & (c < n)
    return ok


@jax.tree_util.register_pytree_node_class
class ReadEntry:
    """Reads of one load site of a tensor that the phase also writes: for read-write races."""

    def __init__(self, meta, starts, mask, reader):
        self.meta = meta  # (tensor, dims, site)
        self.starts, self.mask, self.reader = starts, mask, reader

    def tree_flatten(self):
        return (self.starts, self.mask, self.reader), self.meta

    @classmethod
    def tree_unflatten(cls, meta, ch):
        return cls(meta, *ch)


def _linear(starts, dims, shape, lead):
    """Flat element indices ``lead + tile`` of tiles at ``starts`` (``lead + (ndim,)``)."""
    strides = [int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]
    tshape = tile_shape(dims)
    nt = len(tshape)
    lin = jnp.zeros(lead + tshape, jnp.int32)
    j = 0
    for k, (kind, size) in enumerate(dims):
        s = starts[..., k].reshape(lead + (1,) * nt)
        if kind == "ds":
            shp = [1] * nt
            shp[j] = size
            c = s + jnp.arange(size, dtype=jnp.int32).reshape(shp)
            j += 1
        else:
            c = s
        lin = lin + c * strides[k]
    return lin


def read_write_races(entries: list[ReadEntry], wmap, shape, G: int, L: int) -> list[Record]:
    """Reads of elements that another program writes in the same phase (one record per site).

    ``wmap``: per element, the smallest and largest writing program (``rank*G + pid``;
    none: ``(BIG, -1)``).  The read sees the value before the phase on this executor, but on
    hardware it races with the write.
    """
    wmin, wmax = (w.reshape(-1) for w in wmap)
    n = wmin.shape[0]
    out = []
    for e in entries:
        t, dims, site = e.meta
        nt = len(tile_shape(dims))
        lead = e.mask.shape[: e.mask.ndim - nt]
        lin = _linear(e.starts, dims, shape, lead)
        full = lead + tile_shape(dims)
        reader = jnp.broadcast_to((e.reader // L).reshape(lead + (1,) * nt), full).reshape(-1)
        mask = jnp.broadcast_to(e.mask, full).reshape(-1)
        idx = jnp.clip(lin.reshape(-1), 0, max(n - 1, 0))
        lo, hi = wmin[idx], wmax[idx]
        other = jnp.where(lo != reader, lo, hi)
        bad = mask & (hi >= 0) & ((lo != reader) | (hi != reader))

        def ids(k, reader=reader, other=other):
            r, o = reader[k], other[k]
            return [r // G, r % G, -1, -1, o % G, -1]

        out.append(make_record(Info("rw_race", t, site, len(shape)), bad,
                               lambda k, idx=idx: unravel(idx[k], shape), ids))
    return out


@jax.tree_util.register_pytree_node_class
class LogEntry:
    """Writes of one store site: value and mask tiles, starts, writer key, order."""

    def __init__(self, meta, value, starts, mask, writer, seq):
        self.meta = meta  # (tensor, dims)
        self.value, self.starts, self.mask, self.writer, self.seq = value, starts, mask, writer, seq

    def tree_flatten(self):
        return (self.value, self.starts, self.mask, self.writer, self.seq), self.meta

    @classmethod
    def tree_unflatten(cls, meta, ch):
        return cls(meta, *ch)


@dataclass(frozen=True)
class Writers:
    """How writer keys decode: key = (rank * G + pid) * L + lane."""

    G: int
    L: int

    def ids(self, key, key2=None) -> list:
        lane = key % self.L
        pid = (key // self.L) % self.G
        rank = key // (self.L * self.G)
        ids = [rank, pid, jnp.where(self.L > 1, lane, -1), -1, -1, -1]
        if key2 is not None:
            ids[PID2] = (key2 // self.L) % self.G
            ids[LANE2] = jnp.where(self.L > 1, key2 % self.L, -1)
        return ids


def _element_record(info: Info, bad_flat, shape, ids_fn) -> Record:
    return make_record(info, bad_flat, lambda k: unravel(k, shape), ids_fn)


def apply_logs(data, written, entries: list[LogEntry], shape, ordered: bool, writers: Writers,
               tensor: str):
    """Apply one phase's logged writes to a tensor; returns data, written, race record."""
    n = int(np.prod(shape, dtype=np.int64))
    lins, vals, masks, keys, seqs = [], [], [], [], []
    for e in entries:
        _t, dims = e.meta
        tshape = tile_shape(dims)
        nt = len(tshape)
        lead = e.mask.shape[: e.mask.ndim - nt]
        lin = _linear(e.starts, dims, shape, lead)
        full = lead + tshape
        lins.append(lin.reshape(-1))
        vals.append(jnp.broadcast_to(e.value, full).reshape(-1))
        masks.append(jnp.broadcast_to(e.mask, full).reshape(-1))
        keys.append(jnp.broadcast_to(e.writer.reshape(lead + (1,) * nt), full).reshape(-1))
        seqs.append(jnp.broadcast_to(e.seq.reshape(lead + (1,) * nt), full).reshape(-1))
    lin = jnp.concatenate(lins)
    val = jnp.concatenate(vals).astype(data.dtype)
    mask = jnp.concatenate(masks)
    key = jnp.concatenate(keys)
    lin_m = jnp.where(mask, lin, n)
    kmin = jnp.full((n + 1,), _BIG, jnp.int32).at[lin_m].min(key)[:n]
    kmax = jnp.full((n + 1,), -1, jnp.int32).at[lin_m].max(key)[:n]
    race = (kmax >= 0) & (kmin < kmax)
    if ordered:
        seq = jnp.concatenate(seqs)
        smax = jnp.full((n + 1,), -1, jnp.int32).at[lin_m].max(seq)
        win = mask & (seq == smax[lin_m])
        lin_m = jnp.where(win, lin, n)
    flat = jnp.concatenate([data.reshape(-1), jnp.zeros((1,), data.dtype)])
    data = flat.at[lin_m].set(val)[:n].reshape(shape)
    if written is not None:
        w = jnp.concatenate([written.reshape(-1), jnp.zeros((1,), bool)])
        written = w.at[lin_m].set(True)[:n].reshape(shape)
    rec = _element_record(Info("race", tensor, None, len(shape)), race, shape,
                          lambda k: writers.ids(kmin[k], kmax[k]))
    return data, written, rec, (kmin // writers.L, jnp.where(kmax >= 0, kmax // writers.L, -1))


def merge_private(data, written, views, shape, writers: Writers, tensor: str):
    """Merge per-writer private views ``(data, written, dirty)`` with leading ``[R, G]`` axes."""
    vd, _vw, vdirty = views
    nw = int(np.prod(vd.shape[:2]))
    vd = vd.reshape((nw, *shape))
    vdirty = vdirty.reshape((nw, *shape))
    cnt = jnp.sum(vdirty, axis=0, dtype=jnp.int32)
    first = jnp.argmax(vdirty, axis=0)
    last = nw - 1 - jnp.argmax(vdirty[::-1], axis=0)
    chosen = jnp.take_along_axis(vd, first[None], axis=0)[0]
    data = jnp.where(cnt > 0, chosen, data)
    if written is not None:
        written = written | (cnt > 0)
    race = (cnt > 1).reshape(-1)
    firstf, lastf = first.reshape(-1), last.reshape(-1)
    G = writers.G

    def ids(k):
        a, b = firstf[k], lastf[k]  # writer = rank * G + pid (lanes merged already)
        return [a // G, a % G, -1, -1, b % G, -1]

    rec = _element_record(Info("race", tensor, None, len(shape)), race, shape, ids)
    wmin = jnp.where(cnt > 0, first, _BIG).astype(jnp.int32)
    wmax = jnp.where(cnt > 0, last, -1).astype(jnp.int32)
    return data, written, rec, (wmin, wmax)


def merge_lanes(view, lane_views, lane_ids, tensor: str, ndim: int, base_ids):
    """Merge the lanes' private views into the program's (race among lanes flagged)."""
    d, w, dirty = view
    ld, _lw, ldirty = lane_views  # leading lane axis; ldirty: written by that lane in the region
    cnt = jnp.sum(ldirty, axis=0, dtype=jnp.int32)
    first = jnp.argmax(ldirty, axis=0)
    last = ldirty.shape[0] - 1 - jnp.argmax(ldirty[::-1], axis=0)
    chosen = jnp.take_along_axis(ld, first[None], axis=0)[0]
    anyw = cnt > 0
    d = jnp.where(anyw, chosen, d)
    w = w | anyw
    dirty = dirty | anyw
    race = (cnt > 1).reshape(-1)
    shape = cnt.shape

    def ids(k):
        out = list(base_ids)
        out[LANE] = jnp.take(lane_ids, first.reshape(-1)[k])
        out[LANE2] = jnp.take(lane_ids, last.reshape(-1)[k])
        out[PID2] = out[PID]
        return out

    rec = _element_record(Info("race", tensor, None, ndim), race, shape, ids)
    return (d, w, dirty), rec


def first_false_record(info: Info, ok, writers_shape) -> Record:
    """A record over a ``[R, G]`` boolean: the first program where ``ok`` is False."""
    _R, G = writers_shape
    return make_record(info, ~ok.reshape(-1), lambda k: (), lambda k: (k // G, k % G, -1, -1, -1, -1))


assert NIDS == 6 and RANK == 0
