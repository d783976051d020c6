"""A pallas_call at concrete sizes, and the same call in Pallas' interpret mode.

The per-call reference (:func:`interpret_reference`) that the Pallas front end
(:mod:`._api`) hands to the numeric check when a call's operands are not the
function's arguments, and the concrete traces (:func:`concrete_call`) it and the
end-to-end run (:mod:`._numeric`) are built from.  Below both: :mod:`._api` builds
the reference from here, :mod:`._numeric` runs calls that :mod:`._api` builds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import shapes
from ._read import _num_dynamic

__all__ = ["concrete_call", "interpret_reference"]


def _concrete_args(args, env: Mapping[str, int]):
    out = []
    for a in args:
        shape = tuple(shapes.as_expr(d).evaluate(env) for d in a.shape)
        dt = jnp.bfloat16 if a.dtype == "bfloat16" else np.dtype(a.dtype)
        out.append(jax.ShapeDtypeStruct(shape, dt))
    return out


def _pallas_eqns(jaxpr, out: list) -> list:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "pallas_call":
            out.append(eqn)
            continue
        for v in eqn.params.values():
            for x in v if isinstance(v, (tuple, list)) else (v,):
                j = getattr(x, "jaxpr", None)
                if j is not None and hasattr(j, "eqns"):
                    _pallas_eqns(j, out)
                elif hasattr(x, "eqns"):
                    _pallas_eqns(x, out)
    return out


def concrete_call(fn, static, args, env: Mapping[str, int], index: int):
    """The ``index``-th pallas_call equation of ``fn`` traced at the concrete sizes ``env``."""
    f = functools.partial(fn, **dict(static or {}))
    closed = jax.make_jaxpr(f)(*_concrete_args(args, env))
    return _pallas_eqns(closed.jaxpr, [])[index]


def _reshape_units(x, shape):
    if tuple(x.shape) == tuple(shape):
        return x
    if [n for n in x.shape if n != 1] != [n for n in shape if n != 1]:
        raise ValueError(f"the concrete call's operand {x.shape} does not match {shape}")
    return jnp.reshape(x, shape)


def interpret_reference(
    fn, static, args, index: int, out_names: Sequence[str], out_decl: Sequence = ()
) -> Callable:
    """A reference for the ``index``-th call: the same call in Pallas' interpret mode.

    It depends on the sizes (the call is re-traced at each), so it is handed to the
    numeric check through the ``at_sizes`` attribute.
    """

    def at_sizes(env: Mapping[str, int]) -> Callable:
        eqn = concrete_call(fn, static, args, env, index)
        gm = eqn.params["grid_mapping"]
        if _num_dynamic(gm):
            raise ValueError("a concrete trace with a dynamic grid")
        params = {**eqn.params, "interpret": True}
        in_shapes = [tuple(v.aval.shape) for v in eqn.invars]
        out_shapes = [tuple(shapes.as_expr(d).evaluate(env) for d in shp) for shp in out_decl]

        def ref(*operands):
            # a vmap of size 1 traces the unbatched call (Pallas' batching rule squeezes the
            # axis): the same elements in the same order, only unit dimensions differ
            ops = [_reshape_units(x, sh) for x, sh in zip(operands, in_shapes)]
            outs = eqn.primitive.bind(*ops, **params)
            return {n: _reshape_units(o, sh) for n, o, sh in zip(out_names, outs, out_shapes)}

        return ref

    def unsized(*_a):
        raise TypeError("interpret_reference needs the sizes: call .at_sizes(env)")

    unsized.at_sizes = at_sizes
    unsized.interpret_mode = True
    return unsized
