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
from ..model import coord

__all__ = ["MIXED", "SV", "elementwise", "is_mixed", "opaque", "ring_origin"]

#: Provenance of a value whose origin is not one chunk: it combines chunks of different
#: origins (``cur + received``), or a loop or branch gives it different origins.  Folding
#: it is unsupported (the ring obligations become ``unknown``), never "one chunk".
MIXED = shapes.sym("_mixed_provenance")


def is_mixed(prov: shapes.Expr | None) -> bool:
    return prov is not None and "_mixed_provenance" in prov.free_symbols()


def ring_origin(args) -> tuple[shapes.Expr | None, shapes.Formula | None]:
    """Provenance and validity of a value computed from ``args``: the common origin of the
    operands that have one (values without one — a query tile, a constant — add none), or
    :data:`MIXED` when two differ; valid where every operand's origin is."""
    provs = [a.prov for a in args if a.prov is not None]
    prov = None
    if provs:
        prov = provs[0] if all(p == provs[0] for p in provs) else MIXED
    valids = [a.valid for a in args if a.valid is not None]
    valid = shapes.conj(*valids) if valids else None
    return prov, valid


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
    signed: bool = True  # an unsigned value always lies in [0, 2**bits): see wrap()
    # where the provenance is real (a received tile: where it was received); None: everywhere
    valid: shapes.Formula | None = None

    @property
    def is_int(self) -> bool:
        return self.expr is not None

    @property
    def is_bool(self) -> bool:
        return self.cond is not None

    @property
    def is_opaque(self) -> bool:
        return self.expr is None and self.cond is None


def opaque(shape, why: str, prov=None, split_axis=None, valid=None) -> SV:
    return SV(
        tuple(shape),
        why=why,
        prov=prov,
        split_axis=split_axis,
        valid=valid if prov is not None else None,
    )


def int_sv(expr, shape=(), bits=32, signed=True) -> SV:
    return SV(tuple(shape), expr=shapes.as_expr(expr), bits=bits, signed=signed)


