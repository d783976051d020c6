"""Integer primitives whose modelling needs more than an expression rule: ``iota`` in a
narrow dtype, integer division by the literal 0, and jnp's floor division and remainder
recognised by their body rather than their name.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .. import shapes
from ..model import Unsupported, coord
from ..spec._errors import Location
from ._values import SV, dtype_bits, int_sv, opaque, wrap

__all__ = ["iota", "is_jnp_call", "zero_divisor"]

#: primitives that call a nested jaxpr (as in ``_lower._CALLS``)
_CALLS = ("pjit", "jit", "closed_call", "core_call")


@functools.lru_cache(maxsize=256)
def _jnp_body(jname: str, avals: tuple) -> str | None:
    """The printed body of ``jnp.<jname>`` traced on ``avals`` (shape, dtype, weak type)."""
    try:
        sds = [jax.ShapeDtypeStruct(sh, dt, weak_type=wk) for sh, dt, wk in avals]
        ref = jax.make_jaxpr(getattr(jnp, jname))(*sds)
    except Exception:
        return None
    eqns = ref.jaxpr.eqns
    if len(eqns) != 1 or eqns[0].primitive.name not in _CALLS:
        return None
    inner = eqns[0].params.get("jaxpr")
    return str(inner.jaxpr if hasattr(inner, "jaxpr") else inner)


def is_jnp_call(jname: str, eqn, inner) -> bool:
    """Whether a call named ``floor_divide``/``remainder`` is jnp's own, so its result is
    Python's floor division/modulo.  The name alone is the user's to choose (a jitted
    ``def floor_divide(a, b): return a * b`` is no division): the body must be the one
    jnp traces for the same operand types."""
    avals = tuple(
        (tuple(v.aval.shape), v.aval.dtype, bool(getattr(v.aval, "weak_type", False)))
        for v in eqn.invars
    )
    ref = _jnp_body(jname, avals)
    jx = inner.jaxpr if hasattr(inner, "jaxpr") else inner
    return ref is not None and ref == str(jx)


def iota(p, shape) -> SV:
    """``iota``: the coordinate, wrapped into the dtype's range.

    XLA's iota counts in its own dtype, so ``lax.iota(uint8, 300)`` is ``0..255, 0..43``:
    a coordinate that may exceed the dtype's largest value is reduced exactly as the
    hardware does (see :func:`._values.wrap`), never assumed to fit.
    """
    dim = p["dimension"]
    bits, signed = dtype_bits(p["dtype"])
    c = shapes.sym(coord(dim))
    top = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    extent = shape[dim] if dim < len(shape) else 1
    return int_sv(c if extent - 1 <= top else wrap(c, bits, signed), shape, bits, signed)


def zero_divisor(name: str, ins: list[SV], loc: Location, block, shape) -> SV | None:
    """A division whose divisor is the literal 0: its result (XLA gives -1 or the dividend,
    per dtype) is not modelled, so it is an explicit :class:`Unsupported` and the result is
    opaque — every obligation depending on it is ``unknown``, and lowering does not crash on
    a shape expression ``x // 0``."""
    if len(ins) == 2 and ins[1].is_int and ins[1].expr.is_const and ins[1].expr.const_value == 0:
        block.add(
            Unsupported(
                f"an integer {name} by the constant 0 (the result is not "
                "modelled; the divisor must not be zero)",
                loc,
            )
        )
        return opaque(shape, f"an integer {name} by the constant 0")
    return None
