"""What a kernel body calls: Pallas-style ids, loads, stores, lanes, barriers, ring steps.

Each function binds a primitive from :mod:`._primitives` with the caller's
source location, so the schedule model and every diagnostic point at the
user's line.  Index arithmetic stays ordinary ``jnp`` integer math on traced
scalars; the lowering reads it back as shape expressions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jax.numpy as jnp
from jax import lax

from . import _primitives as P
from ._errors import SpecError, caller_location

try:  # equations traced inside when() (its lax.cond) carry the user's line, not this file's
    from jax._src import source_info_util as _siu

    _siu.register_exclusion(__file__)
except (ImportError, AttributeError):  # pragma: no cover - best effort, locations only
    pass

__all__ = [
    "Ref",
    "barrier",
    "ds",
    "exit_if",
    "fold",
    "lane_id",
    "lane_part",
    "lanes",
    "load",
    "num_lanes",
    "num_programs",
    "num_ranks",
    "program_id",
    "rank_id",
    "sendrecv",
    "size",
    "store",
    "when",
]


@dataclass(frozen=True)
class ds:
    """A dynamic slice ``[start, start + size)`` of one dimension; ``size`` is a concrete int."""

    start: object
    size: int


class Ref:
    """A handle to a kernel tensor inside the body; index it with :func:`load`/:func:`store`."""

    def __init__(self, name: str, decl):
        self.name = name
        self.decl = decl

    @property
    def ndim(self) -> int:
        return len(self.decl.shape)

    def __getitem__(self, idx):
        return load(self, idx)

    def __setitem__(self, idx, value):
        store(self, idx, value)

    def __repr__(self) -> str:
        return f"Ref({self.name})"


def _int_scalar(x, what: str, site):
    if isinstance(x, int) and not isinstance(x, bool):
        return jnp.int32(x)
    if (
        hasattr(x, "dtype")
        and getattr(x, "shape", None) == ()
        and jnp.issubdtype(x.dtype, jnp.integer)
    ):
        return x
    raise SpecError(
        f"{what} must be an integer scalar (a program id, a size or arithmetic on them), "
        f"got {type(x).__name__} {getattr(x, 'shape', '')}",
        site,
    )


def _index(ref: Ref, idx, site):
    """Normalise an index tuple into (dims, operands, tile_shape)."""
    if not isinstance(ref, Ref):
        raise SpecError(f"load/store take a kernel tensor (Ref), got {type(ref).__name__}", site)
    if not isinstance(idx, tuple):
        idx = (idx,)
    if len(idx) != ref.ndim:
        raise SpecError(
            f"{ref.name} has {ref.ndim} dimensions but the index has {len(idx)}",
            site,
            "Give one index (a scalar, ds(start, size) or ':') per dimension.",
        )
    dims, operands, tile = [], [], []
    for k, d in enumerate(idx):
        if isinstance(d, ds):
            if not isinstance(d.size, int) or d.size <= 0:
                raise SpecError(
                    f"ds size must be a positive Python int (tile sizes are concrete), got {d.size!r}",
                    site,
                )
            dims.append(("ds", d.size))
            operands.append(_int_scalar(d.start, f"the start of dimension {k} of {ref.name}", site))
            tile.append(d.size)
        elif isinstance(d, slice):
            if d != slice(None):
                raise SpecError("only ':' slices are allowed; use ds(start, size)", site)
            extent = ref.decl.shape[k]
            if not extent.is_const:
                raise SpecError(
                    f"':' on dimension {k} of {ref.name} needs a concrete extent, but it is {extent}",
                    site,
                    "Tile symbolic dimensions with ds(start, size).",
                )
            dims.append(("ds", extent.const_value))
            operands.append(jnp.int32(0))
            tile.append(extent.const_value)
        else:
            dims.append(("point", 1))
            operands.append(_int_scalar(d, f"index {k} of {ref.name}", site))
    return tuple(dims), operands, tuple(tile)


def _dtype(decl):
    return jnp.bfloat16 if decl.dtype == "bfloat16" else jnp.dtype(decl.dtype)


def load(ref: Ref, idx, *, mask=None):
    """Read a tile; elements where ``mask`` is False are not accessed (they read 0)."""
    site = caller_location()
    dims, operands, tile = _index(ref, idx, site)
    if mask is not None:
        mask = jnp.broadcast_to(jnp.asarray(mask, bool), tile)
        operands.append(mask)
    return P.load_p.bind(
        *operands,
        tensor=ref.name,
        dims=dims,
        tile_shape=tile,
        dtype=_dtype(ref.decl),
        has_mask=mask is not None,
        site=site,
    )


def store(ref: Ref, idx, value, *, mask=None) -> None:
    """Write a tile; elements where ``mask`` is False are not written."""
    site = caller_location()
    dims, operands, tile = _index(ref, idx, site)
    value = jnp.asarray(value)
    if value.shape != tile:
        try:
            value = jnp.broadcast_to(value, tile)
        except ValueError:
            raise SpecError(
                f"storing a value of shape {value.shape} into a tile of shape {tile}", site
            ) from None
    value = value.astype(_dtype(ref.decl))
    if mask is not None:
        operands.append(jnp.broadcast_to(jnp.asarray(mask, bool), tile))
    P.store_p.bind(
        value, *operands, tensor=ref.name, dims=dims, has_mask=mask is not None, site=site
    )


def size(name: str):
    """The value of a size symbol inside the body (a traced int32)."""
    return P.size_p.bind(name=name)


def program_id(axis: int = 0):
    return P.program_id_p.bind(axis=axis)


def num_programs(axis: int = 0):
    return P.num_programs_p.bind(axis=axis)


def lane_id():
    return P.lane_id_p.bind()


def num_lanes():
    return P.num_lanes_p.bind()


def rank_id():
    return P.rank_id_p.bind()


def num_ranks():
    return P.num_ranks_p.bind()


def barrier(scope: str = "grid") -> None:
    """Wait for every participant: ``"grid"`` (all programs of the launch) or ``"lanes"``.

    ``"launch"`` marks the boundary between two launches that the spec models as one
    grid (a decode kernel, then the kernel reducing its splits; the stages of a pipeline
    of ``spmd`` dispatches): everything written before it is visible after it, as for a
    grid barrier, but no program waits at it, so neither residency nor uniformity
    applies.  It goes at the top level of the body (not in a loop, branch, lanes region
    or after ``exit_if``): a launch ends for every program at once.
    """
    site = caller_location()
    if scope not in ("grid", "lanes", "launch"):
        raise SpecError(f"barrier scope must be 'grid', 'lanes' or 'launch', not {scope!r}", site)
    P.barrier_p.bind(scope=scope, site=site)


def exit_if(cond) -> None:
    """Return early from the kernel where ``cond`` holds (a program that leaves skips later barriers)."""
    site = caller_location()
    P.exit_p.bind(jnp.asarray(cond, bool), site=site)


def when(cond) -> Callable[[Callable[[], None]], None]:
    """Pallas' ``pl.when``: run the decorated function only where ``cond`` holds."""

    def deco(fn: Callable[[], None]) -> None:
        def yes():
            fn()
            return None

        lax.cond(jnp.asarray(cond, bool), yes, lambda: None)

    return deco


