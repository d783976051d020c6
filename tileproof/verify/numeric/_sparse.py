"""Write-write races by sorting the writes, for tensors far larger than what a phase writes.

:func:`~._memory.apply_logs` finds races with two writer maps the size of the
tensor (the smallest and the largest writer of every element, int32 each),
and orders a program's own rewrites with a third.  For a stacked KV cache of
2.68e9 elements into which a decode step writes a few thousand, those maps
are 21 GiB each (issue 13: ``fused_decode`` at its defaults ran out of the
H200's memory).  Here the memory follows the writes instead: the ``W``
logged element writes are sorted by (dropped, coordinates..., order), so

* the writes of one element are adjacent, elements in row-major order (the
  coordinates are compared per dimension, never as a flat index);
* an element is raced exactly when its smallest and largest writer differ
  (segment min and max over its run) — the dense maps' definition;
* the first raced element in sorted order is the row-major first, which is
  the element :func:`~._flags.make_record` names from the dense race mask, with
  the same writer pair; the count is the number of raced elements;
* in ``ordered`` mode (a program writes an element more than once) the last
  write of each run in ``seq`` order wins, as the dense ``smax`` map picks it.

So the race record and the written values are the dense path's, with O(W)
memory.  It does not give per-element writer maps, so a tensor that is also
read in the phase (read-write races need them) keeps the dense path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ._flags import Info, Record, counted_record, detailed, first_true

__all__ = ["SPARSE_MIN_RATIO", "sorted_writes", "use_sparse"]

# the sorted path is taken when the tensor has at least this many elements per logged write
SPARSE_MIN_RATIO = 64


def use_sparse(shape, n_writes: int, need_wmap: bool) -> bool:
    """Whether :func:`sorted_writes` replaces the dense writer maps for this tensor."""
    n = 1
    for d in shape:
        n *= int(d)
    return (
        not need_wmap
        and len(shape) > 0
        and n > 0
        and n_writes > 0
        and n >= SPARSE_MIN_RATIO * n_writes
    )


def sorted_writes(
    data, written, cs, val, mask, key, seq, shape, ordered: bool, writers, tensor: str
):
    """Apply ``W`` element writes to ``data`` (and ``written``); the race record.

    ``cs``: per dimension, the ``[W]`` int32 coordinates (in range where ``mask``);
    ``key``: the writer key of each write; ``seq``: its program-order clock.
    """
    nd = len(shape)
    w_n = mask.shape[0]
    drop = (~mask).astype(jnp.int32)
    pos = jnp.arange(w_n, dtype=jnp.int32)
    tie = seq if ordered else key
    out = lax.sort([drop, *cs, tie, pos], num_keys=nd + 2)
    s_drop, s_cs, s_pos = out[0], out[1 : 1 + nd], out[-1]
    valid = s_drop == 0
    s_key = key[s_pos]
    same = valid[1:] & valid[:-1]
    for c in s_cs:
        same = same & (c[1:] == c[:-1])
    f = jnp.zeros((1,), bool)
    same_prev = jnp.concatenate([f, same])  # entry i writes the element entry i-1 writes
    same_next = jnp.concatenate([same, f])
    start = valid & ~same_prev
    gid = jnp.cumsum(start.astype(jnp.int32)) - 1
    seg = jnp.where(valid, gid, w_n)  # dropped writes go to an extra segment, cut below
    kmin = jax.ops.segment_min(s_key, seg, num_segments=w_n + 1)[:w_n]
    kmax = jax.ops.segment_max(s_key, seg, num_segments=w_n + 1)[:w_n]
    first_pos = jax.ops.segment_min(pos, seg, num_segments=w_n + 1)[:w_n]
    groups = jnp.sum(start, dtype=jnp.int32)
    raced = (pos < groups) & (kmin < kmax)
    count = jnp.sum(raced, dtype=jnp.int32)
    info = Info("race", tensor, None, nd)
    if detailed():
        g = first_true(raced)
        at = jnp.clip(first_pos[g], 0, w_n - 1)
        elem = tuple(c[at] for c in s_cs)
        ids = writers.ids(kmin[g], kmax[g])
        rec = Record(info, count, tuple(jnp.asarray(i, jnp.int32) for i in ids), elem)
    else:
        rec = counted_record(info, count)
    win = valid & ~same_next if ordered else valid
    first = jnp.where(win, s_cs[0], jnp.int32(shape[0]))  # out of range: dropped
    at = (first, *(jnp.where(win, c, 0) for c in s_cs[1:]))
    from ._memory import scatter_set  # _memory imports this module

    data = scatter_set(data, at, val[s_pos])
    if written is not None:
        written = written.at[at].set(True, mode="drop")
    return data, written, rec
