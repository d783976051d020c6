"""Lowering of data values: what loads of index tensors read, what stores into them write,
integer casts, and primitives that move axes (reshape, transpose, broadcast, slice).

Every rule here is exact or fails closed: an integer array whose coordinates cannot be
followed becomes opaque (an index or mask built from it is unsupported), and a lane-split
tile whose split axis cannot be followed is :class:`Unsupported`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import shapes
from ..model import Access, Data, LanePart, Node, Unsupported, coord, walk
from ..spec._errors import Location
from ._values import SV, bool_sv, dtype_bits, int_sv, opaque, remap, shift_coords, wrap

__all__ = [
    "convert",
    "halved_tile",
    "implicit_broadcast",
    "index_value",
    "move_axes",
    "slice_of",
    "stored_value",
    "unpin_written",
]


def unpin_written(ctx, body: list[Node]) -> None:
    """Reads of a tensor the kernel itself stores into are not one value per element: a
    read after a write (by this program, on an earlier iteration, or by another program in
    an earlier phase) sees the new value.  Dropping their index keeps the verifier from
    equating two reads of one element (two read nodes, or one read node on two iterations
    or in two programs) and from treating a read as the same for every program.  That
    holds for every role: an updated input, and scratch or outputs (always written before
    they are read), whose one read node on two iterations with a store in between reads
    two values.  Their declared range still holds, because every store into a tensor with
    ``values=`` must write values in that range (a ``bounds`` obligation).
    ``distinct=True`` is not checked on stores, so it is not trusted for a written tensor.
    A read with no index is a fresh value at every execution: see
    :func:`tileproof.verify.static._coverage.relevant_loops`."""
    written = {n.tensor for n in walk(body) if isinstance(n, Access) and n.kind == "store"}
    for name, d in list(ctx.data.items()):
        decl = ctx.kernel.tensors.get(d.tensor)
        if decl is None:  # a symbol of no tensor (a loop's step count, _loops._carried_steps)
            continue
        if d.tensor in written:
            ctx.data[name] = replace(d, index=(), entry=d.index)


def implicit_broadcast(x: SV, shape) -> SV:
    """An operand of extent 1 along an axis the result spans (jaxprs broadcast those
    implicitly): its coordinate there is 0, not the result's coordinate."""
    if x.is_opaque or len(x.shape) != len(shape) or tuple(x.shape) == tuple(shape):
        return x
    repl = {coord(k): shapes.as_expr(0) for k, n in enumerate(x.shape) if n == 1 != shape[k]}
    return shift_coords(x, repl, shape) if repl else x


def _merged_split(src: tuple, dst: tuple, axis: int) -> int | None:
    """The result axis a row-major reshape merges split axis ``axis`` into, when the lanes'
    shares stay contiguous there: every result axis is a run of consecutive operand axes
    (merges only) and the split axis is the outermost axis of extent > 1 in its run, so a
    lane's block of it, times everything inside, is a block of the merged axis."""
    i = 0
    for j, n in enumerate(dst):
        run, prod = [], 1
        while i < len(src) and (prod < n or (src[i] == 1 and prod == n and not run)):
            run.append(i)
            prod *= src[i]
            i += 1
        if prod != n:
            return None
        if axis in run:
            outer = [k for k in run if src[k] != 1]
            return j if outer and outer[0] == axis else None
    return None


def slice_of(x: SV, p, shape) -> SV:
    """``slice`` of an integer/boolean array: coordinate ``c`` of the result is coordinate
    ``start + stride * c`` of the operand (exact)."""
    strides = p.get("strides") or (1,) * len(shape)
    repl = {
        coord(k): int(st) + int(sd) * shapes.sym(coord(k))
        for k, (st, sd) in enumerate(zip(p["start_indices"], strides))
    }
    return shift_coords(x, repl, shape)


def move_axes(eqn, name: str, x: SV, shape, loc: Location, block) -> SV:
    """``broadcast_in_dim``, ``reshape``, ``squeeze``, ``transpose``: rename coordinates.

    Exact when axes are only permuted, inserted or dropped with extent 1; a reshape that
    merges or splits axes (or reorders them first: ``dimensions``, as ``order="F"`` traces)
    makes an integer array opaque, and a lane-split tile whose split axis it cannot follow
    unsupported (never the identity)."""
    p = eqn.params
    mapping: dict[int, int | None] | None
    reorders = False
    if name == "transpose":
        mapping = {old: new for new, old in enumerate(p["permutation"])}
    elif name == "broadcast_in_dim":
        bd = p["broadcast_dimensions"]
        mapping = {k: (bd[k] if x.shape[k] == shape[bd[k]] else None) for k in range(len(x.shape))}
    else:
        mapping = None
        dims = p.get("dimensions") if name == "reshape" else None
        src = [k for k, n in enumerate(x.shape) if n != 1]
        dst = [k for k, n in enumerate(shape) if n != 1]
        reorders = dims is not None and tuple(dims) != tuple(range(len(x.shape)))
        if not reorders and [x.shape[k] for k in src] == [shape[k] for k in dst]:
            mapping = {k: None for k in range(len(x.shape))}
            mapping.update(dict(zip(src, dst)))
    if x.is_opaque and x.split_axis is not None and mapping is None and name == "reshape":
        merged = _merged_split(x.shape, tuple(shape), x.split_axis)
        if merged is not None and not reorders:
            return opaque(shape, f"a reshape {x.shape} -> {tuple(shape)}", x.prov, merged, x.valid)
    if x.split_axis is not None and (mapping is None or mapping.get(x.split_axis) is None):
        block.add(
            Unsupported(
                f"a {name} {x.shape} -> {tuple(shape)} of a tile split across lanes (split "
                f"axis {x.split_axis}) that merges or drops the split axis: the lowering cannot "
                "follow the lanes' shares through it",
                loc,
            )
        )
        return opaque(shape, f"a {name} of a lane-split tile", x.prov, valid=x.valid)
    if mapping is None:
        return opaque(shape, f"a {name} {x.shape} -> {tuple(shape)}", x.prov, valid=x.valid)
    return remap(x, mapping, shape)


