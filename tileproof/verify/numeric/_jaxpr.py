"""Walking traced bodies: sub-jaxprs, kernel operations inside them, program order."""

from __future__ import annotations

from collections.abc import Iterator

from jax.extend import core as jcore

__all__ = [
    "NumericUnsupported",
    "bind_eqn",
    "has_kernel_ops",
    "kernel_eqns",
    "lanes_regions",
    "sub_jaxprs",
    "unwrap",
]

from ...spec._errors import LocatedError


class NumericUnsupported(LocatedError):
    """A construct (or a request) the numeric executor cannot run; the message says which and
    where.  No :class:`~tileproof.spec.SpecError`: the spec may well be correct, only this
    executor cannot run it (inside a check it is the numeric status ``error``)."""


def bind_eqn(e, vals) -> list:
    """Evaluate a standard equation on values (outputs always as a list)."""
    out = e.primitive.bind(*vals, **e.primitive.get_bind_params(e.params))
    return list(out) if e.primitive.multiple_results else [out]


def unwrap(j):
    """The open jaxpr of a ClosedJaxpr (or the jaxpr itself)."""
    return j.jaxpr if hasattr(j, "jaxpr") and hasattr(j, "consts") else j


def consts_of(j) -> list:
    return list(getattr(j, "consts", []))


def sub_jaxprs(eqn) -> list:
    """Every jaxpr in an equation's params (call bodies, loop bodies, branches)."""
    out = []
    for v in eqn.params.values():
        if isinstance(v, (jcore.Jaxpr, jcore.ClosedJaxpr)):
            out.append(v)
        elif isinstance(v, (tuple, list)):
            out.extend(x for x in v if isinstance(x, (jcore.Jaxpr, jcore.ClosedJaxpr)))
    return out


_HAS: dict[int, tuple[object, bool]] = {}


def has_kernel_ops(j) -> bool:
    """Whether a jaxpr (recursively) contains a tileproof kernel operation."""
    jx = unwrap(j)
    hit = _HAS.get(id(jx))
    if hit is not None and hit[0] is jx:
        return hit[1]
    res = any(
        e.primitive.name.startswith("tp_") or any(has_kernel_ops(s) for s in sub_jaxprs(e))
        for e in jx.eqns
    )
    _HAS[id(jx)] = (jx, res)
    return res


def eqn_has_kernel_ops(eqn) -> bool:
    return eqn.primitive.name.startswith("tp_") or any(has_kernel_ops(s) for s in sub_jaxprs(eqn))


def kernel_eqns(j, in_loop: bool = False) -> Iterator[tuple[object, bool]]:
    """``(eqn, inside a loop)`` for every kernel operation, in program order."""
    for e in unwrap(j).eqns:
        name = e.primitive.name
        if name.startswith("tp_"):
            yield e, in_loop
            continue
        loop = in_loop or name in ("while", "scan")
        for s in sub_jaxprs(e):
            yield from kernel_eqns(s, loop)


def lanes_regions(eqns) -> dict[int, int]:
    """``{index of tp_lanes_begin: index of its tp_lanes_end}`` in one equation list."""
    out, stack = {}, []
    for i, e in enumerate(eqns):
        if e.primitive.name == "tp_lanes_begin":
            stack.append(i)
        elif e.primitive.name == "tp_lanes_end":
            if not stack:
                raise NumericUnsupported(
                    "a lanes() region closed in a different scope than it was opened"
                )
            out[stack.pop()] = i
    if stack:
        raise NumericUnsupported("a lanes() region that is not closed in the scope it was opened")
    return out


def raw_tensors(eqns, stored: set[str] | None = None, raw: set[str] | None = None) -> set[str]:
    """Tensors a program reads after writing them (program order; loops count twice)."""
    stored = set() if stored is None else stored
    raw = set() if raw is None else raw
    for e in eqns:
        name = e.primitive.name
        if name == "tp_store":
            stored.add(e.params["tensor"])
        elif name == "tp_load":
            if e.params["tensor"] in stored:
                raw.add(e.params["tensor"])
        else:
            subs = sub_jaxprs(e)
            reps = 2 if name in ("while", "scan") else 1
            for _ in range(reps):
                for s in subs:
                    raw_tensors(unwrap(s).eqns, stored, raw)
    return raw
