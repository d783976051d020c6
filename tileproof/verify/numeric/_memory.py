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

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._flags import LANE, LANE2, NIDS, PID, PID2, RANK, Info, Record, make_record
from ._sparse import sorted_writes, use_sparse

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


def _is_half(dtype) -> bool:
    return jnp.dtype(dtype).itemsize == 2 and jnp.issubdtype(dtype, jnp.floating)


def _as_bits(x):
    return lax.bitcast_convert_type(x, jnp.uint16)


def _set_plain(data, values, *at):
    return data.at[at].set(values, mode="drop")


@jax.custom_jvp
def _set_bits(data, values, *at):
    bits = _as_bits(data).at[at].set(_as_bits(values), mode="drop")
    return lax.bitcast_convert_type(bits, data.dtype)


@_set_bits.defjvp
def _set_bits_jvp(primals, tangents):
    data, values, *at = primals
    dd, dv = tangents[:2]
    _, t = jax.jvp(lambda d, v: _set_plain(d, v, *at), (data, values), (dd, dv))
    return _set_bits(data, values, *at), t


def scatter_set(data, at, values):
    """``data.at[at].set(values, mode="drop")`` that moves bits: a 16-bit float tensor is
    scattered as ``uint16``.  A set computes nothing, but XLA's CPU backend widens a
    ``bfloat16`` scatter to ``float32`` (a converted copy of the whole tensor on each side:
    30 GiB for one 5 GiB KV cache of ``fused_decode``, issue 13), and a gather too
    (:func:`gather_window`); the bits are the same.  Derivatives are those of the plain
    scatter (a custom JVP: integer bits would have none)."""
    values = jnp.asarray(values).astype(data.dtype)
    if _is_half(data.dtype):
        return _set_bits(data, values, *at)
    return _set_plain(data, values, *at)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _gather_bits(x, idx, dnums, sizes):
    out = lax.gather(_as_bits(x), idx, dnums, sizes, mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    return lax.bitcast_convert_type(out, x.dtype)


@_gather_bits.defjvp
def _gather_bits_jvp(dnums, sizes, primals, tangents):
    x, idx = primals
    dx = tangents[0]
    t = lax.gather(dx, idx, dnums, sizes, mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    return _gather_bits(x, idx, dnums, sizes), t


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


def end_pads(shape, pads) -> tuple[int, ...]:
    """Per dimension, how far a snapshot is padded at its end so that every window can be
    cut from it: only a dimension shorter than its largest window (a tile wider than the
    tensor, a point index into an empty dimension) is padded, to that window's extent."""
    return tuple(max(0, p - n) for n, p in zip(shape, pads))


def pad_end(x, ends):
    if not any(ends):
        return x
    return jnp.pad(x, [(0, e) for e in ends])


def _static_int(s):
    """The value of a start known while tracing (a literal, a constant), else None."""
    if isinstance(s, jax.core.Tracer):
        return None
    try:
        return int(np.asarray(s))
    except (TypeError, ValueError):  # pragma: no cover - not an integer scalar
        return None


def gather_window(x, starts, dims):
    """The tile at ``starts`` of an *unpadded* array, in tile shape (point dims dropped).

    No copy of the tensor is made (a padded copy of a 2.68e9-element KV cache per phase
    was most of ``fused_decode``'s memory at its defaults, issue 13): one gather reads the
    tile.  A dimension whose start is known in range while tracing (``x[:, ...]``) is a
    contiguous slice; every other ``ds`` dimension indexes its elements one by one at
    ``start + i`` clamped into the array, so the in-range elements of a tile that overruns
    the tensor sit at their place, as :func:`window` of a padded copy has them; the
    out-of-range ones read some element of the array, and the caller masks them (they are
    flagged or masked off).  ``x`` must be at least as large as every window in every
    dimension (:func:`end_pads`).
    """
    if not dims:
        return x
    ext = x.shape
    index_dims, window_dims, collapsed = [], [], []
    slice_sizes, fixed = [], {}
    for k, ((kind, size), n) in enumerate(zip(dims, ext)):
        w = size if kind == "ds" else 1
        s = _static_int(starts[k])
        if kind == "ds" and (s is None or s < 0 or s + w > n):
            index_dims.append(k)
            collapsed.append(k)
            slice_sizes.append(1)
            continue
        if kind == "ds":
            fixed[k] = jnp.int32(s)
            window_dims.append(k)
        else:
            fixed[k] = (
                jnp.int32(s)
                if s is not None and 0 <= s < n
                else jnp.clip(jnp.asarray(starts[k], jnp.int32), 0, n - 1)
            )
            collapsed.append(k)
        slice_sizes.append(w)
    tshape = tile_shape(dims)
    batch = tuple(dims[k][1] for k in index_dims)
    cols = []
    j = 0
    for k in range(len(dims)):
        if k in fixed:
            cols.append(jnp.broadcast_to(fixed[k], batch))
        else:
            shp = [1] * len(batch)
            shp[j] = batch[j]
            c = jnp.asarray(starts[k], jnp.int32) + jnp.arange(batch[j], dtype=jnp.int32)
            cols.append(jnp.broadcast_to(jnp.clip(c, 0, ext[k] - 1).reshape(shp), batch))
            j += 1
    idx = jnp.stack(cols, axis=-1)
    # output axes in tile order: the tile dims of the windows at their places, the indexed
    # dims (batch axes of the gather, in order) at theirs
    ds_dims = [k for k, (kind, _n) in enumerate(dims) if kind == "ds"]
    offset_dims = tuple(ds_dims.index(k) for k in window_dims)
    dnums = lax.GatherDimensionNumbers(
        offset_dims=offset_dims,
        collapsed_slice_dims=tuple(collapsed),
        start_index_map=tuple(range(len(dims))),
    )
    if _is_half(x.dtype):  # gathered as bits: see scatter_set
        out = _gather_bits(x, idx, dnums, tuple(slice_sizes))
    else:
        out = lax.gather(
            x, idx, dnums, tuple(slice_sizes), mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS
        )
    return out.reshape(tshape)


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


def element_coords(starts, dims, shape, lead):
    """Per tensor dimension, the element coordinates of tiles at ``starts`` (``lead + (ndim,)``),
    each an int32 array of shape ``lead + tile``.

    Coordinates stay per dimension (each below its extent, so below 2**31 for any
    tensor the executor accepts): a flat element index of a tensor of 2**31 elements
    or more would not fit the 32 bits JAX computes in without x64.
    """
    tshape = tile_shape(dims)
    nt = len(tshape)
    full = lead + tshape
    out = []
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
        out.append(jnp.broadcast_to(c, full))
    return out


def _dropped(cs, mask, shape) -> tuple:
    """Scatter indices: masked-off elements get an out-of-range first coordinate
    (the dimension's extent), which ``mode="drop"`` discards; the others are in range."""
    if not cs:
        return ()
    first = jnp.where(mask, cs[0], jnp.int32(shape[0]))
    return (first, *(jnp.where(mask, c, 0) for c in cs[1:]))


def _clipped(cs, shape) -> tuple:
    """Gather indices clipped into range (the caller masks what was out of range)."""
    return tuple(jnp.clip(c, 0, max(n - 1, 0)) for c, n in zip(cs, shape))


def read_write_races(entries: list[ReadEntry], wmap, shape, G: int, L: int) -> list[Record]:
    """Reads of elements that another program writes in the same phase (one record per site).

    ``wmap``: per element, the smallest and largest writing program (``rank*G + pid``;
    none: ``(BIG, -1)``).  The read sees the value before the phase on this executor, but on
    hardware it races with the write.
    """
    wmin, wmax = wmap
    out = []
    for e in entries:
        t, dims, site = e.meta
        nt = len(tile_shape(dims))
        lead = e.mask.shape[: e.mask.ndim - nt]
        cs = element_coords(e.starts, dims, shape, lead)
        full = lead + tile_shape(dims)
        reader = jnp.broadcast_to((e.reader // L).reshape(lead + (1,) * nt), full)
        mask = jnp.broadcast_to(e.mask, full)
        idx = _clipped(cs, shape)
        lo, hi = wmin[idx], wmax[idx]
        other = jnp.where(lo != reader, lo, hi)
        bad = mask & (hi >= 0) & ((lo != reader) | (hi != reader))

        def ids(ix, reader=reader, other=other):
            r, o = reader[ix], other[ix]
            return [r // G, r % G, -1, -1, o % G, -1]

        out.append(
            make_record(
                Info("rw_race", t, site, len(shape)),
                bad,
                lambda ix, idx=idx: [c[ix] for c in idx],
                ids,
            )
        )
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


def _element_record(info: Info, bad, ids_fn) -> Record:
    """A record over a tensor-shaped boolean: the element is the multi-index itself."""
    return make_record(info, bad, lambda ix: ix, ids_fn)


def apply_logs(
    data,
    written,
    entries: list[LogEntry],
    shape,
    ordered: bool,
    writers: Writers,
    tensor: str,
    need_wmap: bool = True,
):
    """Apply one phase's logged writes to a tensor; returns data, written, race record, and
    per element the first and last writing program (for read-write races; None when
    ``need_wmap`` is False and the writes were sorted instead, see :mod:`._sparse`).

    Scatters use per-dimension coordinates (masked-off writes dropped), so a tensor of
    any size — a stacked KV cache of 2.68e9 elements — is addressed exactly."""
    nd = len(shape)
    cols: list[list] = [[] for _ in range(nd)]
    vals, masks, keys, seqs = [], [], [], []
    for e in entries:
        _t, dims = e.meta
        tshape = tile_shape(dims)
        nt = len(tshape)
        lead = e.mask.shape[: e.mask.ndim - nt]
        full = lead + tshape
        for k, c in enumerate(element_coords(e.starts, dims, shape, lead)):
            cols[k].append(c.reshape(-1))
        vals.append(jnp.broadcast_to(e.value, full).reshape(-1))
        masks.append(jnp.broadcast_to(e.mask, full).reshape(-1))
        keys.append(jnp.broadcast_to(e.writer.reshape(lead + (1,) * nt), full).reshape(-1))
        seqs.append(jnp.broadcast_to(e.seq.reshape(lead + (1,) * nt), full).reshape(-1))
    val = jnp.concatenate(vals).astype(data.dtype)
    mask = jnp.concatenate(masks)
    key = jnp.concatenate(keys)
    cs = [jnp.concatenate(c) for c in cols]
    scalar = nd == 0
    if scalar:  # a 0-d tensor: one element, addressed as [0] of a [1]
        shape, cs = (1,), [jnp.zeros(mask.shape, jnp.int32)]
        data = data.reshape(shape)
        written = None if written is None else written.reshape(shape)
    if 0 in shape:  # an empty tensor: every write was out of bounds (flagged at the store)
        kmin, kmax = jnp.full(shape, _BIG, jnp.int32), jnp.full(shape, -1, jnp.int32)
        rec = _element_record(
            Info("race", tensor, None, nd),
            jnp.zeros(shape, bool),
            lambda ix: writers.ids(kmin[ix], kmax[ix]),
        )
        return data, written, rec, (kmin, kmax)
    if not scalar and use_sparse(shape, int(mask.shape[0]), need_wmap):
        seq = jnp.concatenate(seqs)
        data, written, rec = sorted_writes(
            data, written, cs, val, mask, key, seq, shape, ordered, writers, tensor
        )
        return data, written, rec, None
    orig = shape
    if len(shape) >= 2 and int(np.prod(shape, dtype=np.int64)) <= _BIG:
        # below 2**31 elements one flat int32 index per element is exact: a 1-column scatter
        # instead of an [elements, ndim] index matrix (whose assembly cost more than the
        # scatters themselves)
        lin = jnp.zeros(mask.shape, jnp.int32)
        for c, st in zip(cs, np.cumprod((1, *shape[:0:-1]))[::-1]):
            lin = lin + jnp.where(mask, c, 0) * jnp.int32(st)
        shape = (int(np.prod(shape, dtype=np.int64)),)
        cs = [lin]
        data = data.reshape(shape)
        written = None if written is None else written.reshape(shape)
    at = _dropped(cs, mask, shape)
    kmin = jnp.full(shape, _BIG, jnp.int32).at[at].min(key, mode="drop")
    kmax = jnp.full(shape, -1, jnp.int32).at[at].max(key, mode="drop")
    race = (kmax >= 0) & (kmin < kmax)
    if ordered:
        seq = jnp.concatenate(seqs)
        smax = jnp.full(shape, -1, jnp.int32).at[at].max(seq, mode="drop")
        win = mask & (seq == smax[_clipped(cs, shape)])
        at = _dropped(cs, win, shape)
    data = scatter_set(data, at, val)
    if written is not None:
        written = written.at[at].set(True, mode="drop")
    if shape != orig:
        data, race, kmin, kmax = (x.reshape(orig) for x in (data, race, kmin, kmax))
        written = None if written is None else written.reshape(orig)
    if scalar:
        data, race, kmin, kmax = (
            data.reshape(()),
            race.reshape(()),
            kmin.reshape(()),
            kmax.reshape(()),
        )
        written = None if written is None else written.reshape(())
    rec = _element_record(
        Info("race", tensor, None, nd), race, lambda ix: writers.ids(kmin[ix], kmax[ix])
    )
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
    race = cnt > 1
    G = writers.G

    def ids(ix):
        a, b = first[ix], last[ix]  # writer = rank * G + pid (lanes merged already)
        return [a // G, a % G, -1, -1, b % G, -1]

    rec = _element_record(Info("race", tensor, None, len(shape)), race, ids)
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
    race = cnt > 1

    def ids(ix):
        out = list(base_ids)
        out[LANE] = jnp.take(lane_ids, first[ix])
        out[LANE2] = jnp.take(lane_ids, last[ix])
        out[PID2] = out[PID]
        return out

    rec = _element_record(Info("race", tensor, None, ndim), race, ids)
    return (d, w, dirty), rec


def first_false_record(info: Info, ok, writers_shape) -> Record:
    """A record over a ``[R, G]`` boolean: the first program where ``ok`` is False."""
    _R, G = writers_shape
    del G
    return make_record(
        info, ~ok.reshape(writers_shape), lambda ix: (), lambda ix: (*ix, -1, -1, -1, -1)
    )


assert NIDS == 6 and RANK == 0
