"""Disjoint affine tilings: tile accesses that are a reshape of the tensor, not a gather.

An access ``x[ds(s_0, T_0), ..., p_k, ...]`` at the top level of a phase whose
starts are affine in the launch coordinates (rank, then the grid axes) with
strides that nest exactly::

    s_d = sum_a c_{d,a} * g_a,   sorted by stride:  c_last = T_d,
                                 c_i = c_{i+1} * E_{i+1},  c_first * E_first = extent_d

visits every element of ``x`` once over the launch.  Then the tiles of all
programs, ``[ranks, programs, *tile]``, are a reshape-and-transpose of ``x``
(``tiles``) and the tensor is the inverse of the stored tiles (``untile``):
no gather, no scatter, no race or bounds check needed.  Loads accept a looser
form (an offset, a sub-range, axes that do not move the tile — broadcast).

The starts are evaluated concretely for every program (they must not depend
on data), and the affine form is fitted and then checked at every program.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["Tiling", "fit_tiling"]


@dataclass(frozen=True)
class DimMap:
    offset: int
    axes: tuple[tuple[int, int], ...]  # (launch axis, stride), stride descending
    size: int  # tile extent (1 for a point dim)
    point: bool
    span: int  # extent of the tensor range the tiles of this dim cover


@dataclass(frozen=True)
class Tiling:
    launch: tuple[int, ...]  # launch extents: (ranks, grid axes...)
    shape: tuple[int, ...]  # tensor shape
    dims: tuple[DimMap, ...]

    @property
    def exact(self) -> bool:
        used = [a for d in self.dims for a, _ in d.axes]
        return all(d.offset == 0 and d.span == e for d, e in zip(self.dims, self.shape)) and sorted(
            used
        ) == [a for a, n in enumerate(self.launch) if n > 1]

    @property
    def disjoint(self) -> bool:
        """No two programs share a tile: every launch axis of more than one moves it."""
        used = [a for d in self.dims for a, _ in d.axes]
        return sorted(used) == [a for a, n in enumerate(self.launch) if n > 1]

    @property
    def inside(self) -> bool:
        """Every tile lies inside the tensor (no overhang): no access of it is out of bounds."""
        return all(d.offset >= 0 and d.offset + d.span <= n for d, n in zip(self.dims, self.shape))

    @property
    def box(self) -> tuple[int, ...]:
        """The extent the tiles span per tensor dimension, from their offset."""
        return tuple(d.span for d in self.dims)

    @property
    def tile(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.dims if not d.point)

    def _layout(self):
        """Labels of the reshaped tensor's axes, in order: ('a', axis) or ('t', dim)."""
        labels, sizes = [], []
        for k, d in enumerate(self.dims):
            for a, _ in d.axes:
                labels.append(("a", a))
                sizes.append(self.launch[a])
            labels.append(("t", k))
            sizes.append(d.size)
        return labels, sizes

    def tiles(self, x):
        """``x`` -> ``[ranks, programs, *tile]`` (axes that do not move the tile broadcast)."""
        over = [max(0, d.offset + d.span - n) for d, n in zip(self.dims, self.shape)]
        if any(over):  # tiles overhanging the tensor (masked accesses): zeros past its end
            x = jnp.pad(x, [(0, k) for k in over])
        idx = tuple(slice(d.offset, d.offset + d.span) for d in self.dims)
        x = x[idx]
        labels, sizes = self._layout()
        x = x.reshape(sizes)
        want = [("a", a) for a in range(len(self.launch)) if ("a", a) in labels]
        want += [("t", k) for k, d in enumerate(self.dims)]
        x = jnp.transpose(x, [labels.index(w) for w in want])
        # insert the launch axes that do not move the tile
        full = []
        pos = 0
        for a, n in enumerate(self.launch):
            if ("a", a) in labels:
                full.append(n)
                pos += 1
            else:
                x = jnp.expand_dims(x, pos)
                x = jnp.broadcast_to(x, (*x.shape[:pos], n, *x.shape[pos + 1 :]))
                full.append(n)
                pos += 1
        ranks, progs = self.launch[0], int(np.prod(self.launch[1:], dtype=np.int64))
        return x.reshape((ranks, progs, *self.tile))

    def place(self, t, fill):
        """``[ranks, programs, *tile]`` of a disjoint tiling -> a tensor-shaped array: each
        tile at its place, ``fill`` where no tile lies, what overhangs the tensor cut off."""
        box = self.untile(t, box=True)
        cfg = [(d.offset, n - d.offset - d.span, 0) for d, n in zip(self.dims, self.shape)]
        return lax.pad(box, jnp.asarray(fill, box.dtype), cfg)

    def untile(self, t, box: bool = False):
        """``[ranks, programs, *tile]`` -> the tensor (exact tilings only), or with ``box`` the
        array of extent :attr:`box` the tiles span (disjoint tilings)."""
        labels, _sizes = self._layout()
        # the launch axes in order; size-1 axes that no dim uses are dropped
        launch_labels = [("a", a) for a in range(len(self.launch)) if ("a", a) in labels]
        t = t.reshape([self.launch[a] for _, a in launch_labels] + [d.size for d in self.dims])
        have = launch_labels + [("t", k) for k in range(len(self.dims))]
        t = jnp.transpose(t, [have.index(lb) for lb in labels])
        return t.reshape(self.box if box else self.shape)


def fit_tiling(
    starts: np.ndarray, launch: tuple[int, ...], dims, shape, exact: bool, overhang: bool = False
) -> Tiling | None:
    """The tiling of an access whose start operands are ``starts[ranks, programs, ndim]``.

    ``dims`` is the access's ``(("ds", size) | ("point", 1), ...)``.  ``exact``
    demands the stores' form (the tiles partition the tensor).  ``overhang`` lets the
    tiles run past the tensor's end (a masked access: its lanes there are masked off
    or flagged out of bounds).
    """
    starts = np.asarray(starts, dtype=np.int64).reshape(-1, len(dims))
    npts = starts.shape[0]
    if npts == 0 or npts != int(np.prod(launch, dtype=np.int64)):
        return None
    coords = (
        np.stack(np.unravel_index(np.arange(npts), launch), axis=1)
        if launch
        else np.zeros((1, 0), int)
    )
    out = []
    used: set[int] = set()
    for k, ((kind, size), ext) in enumerate(zip(dims, shape)):
        s = starts[:, k]
        c0 = int(s[0])
        coef = np.zeros(len(launch), dtype=np.int64)
        for a, n in enumerate(launch):
            if n > 1:
                unit = np.zeros(len(launch), dtype=np.int64)
                unit[a] = 1
                j = int(np.ravel_multi_index(tuple(unit), launch))
                coef[a] = s[j] - c0
        if not np.array_equal(s, c0 + coords @ coef):
            return None
        if (coef < 0).any():
            return None
        axes = sorted(((a, int(c)) for a, c in enumerate(coef) if c > 0), key=lambda t: -t[1])
        if any(a in used for a, _ in axes):
            return None
        used.update(a for a, _ in axes)
        t = 1 if kind == "point" else size
        if axes:
            if axes[-1][1] != t:
                return None
            for (_a1, c1), (a2, c2) in itertools.pairwise(axes):
                if c1 != c2 * launch[a2]:
                    return None
            span = axes[0][1] * launch[axes[0][0]]
        else:
            span = t
        if c0 < 0 or c0 > ext or (c0 + span > ext and not overhang):
            return None
        out.append(DimMap(c0, tuple(axes), t, kind == "point", span))
    tiling = Tiling(tuple(launch), tuple(shape), tuple(out))
    if exact and not tiling.exact:
        return None
    return tiling
