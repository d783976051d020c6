"""Accesses inside branches, calls and single-trip loops: where the fast paths may reach.

The fast paths of :mod:`._plan` (a disjoint affine tiling read or written as a reshape)
need the access's start operands as concrete values per program, and an access that
runs *at most once* per program.  At the top level of a phase both hold by
construction.  They hold as well for an access nested in

* a ``cond`` branch or a call (``pjit``, ``custom_jvp_call``, ...): it runs once, or not
  at all, under a predicate that the executor folds into its flags and masks;
* a loop whose trip count is at most 1 at the sizes: a ``scan`` of length 1 or a
  ``while`` whose static trip bound (:meth:`~._plan.Plan.trip_bound`) is 1 (a
  ``fori_loop(0, cdiv(n, block))`` with ``n <= block``, as in layer norm and decode
  attention at most sizes).  The executor runs such a loop inline (its one iteration
  under the condition's predicate), so a store there can hand its tile out.

Inside a loop of several trips an access runs once per iteration: a load there is a fast
path when its starts are loop-invariant (the same tile every iteration), and a store is
*accumulated* (``Phase.accumulate``): its tile and mask are carried through the loop, each
iteration's write over the last, and placed after the phase (the TPU output write-back in
the grid loop, at the same block every iteration).

Inside them, a variable is *static* (a concrete value per program) when it is bound to a
static outer value: a branch's or call's operands, a loop's constants, and, for a
single-trip loop only, its carries' initial values (the values of the one iteration).
Not followed (fail closed: the general path runs): a ``while`` condition (it runs once
more than the body), loops of other trip counts, ``lanes`` regions, and a sub-jaxpr
reached from two places (its variables would have two values).
"""

from __future__ import annotations

from collections.abc import Iterator

from ...lowering._jaxcompat import scan_operands
from ._jaxpr import NumericUnsupported, lanes_regions, sub_jaxprs, unwrap

__all__ = ["descents", "nested_sites", "shared_jaxprs"]

_CALL_KEYS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


def shared_jaxprs(eqns) -> set[int]:
    """``id`` of every sub-jaxpr reached more than once from ``eqns`` (recursively)."""
    seen: dict[int, int] = {}

    def walk(es) -> None:
        for e in es:
            for s in sub_jaxprs(e):
                jx = unwrap(s)
                seen[id(jx)] = seen.get(id(jx), 0) + 1
                if seen[id(jx)] == 1:
                    walk(jx.eqns)

    walk(eqns)
    return {k for k, n in seen.items() if n > 1}


def single_trip(plan, e) -> bool:
    """Whether loop equation ``e`` runs its body at most once at the plan's sizes."""
    name = e.primitive.name
    if name == "scan":
        return int(e.params["length"]) == 1
    if name == "while":
        try:
            return plan.trip_bound(e) == 1
        except NumericUnsupported:
            return False
    return False


def descents(plan, e, shared: set[int]) -> list[tuple[object, list[tuple[object, object]], bool]]:
    """The sub-jaxprs of ``e`` (not a ``while`` condition, no ``lanes`` region, none reached
    twice), each with the pairs ``(inner variable, outer atom)`` that hold the same value
    and whether its accesses run at most once per program (see the module).  A loop of
    several trips is entered with its constants only: what is computed from them is
    loop-invariant, so static too, but its accesses run once per iteration."""
    name = e.primitive.name
    out = []

    def add(j, pairs, once: bool = True) -> None:
        jx = unwrap(j)
        try:
            if id(jx) in shared or lanes_regions(jx.eqns):
                return
        except NumericUnsupported:  # an unbalanced lanes region: the executor refuses it
            return
        consts = list(getattr(j, "consts", []) or [])
        pairs = [*pairs, *((v, _Const(c)) for v, c in zip(jx.constvars, consts))]
        out.append((j, pairs, once))

    if name == "cond":
        for br in e.params["branches"]:
            add(br, list(zip(unwrap(br).invars, e.invars[1:])))
    elif name == "while":
        p = e.params
        cn, bn = p["cond_nconsts"], p["body_nconsts"]
        body = p["body_jaxpr"]
        ins = unwrap(body).invars
        pairs = list(zip(ins[:bn], e.invars[cn : cn + bn]))
        if single_trip(plan, e):
            add(body, pairs + list(zip(ins[bn:], e.invars[cn + bn :])))
        else:
            add(body, pairs, once=False)
    elif name == "scan":
        consts, carry, _xs = scan_operands(e.params, list(e.invars))
        ins = unwrap(e.params["jaxpr"]).invars
        if single_trip(plan, e):
            n = len(consts) + len(carry)
            add(e.params["jaxpr"], list(zip(ins[:n], [*consts, *carry])))
        else:
            add(e.params["jaxpr"], list(zip(ins[: len(consts)], consts)), once=False)
    else:
        for k in _CALL_KEYS:
            j = e.params.get(k)
            if j is not None and len(unwrap(j).invars) == len(e.invars):
                add(j, list(zip(unwrap(j).invars, e.invars)))
                break
    return out


class _Const:
    """A closed jaxpr's constant, as an outer atom (like a literal's ``val``)."""

    def __init__(self, val):
        self.val = val


def nested_sites(plan, e, shared: set[int], once: bool = True) -> Iterator[tuple[object, bool]]:
    """Loads and stores nested in top-level equation ``e`` whose start operands may be
    static (see the module), each with whether it runs at most once per program (False:
    inside a loop of several trips, where only loop-invariant starts are static)."""
    for j, _pairs, one in descents(plan, e, shared):
        for inner in unwrap(j).eqns:
            if inner.primitive.name in ("tp_load", "tp_store"):
                yield inner, once and one
            elif not inner.primitive.name.startswith("tp_"):
                yield from nested_sites(plan, inner, shared, once and one)