def convert(eqn, x: SV, new: np.dtype, shape) -> SV:
    """``convert_element_type``: integer casts wrap exactly (see :func:`._values.wrap`).

    A cast that cannot change the value (to a type of the same signedness at least as
    wide, or unsigned to a wider signed type) keeps the expression; every other integer
    cast reduces it modulo ``2**bits`` into the new type's range, so a narrowing cast is
    never assumed to fit and ``x.astype(uint32) < n`` compares the wrapped value.
    """
    if np.issubdtype(new, np.integer):
        bits, signed = dtype_bits(new)
        if x.is_bool:
            return int_sv(shapes.where(x.cond, 1, 0), shape, bits, signed)
        if not x.is_int:
            return replace(x, shape=tuple(shape))  # opaque stays opaque (floats to ints too)
        old = np.dtype(getattr(eqn.invars[0].aval, "dtype", np.int32))
        if not np.issubdtype(old, np.integer):
            return opaque(shape, f"an integer cast from {old}")
        obits, osigned = dtype_bits(old)
        fits = bits >= obits if signed == osigned else (signed and bits > obits)
        e = x.expr if fits else wrap(x.expr, bits, signed)
        return int_sv(e, shape, bits, signed)
    if new == np.dtype(bool):
        return bool_sv(shapes.ne(x.expr, 0), shape) if x.is_int else x
    return opaque(
        shape, x.why or "a value converted to floating point", x.prov, x.split_axis, x.valid
    )


def index_value(ctx, node: Access, decl, shape) -> SV:
    """The value a load of an index tensor reads.

    One element (every tile dimension of extent 1): a data symbol constrained by the
    declared range, bound to that element (``node.value``); where the mask is off the
    load reads 0, so the value is ``where(mask, v, 0)`` and the range holds only for
    ``v``.  A tile of several elements is opaque: its elements are independent values,
    and one symbol for all of them would assume they are equal.
    """
    tile = [d.size for d in node.dims if not d.point]
    if any(n != 1 for n in tile):
        return opaque(
            shape,
            f"a tile of {int(np.prod(tile))} values of index tensor {node.tensor} loaded at "
            f"{node.loc.short} (its elements may differ; load index values one element at a time)",
        )
    dname = ctx.fresh(f"{node.tensor}_{node.loc.line}")
    rng = decl.values.subs({"v": shapes.sym(dname)}) if decl.values is not None else shapes.conj()
    bits, signed = dtype_bits(decl.dtype)
    ctx.data[dname] = Data(
        dname, node.tensor, tuple(d.start for d in node.dims), rng, node.loc, bits, signed
    )
    node.value = dname
    val = shapes.sym(dname)
    if node.mask is not None:  # coordinates of a one-element tile are all 0
        at0 = {coord(k): 0 for k in range(len(tile))}
        val = shapes.where(node.mask.subs(at0), val, 0)
    return int_sv(val, shape, bits, signed)


def stored_value(node: Access, value: SV) -> None:
    """Record what a store into an index tensor with declared ``values=`` writes, for the
    check that it stays in that range (reads of the tensor trust it)."""
    if value.is_int:
        node.stored = value.expr
    elif value.is_bool:
        node.stored = shapes.where(value.cond, 1, 0)
    else:
        node.stored_why = value.why or "a value the lowering cannot model"


def halved_tile(ctx, node: Access, loc: Location, block) -> None:
    """Inside ``lanes(n, halve=axis)`` every tile the lanes load or store is halved along
    ``axis``: that dimension must divide by ``n`` (a ``split`` obligation of its own, so a
    declared split over an odd tile is caught without a ``lane_part`` call)."""
    tile = tuple(d.size for d in node.dims if not d.point)
    for n, axis in ctx.halving:
        if axis is not None and 0 <= axis < len(tile):
            what = f"the {node.kind} of {node.tensor}"
            block.add(LanePart(tile[axis], n, axis, tile, loc, what))
