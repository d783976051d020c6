"""Ref views and the tile accesses they become (part of :mod:`tileproof.pallas._body`).

A :class:`_View` is a block ref seen as a window of the whole array (Triton adds the
indexer's offsets to the block's start, ``jax/_src/pallas/triton/lowering.py``
``_compute_offsets_from_indices``); indexing narrows it, and a load or store of it binds
``tp_load``/``tp_store`` with the kernel's source location.  Size-only scalars stay exact
size expressions (:class:`_Sym`).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..spec import _primitives as P
from ..spec._errors import Location
from ._read import BlockRead


@dataclass(frozen=True)
class _View:
    """A view of a whole array: per array dimension ``("point", i)`` or ``("range", start, n)``."""

    tensor: object  # the tileproof Ref
    block: BlockRead
    dims: tuple

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(d[2] for d in self.dims if d[0] == "range")


@dataclass(frozen=True)
class _Gather:
    """A gather through a table read in the kernel (``k_pages_ref[block_tables]``): one
    tile per table element, each at the element's value (a data symbol of its own)."""

    views: tuple  # of _View, each with the gathered dimension as a range of 1
    pos: int  # the gathered axis in the loaded tile

    @property
    def shape(self) -> tuple[int, ...]:
        s = list(self.views[0].shape)
        s[self.pos] = len(self.views)
        return tuple(s)

    @property
    def block(self):
        return self.views[0].block


class _Unmodelled(Exception):
    def __init__(self, what: str, loc: Location):
        super().__init__(what)
        self.what, self.loc = what, loc


_SEEN: list[set] = []  # per replayed call: (what, location) of the items already bound


def _unsupported(what: str, loc: Location) -> None:
    """One unsupported item per construct and line (an unrolled Python loop repeats it)."""
    if _SEEN:
        if (what, loc) in _SEEN[-1]:
            return
        _SEEN[-1].add((what, loc))
    P.unsupported_p.bind(what=what, site=loc)


@dataclass(frozen=True)
class _Sym:
    """A scalar computed from sizes only (``x_ref.shape[0]``, ``pl.cdiv(n, 16)``).

    Triton sees these as compile-time constants (Python ints at lowering time), so they
    are kept as exact size expressions instead of being replayed as int32 arithmetic
    (which would report host arithmetic as a device overflow); they become one
    ``tp_size`` value when a traced value is needed."""

    expr: object  # shapes.Expr


def _materialize(x):
    if isinstance(x, _Sym):
        if x.expr.is_const:
            return jnp.int32(x.expr.const_value)
        return P.size_p.bind(name="", expr=x.expr)
    return x


_SYM_OPS = ("add", "sub", "mul", "neg", "max", "min", "convert_element_type", "copy", "copy_p")


def _sym_int(x):
    """A size expression for a _Sym or an integer literal, else None."""
    from .. import shapes

    if isinstance(x, _Sym):
        return x.expr
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return shapes.as_expr(int(x))
    if isinstance(x, np.ndarray) and x.shape == () and np.issubdtype(x.dtype, np.integer):
        return shapes.as_expr(int(x))
    return None


def _sym_eval(name: str, params, vals):
    """Exact size arithmetic for an equation whose operands are all sizes or literals."""
    from .. import shapes

    xs = [_sym_int(v) for v in vals]
    if any(x is None for x in xs):
        return None
    if name == "add":
        return xs[0] + xs[1]
    if name == "sub":
        return xs[0] - xs[1]
    if name == "mul":
        return xs[0] * xs[1]
    if name == "neg":
        return -xs[0]
    if name == "max":
        return shapes.maximum(xs[0], xs[1])
    if name == "min":
        return shapes.minimum(xs[0], xs[1])
    if name in ("convert_element_type", "copy", "copy_p"):
        if name == "convert_element_type":
            dt = np.dtype(params["new_dtype"])
            # a narrowing or unsigned cast wraps (``n - 128`` as uint32 is 2**32 - 127 for
            # n = 1): the value is materialised and the lowering models the cast exactly
            if not np.issubdtype(dt, np.signedinteger) or dt.itemsize < 4:
                return None
        return xs[0]
    if name == "floor_divide":
        return shapes.floordiv(xs[0], xs[1])
    if name == "remainder":
        return shapes.mod(xs[0], xs[1])
    return None


def _i32(x):
    x = _materialize(x)
    if isinstance(x, (int, np.integer)):
        return jnp.int32(int(x))
    x = jnp.asarray(x)
    return x.astype(jnp.int32) if x.dtype != jnp.int32 else x


