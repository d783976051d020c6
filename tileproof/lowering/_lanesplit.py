"""How a tile split across lanes (``lane_part`` inside ``lanes(n, halve=axis)``) flows
through JAX primitives.

Each lane holds only its share of the split axis.  A primitive that works element by
element, or along other axes only, keeps the split (at the axis's new position); one
that combines elements *along* the split axis (a reduction, a cumulative op, a sort, a
reversal, a contraction) sees only the lane's share and becomes a :class:`SplitReduce`
(a ``split`` violation).  Every other primitive that receives a split tile — a slice,
pad or concatenation along the split axis, a reshape that merges it, a gather, anything
not listed here — is :class:`Unsupported`: the split is never silently dropped.
"""

from __future__ import annotations

from ..model import SplitReduce, Unsupported
from ._values import SV

__all__ = ["CUMULATIVE", "ELEMENTWISE", "REDUCE", "split_axes"]

# primitives applied element by element to operands of the output's shape (or scalars)
ELEMENTWISE = frozenset(
    """
    abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp conj convert_element_type
    copy copy_p cos cosh div eq erf erf_inv erfc exp exp2 expm1 floor ge gt imag integer_pow
    is_finite le lgamma digamma log log1p logistic lt max min mul ne neg nextafter not or pow
    real reduce_precision rem round rsqrt select_n shift_left shift_right_arithmetic
    shift_right_logical sign sin sinh sqrt square sub tan tanh xor population_count clz
    optimization_barrier stop_gradient
    """.split()
)
REDUCE = (
    "reduce_sum",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_and",
    "reduce_or",
    "reduce_xor",
    "argmax",
    "argmin",
)
CUMULATIVE = ("cumsum", "cumprod", "cummax", "cummin", "cumlogsumexp")


def _unsupported(name: str, axis: int, why: str, loc, block) -> None:
    block.add(
        Unsupported(
            f"the primitive {name} on a tile split across lanes (split axis {axis}) {why}: "
            "the lowering cannot follow the lanes' shares through it",
            loc,
        )
    )


def split_axes(name: str, eqn, ins: list[SV], loc, block) -> list[int | None]:
    """The split axis of each output of ``eqn`` (None: not split), recording a
    :class:`SplitReduce` or :class:`Unsupported` when the primitive mixes the split axis.

    ``broadcast_in_dim``, ``reshape``, ``squeeze``, ``transpose`` and ``dot_general``
    are handled by the caller (they move axes around).
    """
    p = eqn.params
    outs = [tuple(getattr(v.aval, "shape", ())) for v in eqn.outvars]
    split = [(a.split_axis, a.shape) for a in ins if a.split_axis is not None]
    if not split:
        return [None] * len(outs)
    axes = {ax for ax, _ in split}
    axis, shape = split[0]
    if len(axes) > 1:
        _unsupported(name, axis, "with operands split along different axes", loc, block)
        return [None] * len(outs)
    if name in ELEMENTWISE:  # operands of extent 1 elsewhere are broadcast implicitly
        if any(len(s) != len(outs[0]) or s[axis] != outs[0][axis] for _, s in split):
            _unsupported(name, axis, "broadcasting a split operand", loc, block)
            return [None] * len(outs)
        return [axis] * len(outs)
    if name in REDUCE:
        reduced = tuple(p.get("axes", ()))
        if axis in reduced:
            block.add(SplitReduce(name, axis, loc))
            return [None] * len(outs)
        return [axis - sum(1 for a in reduced if a < axis)] * len(outs)
    if name in CUMULATIVE or name == "sort":
        along = p["axis"] if name in CUMULATIVE else p["dimension"]
        if along == axis:
            block.add(SplitReduce(name, axis, loc))
        return [axis] * len(outs)
    if name == "rev":
        if axis in tuple(p["dimensions"]):
            block.add(SplitReduce(name, axis, loc))
        return [axis] * len(outs)
    if name == "top_k":
        if p.get("axis", -1) % len(shape) == axis:
            block.add(SplitReduce(name, axis, loc))
        return [axis] * len(outs)
    whole = all(o[axis] == shape[axis] for o in outs if len(o) == len(shape))
    if (
        name in ("slice", "dynamic_slice", "pad", "dynamic_update_slice")
        and whole
        and all(len(o) == len(shape) for o in outs)
    ):
        if name == "pad" and tuple(p["padding_config"][axis]) != (0, 0, 0):
            _unsupported(name, axis, "padding the split axis", loc, block)
            return [None] * len(outs)
        if name == "slice" and p.get("strides") and p["strides"][axis] != 1:
            _unsupported(name, axis, "striding the split axis", loc, block)
            return [None] * len(outs)
        if name == "dynamic_update_slice" and (
            ins[1].split_axis != ins[0].split_axis or ins[1].shape[axis] != shape[axis]
        ):
            _unsupported(name, axis, "mixing split and whole tiles", loc, block)
            return [None] * len(outs)
        return [axis] * len(outs)
    if name == "concatenate" and p["dimension"] != axis and len(split) == len(ins):
        return [axis] * len(outs)
    _unsupported(name, axis, "", loc, block)
    return [None] * len(outs)
