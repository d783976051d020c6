"""Reading JAX's control-flow equations across versions (the one place that knows their params)."""

from __future__ import annotations

__all__ = ["CALLS", "scan_operands"]

#: primitives that call a nested jaxpr with the caller's operands (their body is walked in
#: place); one list for the spec lowering and the Pallas front end
CALLS = (
    "pjit",
    "jit",
    "closed_call",
    "core_call",
    "remat",
    "checkpoint",
    "custom_jvp_call",
    "custom_vjp_call",
    "custom_vjp_call_jaxpr",
)


def scan_operands(p, vals) -> tuple[list, list, list]:
    """A scan's operands as (consts, carry, xs).

    JAX <= 0.10 records the counts in ``num_consts``/``num_carry``; JAX 0.11
    replaced them with a flat tree ``ft_in`` that unpacks into the three groups.
    """
    if "num_consts" in p:
        nc, ncar = p["num_consts"], p["num_carry"]
        return list(vals[:nc]), list(vals[nc : nc + ncar]), list(vals[nc + ncar :])
    consts, carry, xs = p["ft_in"].update(list(vals)).unpack()
    return list(consts), list(carry), list(xs)