@contextlib.contextmanager
def lanes(n: int, *, halve: int | None = None) -> Iterator[object]:
    """Run the block on ``n`` sub-lanes of each program; yields the lane id.

    With ``halve=axis`` the lanes are data-parallel: :func:`lane_part` gives a
    lane its ``1/n`` share of a tile along ``axis``.  Without it the lanes are
    task-parallel: every lane runs the block on work it selects by lane id.
    """
    site = caller_location()
    if not isinstance(n, int) or n < 1:
        raise SpecError(f"lanes(n) needs a positive int, got {n!r}", site)
    mode = "task" if halve is None else "halve"
    P.lanes_begin_p.bind(n=n, mode=mode, axis=halve, site=site)
    _lane_stack.append(n)
    try:
        yield lane_id()
    finally:
        _lane_stack.pop()
        P.lanes_end_p.bind(site=site)


def lane_part(tile, axis: int = 0):
    """This lane's share of ``tile`` along ``axis`` inside ``lanes(n, halve=axis)``."""
    site = caller_location()
    tile = jnp.asarray(tile)
    if not _lane_stack:
        raise SpecError("lane_part() is only meaningful inside `with lanes(n, halve=axis):`", site)
    n = _lane_stack[-1]
    return P.lane_part_p.bind(tile, lane_id(), n=n, axis=axis, site=site)


_lane_stack: list[int] = []  # trace-time nesting of lanes() regions


def sendrecv(value, *, to, frm, send=True, recv=True):
    """One ring step: send ``value`` to rank ``to`` (where ``send``), receive from ``frm`` (where ``recv``).

    Returns the received value; it is poisoned where nothing was received.
    """
    site = caller_location()
    ops = [jnp.asarray(value)]
    ops += [
        _int_scalar(to, "the destination rank", site),
        _int_scalar(frm, "the source rank", site),
    ]
    ops += [jnp.asarray(send, bool), jnp.asarray(recv, bool)]
    return P.sendrecv_p.bind(*ops, site=site)


def fold(value, *, when=True):
    """Mark that this rank folds ``value`` (a chunk) into its result where ``when`` holds."""
    site = caller_location()
    return P.fold_p.bind(jnp.asarray(value), jnp.asarray(when, bool), site=site)