def _index_view(view: _View, indexer, loc: Location, affine: dict | None = None) -> _View:
    """Apply one NDIndexer to the visible dimensions of a view.

    Array (gather) indexers are modelled when they are contiguous runs
    ``base + arange(n)`` laid along distinct axes of their broadcast shape in the
    order of the dimensions they index (``x_ref.at[rows[:, None], cols[None]]``): the
    gather then *is* a rectangular tile.  A single one-element index array (a page id
    read from a table) is the element it holds.  Anything else is unsupported.
    """
    visible = [k for k, d in enumerate(view.dims) if d[0] == "range"]
    idx = list(indexer.indices)
    if len(idx) != len(visible):
        raise _Unmodelled(
            f"an indexer with {len(idx)} indices on a ref of rank {len(visible)}", loc
        )
    arrays = [
        (k, ix)
        for k, ix in zip(visible, idx)
        if type(ix).__name__ != "Slice" and getattr(ix, "shape", ()) != ()
    ]
    runs = _array_runs(arrays, affine, loc)
    dims = list(view.dims)
    for k, ix in zip(visible, idx):
        start = dims[k][1]
        if type(ix).__name__ == "Slice":
            size = ix.size
            if not isinstance(size, (int, np.integer)):
                raise _Unmodelled("a ref slice of symbolic size", loc)
            if ix.stride != 1 and size > 1:
                raise _Unmodelled(
                    f"a strided ref slice (stride {ix.stride}): an access the model does not hold",
                    loc,
                )
            if arrays and k < arrays[0][0]:
                raise _Unmodelled(
                    "an array indexer after a sliced dimension (NumPy moves its "
                    "axis first): an access the model does not hold",
                    loc,
                )
            dims[k] = ("range", _i32(start) + _i32(ix.start), int(size))
        elif k in runs:
            base, n = runs[k]
            dims[k] = ("range", _i32(start) + _i32(base), n)
        else:
            dims[k] = ("point", _i32(start) + _i32(ix))
    return _View(view.tensor, view.block, tuple(dims))


def _array_runs(arrays, affine, loc) -> dict:
    """dimension -> (base, length) for the array indexers of one NDIndexer, or unsupported."""
    if not arrays:
        return {}
    if len(arrays) == 1 and int(np.prod(arrays[0][1].shape)) == 1:  # one data-dependent index
        k, ix = arrays[0]
        return {k: (jnp.reshape(ix, ()), 1)}
    shape = np.broadcast_shapes(*[tuple(ix.shape) for _, ix in arrays])
    runs, axes = {}, []
    for k, ix in arrays:
        aff = affine.get(id(ix)) if affine is not None else None
        if aff is None or not _is_one(aff[1]):
            raise _Unmodelled(
                "an array (gather) indexer on a ref that is not `start + "
                "jnp.arange(n)` along one axis: an access the model does not hold",
                loc,
            )
        axis = aff[2] + len(shape) - len(ix.shape)
        axes.append(axis)
        runs[k] = (aff[0], int(shape[axis]))
    covered = sorted(axes)
    if (
        axes != covered
        or len(set(axes)) != len(axes)
        or any(n != 1 for a, n in enumerate(shape) if a not in axes)
    ):
        raise _Unmodelled(
            "array indexers whose axes do not follow the dimensions they index: "
            "an access the model does not hold",
            loc,
        )
    return runs


def _is_one(x) -> bool:
    return isinstance(x, (int, np.integer)) and int(x) == 1


def _apply_transforms(view: _View, transforms, loc: Location, affine=None) -> _View:
    for t in transforms or ():
        if type(t).__name__ != "NDIndexer":
            raise _Unmodelled(f"the ref transform {type(t).__name__}", loc)
        view = _index_view(view, t, loc, affine)
    return view


def _dims_operands(view: _View, loc: Location):
    dims, ops = [], []
    for d in view.dims:
        if d[0] == "range" and d[2] is None:
            raise _Unmodelled(
                f"a whole-dimension access to {view.tensor.name}, whose extent is symbolic", loc
            )
        if d[0] == "point":
            dims.append(("point", 1))
            ops.append(_i32(d[1]))
        else:
            dims.append(("ds", d[2]))
            ops.append(_i32(d[1]))
    return tuple(dims), ops


def _jdtype(name: str):
    return jnp.bfloat16 if name == "bfloat16" else jnp.dtype(name)


def _load(view, mask, other, loc: Location):
    if isinstance(view, _Gather):
        if mask is not None:
            raise _Unmodelled(
                "a masked gather through a table: an access the model does not hold", loc
            )
        return jnp.concatenate([_load(v, None, None, loc) for v in view.views], axis=view.pos)
    return _load_view(view, mask, other, loc)


def _load_view(view: _View, mask, other, loc: Location):
    dims, ops = _dims_operands(view, loc)
    tile = view.shape
    if mask is not None:
        mask = _materialize(mask)
        ops.append(jnp.broadcast_to(jnp.asarray(mask, bool), tile))
    out = P.load_p.bind(
        *ops,
        tensor=view.tensor.name,
        dims=dims,
        tile_shape=tile,
        dtype=_jdtype(view.block.dtype),
        has_mask=mask is not None,
        site=loc,
    )
    if mask is not None:
        # Triton: masked-off lanes hold `other`, or undefined values without one: poisoned
        # (NaN / the integer minimum) so that a kernel relying on them shows numerically
        fill = other if other is not None else _undefined(out.dtype)
        out = jnp.where(mask, out, jnp.asarray(_materialize(fill), out.dtype))
    return out


def _undefined(dtype):
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.nan
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.iinfo(dtype).min
    return False


def _store(view, value, mask, loc: Location) -> None:
    if isinstance(view, _Gather):
        raise _Unmodelled("a scatter through a table: an access the model does not hold", loc)
    dims, ops = _dims_operands(view, loc)
    tile = view.shape
    value = jnp.broadcast_to(jnp.asarray(_materialize(value)), tile).astype(
        _jdtype(view.block.dtype)
    )
    if mask is not None:
        ops.append(jnp.broadcast_to(jnp.asarray(mask, bool), tile))
    P.store_p.bind(
        value, *ops, tensor=view.tensor.name, dims=dims, has_mask=mask is not None, site=loc
    )


def _lin(a, b, sign: int):
    """stride of a sum/difference: None unless both strides are Python ints."""
    if isinstance(a, int) and isinstance(b, int):
        return a + sign * b
    return None
