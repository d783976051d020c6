"""Symbolic values of a traced kernel body, and the rules for JAX's integer primitives.

An integer or boolean array is an expression over its own coordinates
(``_c0, _c1, ...``), so ``jnp.arange(128)[None, :] < valid`` becomes the mask
``_c1 < valid``.  Floating tiles are *opaque*: only their ring provenance and
whether an axis is split across lanes are tracked.  An opaque value that
reaches an index, mask, bound or condition is reported as unsupported by the
caller, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import shapes
from ._model import coord

__all__ = ["SV", "elementwise", "opaque"]


@dataclass(frozen=True)
class SV:
    """A symbolic value of a given shape: an int expression, a condition, or opaque."""

    shape: tuple[int, ...]
    expr: shapes.Expr | None = None
    cond: shapes.Formula | None = None
    why: str = ""  # for opaque values: where they came from
    prov: shapes.Expr | None = None  # ring provenance (origin rank) of a tile
    split_axis: int | None = None  # axis shared across lanes by lane_part
    bits: int = 32

    @property
    def is_int(self) -> bool:
        return self.expr is not None

    @property
    def is_bool(self) -> bool:
        return self.cond is not None

    @property
    def is_opaque(self) -> bool:
        return self.expr is None and self.cond is None


def opaque(shape, why: str, prov=None, split_axis=None) -> SV:
    return SV(tuple(shape), why=why, prov=prov, split_axis=split_axis)


def int_sv(expr, shape=(), bits=32) -> SV:
    return SV(tuple(shape), expr=shapes.as_expr(expr), bits=bits)


def bool_sv(cond, shape=()) -> SV:
    return SV(tuple(shape), cond=cond)


def literal(val) -> SV:
    arr = np.asarray(val)
    if arr.dtype == bool and arr.shape == ():
        return bool_sv(shapes.conj() if bool(arr) else shapes.disj())
    if np.issubdtype(arr.dtype, np.integer) and arr.shape == ():
        return int_sv(int(arr), bits=arr.dtype.itemsize * 8)
    if np.issubdtype(arr.dtype, np.integer) and arr.size and (arr == arr.flat[0]).all():
        return int_sv(int(arr.flat[0]), arr.shape, bits=arr.dtype.itemsize * 8)
    return opaque(arr.shape, f"a constant array of dtype {arr.dtype}")


def _value_of(sv: SV):
    return sv.expr if sv.expr is not None else sv.cond


def remap(sv: SV, mapping: dict[int, int | None], shape) -> SV:
    """Rename coordinates: old axis k becomes new axis mapping[k] (None: fixed at 0)."""
    repl = {coord(k): (shapes.sym(coord(v)) if v is not None else 0) for k, v in mapping.items()}
    if sv.is_opaque:
        split = sv.split_axis
        new_split = mapping.get(split) if split is not None else None
        return replace(sv, shape=tuple(shape), split_axis=new_split)
    val = _value_of(sv).subs(repl)
    return replace(
        sv, shape=tuple(shape), expr=val if sv.is_int else None, cond=val if sv.is_bool else None
    )


def _trunc_div(a: shapes.Expr, b: shapes.Expr) -> shapes.Expr:
    """C-style (truncating) division, as ``lax.div`` computes it."""
    if b.is_const and b.const_value > 0:
        return shapes.where(shapes.ge(a, 0), shapes.floordiv(a, b), -shapes.floordiv(-a, b))
    q = shapes.floordiv(abs(a), abs(b))
    return shapes.where(shapes.ge(a * b, 0), q, -q)


_CMP = {
    "eq": shapes.eq,
    "ne": shapes.ne,
    "lt": shapes.lt,
    "le": shapes.le,
    "gt": shapes.gt,
    "ge": shapes.ge,
}


def elementwise(name: str, args: list[SV], out_shape, params) -> SV | None:
    """Symbolic result of an integer/boolean elementwise primitive, or None if not one."""
    shape = tuple(out_shape)
    if any(a.is_opaque for a in args):
        split = next(
            (a.split_axis for a in args if a.split_axis is not None and a.shape == shape), None
        )
        prov = next((a.prov for a in args if a.prov is not None), None)
        why = next((a.why for a in args if a.is_opaque), "")
        return opaque(shape, why, prov=prov, split_axis=split)
    e = [a.expr for a in args]
    c = [a.cond for a in args]
    bits = max((a.bits for a in args if a.is_int), default=32)
    if name in _CMP and all(a.is_int for a in args):
        return bool_sv(_CMP[name](e[0], e[1]), shape)
    if name in ("eq", "ne") and all(a.is_bool for a in args):
        same = shapes.disj(
            shapes.conj(c[0], c[1]), shapes.conj(shapes.negate(c[0]), shapes.negate(c[1]))
        )
        return bool_sv(same if name == "eq" else shapes.negate(same), shape)
    if all(a.is_bool for a in args):
        if name == "and":
            return bool_sv(shapes.conj(*c), shape)
        if name == "or":
            return bool_sv(shapes.disj(*c), shape)
        if name == "not":
            return bool_sv(shapes.negate(c[0]), shape)
        if name == "xor":
            return bool_sv(
                shapes.disj(
                    shapes.conj(c[0], shapes.negate(c[1])), shapes.conj(shapes.negate(c[0]), c[1])
                ),
                shape,
            )
    if name == "select_n":
        pred, cases = args[0], args[1:]
        if len(cases) == 2 and pred.is_bool:
            if cases[0].is_int and cases[1].is_int:
                return int_sv(shapes.where(pred.cond, e[2], e[1]), shape, bits)
            if cases[0].is_bool and cases[1].is_bool:
                return bool_sv(
                    shapes.disj(
                        shapes.conj(pred.cond, c[2]), shapes.conj(shapes.negate(pred.cond), c[1])
                    ),
                    shape,
                )
        return opaque(shape, "select_n with more than two cases")
    if not all(a.is_int for a in args):
        return None
    bits = max(a.bits for a in args)
    if name == "add":
        return int_sv(e[0] + e[1], shape, bits)
    if name == "sub":
        return int_sv(e[0] - e[1], shape, bits)
    if name == "mul":
        return int_sv(e[0] * e[1], shape, bits)
    if name == "neg":
        return int_sv(-e[0], shape, bits)
    if name == "max":
        return int_sv(shapes.maximum(e[0], e[1]), shape, bits)
    if name == "min":
        return int_sv(shapes.minimum(e[0], e[1]), shape, bits)
    if name == "abs":
        return int_sv(abs(e[0]), shape, bits)
    if name == "sign":
        return int_sv(
            shapes.where(shapes.gt(e[0], 0), 1, shapes.where(shapes.lt(e[0], 0), -1, 0)),
            shape,
            bits,
        )
    if name == "clamp":
        return int_sv(shapes.minimum(shapes.maximum(e[1], e[0]), e[2]), shape, bits)
    if name == "div":
        return int_sv(_trunc_div(e[0], e[1]), shape, bits)
    if name == "rem":
        return int_sv(e[0] - e[1] * _trunc_div(e[0], e[1]), shape, bits)
    if name == "integer_pow":
        return int_sv(e[0] ** int(params["y"]), shape, bits)
    if name == "shift_left" and e[1].is_const:
        return int_sv(e[0] * (2 ** e[1].const_value), shape, bits)
    if name == "shift_right_arithmetic" and e[1].is_const:
        return int_sv(shapes.floordiv(e[0], 2 ** e[1].const_value), shape, bits)
    return None