def wrap(expr: shapes.Expr, bits: int, signed: bool) -> shapes.Expr:
    """``expr`` reduced to a ``bits``-bit integer the way the hardware does it (two's complement).

    Unsigned: ``x mod 2**b``; signed: ``((x + 2**(b-1)) mod 2**b) - 2**(b-1)``.  Exact for
    every integer ``x``, so a narrowing cast or unsigned arithmetic never assumes the value fits.
    """
    m = 2**bits
    if signed:
        return shapes.mod(expr + m // 2, m) - m // 2
    return shapes.mod(expr, m)


def dtype_bits(dtype) -> tuple[int, bool]:
    """(width in bits, signed) of an integer dtype."""
    dt = np.dtype(dtype)
    return dt.itemsize * 8, bool(np.issubdtype(dt, np.signedinteger))


def bool_sv(cond, shape=()) -> SV:
    return SV(tuple(shape), cond=cond)


def literal(val) -> SV:
    arr = np.asarray(val)
    if arr.dtype == bool and arr.shape == ():
        return bool_sv(shapes.conj() if bool(arr) else shapes.disj())
    if np.issubdtype(arr.dtype, np.integer) and arr.shape == ():
        return int_sv(int(arr), (), *dtype_bits(arr.dtype))
    if np.issubdtype(arr.dtype, np.integer) and arr.size and (arr == arr.flat[0]).all():
        return int_sv(int(arr.flat[0]), arr.shape, *dtype_bits(arr.dtype))
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


def shift_coords(sv: SV, repl: dict[str, shapes.Expr], shape) -> SV:
    """Substitute coordinate expressions (``_c0 -> 2 + _c0``) into an int/bool value."""
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


def _select_origin(args: list[SV], shape) -> SV:
    """``select_n(pred, *cases)`` of tiles of which some carry a ring origin: the origin
    exists only where the case chosen carries it (``where(got, chunk, 0)`` is the chunk
    where ``got``, and nothing elsewhere).  A predicate that varies across the tile, or
    cases of different origins, make the origin :data:`MIXED`."""
    pred, cases = args[0], args[1:]
    split = next(
        (a.split_axis for a in args if a.split_axis is not None and a.shape == shape), None
    )
    provs = {c.prov for c in cases if c.prov is not None}
    prov = next(iter(provs)) if len(provs) == 1 else MIXED
    why = next((a.why for a in cases if a.is_opaque), "")
    if pred.is_bool:
        pc = pred.cond
    elif pred.is_int and len(cases) == 2:
        pc = shapes.ne(pred.expr, 0)
    else:
        return opaque(shape, why, prov=MIXED, split_axis=split)
    if is_mixed(prov) or any(n.startswith("_c") for n in pc.free_symbols()):
        return opaque(shape, why, prov=MIXED, split_axis=split)
    truth = shapes.conj()

    def where_case(c: SV) -> shapes.Formula:
        if c.prov is None:
            return shapes.disj()
        return c.valid if c.valid is not None else truth

    if len(cases) == 1:
        valid = where_case(cases[0])
    elif len(cases) == 2:  # select_n(p, on_false, on_true)
        valid = shapes.disj(
            shapes.conj(shapes.negate(pc), where_case(cases[0])),
            shapes.conj(pc, where_case(cases[1])),
        )
    else:
        return opaque(shape, why, prov=MIXED, split_axis=split)
    return opaque(shape, why, prov=prov, split_axis=split, valid=valid)


def elementwise(name: str, args: list[SV], out_shape, params) -> SV | None:
    """Symbolic result of an integer/boolean elementwise primitive, or None if not one."""
    shape = tuple(out_shape)
    if name == "select_n" and any(a.prov is not None for a in args[1:]):
        return _select_origin(args, shape)
    if any(a.is_opaque for a in args):
        split = next(
            (a.split_axis for a in args if a.split_axis is not None and a.shape == shape), None
        )
        prov, valid = ring_origin(args)
        why = next((a.why for a in args if a.is_opaque), "")
        return opaque(shape, why, prov=prov, split_axis=split, valid=valid)
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
                return int_sv(shapes.where(pred.cond, e[2], e[1]), shape, bits, cases[0].signed)
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
    signed = all(a.signed for a in args)
    if signed != any(a.signed for a in args):
        return None  # mixed signedness does not occur in a jaxpr; do not guess
    res = _int_op(name, e, params, signed)
    if res is None:
        return None
    if not signed and name in _WRAPS:
        # Unsigned arithmetic wraps modulo 2**bits by definition (no overflow to report):
        # model it exactly, keeping every unsigned value in [0, 2**bits).
        res = wrap(res, bits, False)
    return int_sv(res, shape, bits, signed)


_WRAPS = ("add", "sub", "mul", "neg", "integer_pow", "shift_left")


def _int_op(name: str, e: list[shapes.Expr], params, signed: bool) -> shapes.Expr | None:
    """The exact integer result of ``name`` (before any wraparound), or None if not modelled.

    Unsigned operands lie in ``[0, 2**bits)``, so truncating and flooring division agree
    and ``abs``/``sign`` act on non-negative values."""
    if name == "add":
        return e[0] + e[1]
    if name == "sub":
        return e[0] - e[1]
    if name == "mul":
        return e[0] * e[1]
    if name == "neg":
        return -e[0]
    if name == "max":
        return shapes.maximum(e[0], e[1])
    if name == "min":
        return shapes.minimum(e[0], e[1])
    if name == "abs":
        return abs(e[0])
    if name == "sign":
        return shapes.where(shapes.gt(e[0], 0), 1, shapes.where(shapes.lt(e[0], 0), -1, 0))
    if name == "clamp":
        return shapes.minimum(shapes.maximum(e[1], e[0]), e[2])
    if name == "div":
        return _trunc_div(e[0], e[1])
    if name == "rem":
        return e[0] - e[1] * _trunc_div(e[0], e[1])
    if name == "integer_pow":
        return e[0] ** int(params["y"])
    if name == "shift_left" and e[1].is_const and 0 <= e[1].const_value < 64:
        return e[0] * (2 ** e[1].const_value)
    if name == "shift_right_arithmetic" and signed and e[1].is_const and 0 <= e[1].const_value < 64:
        return shapes.floordiv(e[0], 2 ** e[1].const_value)
    if (
        name == "shift_right_logical"
        and not signed
        and e[1].is_const
        and 0 <= e[1].const_value < 64
    ):
        return shapes.floordiv(e[0], 2 ** e[1].const_value)
    return None
