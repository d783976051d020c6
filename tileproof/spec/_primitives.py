"""JAX primitives that mark kernel operations in a traced body.

They exist only to be *seen* in ``jax.make_jaxpr``: the lowering reads them
(with their integer operands) into the schedule model, and the numeric
executor interprets them.  Their abstract evaluation gives shapes; they have
no lowering to XLA of their own.  Primitives without outputs are effectful so
that no transformation drops them.
"""

from __future__ import annotations

from types import ModuleType

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive

_effects: ModuleType | None
try:  # effects API location moved across JAX versions
    from jax._src import effects as _effects
except ImportError:  # pragma: no cover
    _effects = None

__all__ = ["PRIMITIVES", "KernelEffect"]


# mypy cannot check a base class chosen at run time (JAX's Effect when it has one)
class KernelEffect(_effects.Effect if _effects else object):  # type: ignore[misc]
    """Ordering effect of a kernel operation (store, barrier, exit, lanes, fold)."""

    def __repr__(self) -> str:
        return "KernelEffect"


KERNEL_EFFECT = KernelEffect()
if _effects is not None:
    for _reg in (
        "control_flow_allowed_effects",
        "lowerable_effects",
        "remat_allowed_effects",
        "custom_derivatives_allowed_effects",
    ):
        reg = getattr(_effects, _reg, None)
        if reg is not None:
            reg.add_type(KernelEffect)

_I32 = jax.core.ShapedArray((), jnp.int32)


def _scalar_int(name: str) -> Primitive:
    p = Primitive(name)
    p.def_abstract_eval(lambda *a, **kw: _I32)
    return p


def _effectful(name: str, out=None) -> Primitive:
    p = Primitive(name)
    if out is None:
        p.multiple_results = True
        p.def_effectful_abstract_eval(lambda *a, **kw: ([], {KERNEL_EFFECT}))
    else:
        p.def_effectful_abstract_eval(lambda *a, **kw: (out(*a, **kw), {KERNEL_EFFECT}))
    return p


size_p = _scalar_int("tp_size")  # params: name (a size); or expr (a front end's size expression)


def size_value(params, sizes) -> int:
    """The value of a ``tp_size`` operation at concrete sizes: the named size, or the value of
    its ``expr`` (exact host arithmetic on sizes, as a front end reads it from JAX's shapes)."""
    expr = params.get("expr")
    return expr.evaluate(sizes) if expr is not None else sizes[params["name"]]


program_id_p = _scalar_int("tp_program_id")  # params: axis
num_programs_p = _scalar_int("tp_num_programs")  # params: axis
lane_id_p = _scalar_int("tp_lane_id")
num_lanes_p = _scalar_int("tp_num_lanes")
rank_id_p = _scalar_int("tp_rank_id")
num_ranks_p = _scalar_int("tp_num_ranks")


def _load_abstract(*operands, tensor, dims, tile_shape, dtype, has_mask, site):
    return jax.core.ShapedArray(tile_shape, dtype)


# load: operands = dynamic starts (one per dim kind 'ds'/'point'), then mask if has_mask
load_p = _effectful("tp_load", out=_load_abstract)
# store: operands = value, starts..., mask?
store_p = _effectful("tp_store")
barrier_p = _effectful("tp_barrier")  # params: scope, site
exit_p = _effectful("tp_exit")  # operands: cond; params: site
lanes_begin_p = _effectful("tp_lanes_begin")  # params: n, mode, site
lanes_end_p = _effectful("tp_lanes_end")  # params: site


def _part_abstract(tile, lane, *, n, axis, site):
    shape = list(tile.shape)
    shape[axis] = shape[axis] // n
    return jax.core.ShapedArray(tuple(shape), tile.dtype)


lane_part_p = _effectful("tp_lane_part", out=_part_abstract)


def _same_abstract(x, *rest, **kw):
    return jax.core.ShapedArray(x.shape, x.dtype)


# sendrecv: operands = value, dst, src, send_ok, recv_ok; result = the received value
sendrecv_p = _effectful("tp_sendrecv", out=_same_abstract)
# fold: operands = value, when; result = value (identity), records a fold event
fold_p = _effectful("tp_fold", out=_same_abstract)
# unsupported: no operands; params: what, site.  A front end (tileproof.pallas) marks a construct
# it cannot model exactly; the lowering makes it an Unsupported node (fail closed)
unsupported_p = _effectful("tp_unsupported")
# claim: operands = an integer value; params: modulus, what, site.  A front end's hint that
# the value is a multiple of ``modulus`` (``pl.multiple_of``): a claim the verifier proves
claim_p = _effectful("tp_claim")
# assert: operands = a boolean (or integer, nonzero meaning true) value; params: kind, what,
# site, tensor, hint.  A front end's rule that must hold wherever it is reached (a DMA's
# ordering): an obligation of ``kind``, never assumed
assert_p = _effectful("tp_assert")

PRIMITIVES = {
    p.name: p
    for p in (
        size_p,
        program_id_p,
        num_programs_p,
        lane_id_p,
        num_lanes_p,
        rank_id_p,
        num_ranks_p,
        load_p,
        store_p,
        barrier_p,
        exit_p,
        lanes_begin_p,
        lanes_end_p,
        lane_part_p,
        sendrecv_p,
        fold_p,
        unsupported_p,
        claim_p,
        assert_p,
    )
}
