"""Run every obligation kind over a model, in a fixed order."""

from __future__ import annotations

import re
import time

from ...model import Model
from ...report import KINDS, Obligation
from . import (
    _asserted,
    _barrier,
    _bounds,
    _claim,
    _coverage,
    _overflow,
    _race,
    _reads,
    _ring,
    _shape,
    _split,
    _stored,
)
from ._context import CHECK_BUDGET, Analysis

__all__ = ["check_static", "check_static_timed"]

_MODULES = {
    "shape": _shape,
    "bounds": _bounds,
    "coverage": _coverage,
    "overflow": _overflow,
    "split": _split,
    "barrier": _barrier,
    "race": _race,
    "ring": _ring,
    "reads": _reads,
}
# further modules of a kind: stored index values; the declared writes of updated inputs; a
# front end's rules of that kind (a DMA's ordering, tileproof/pallas/_dma.py)
_EXTRA = {
    "bounds": (_stored, _asserted.BOUNDS),
    "coverage": (_reads.WRITES, _asserted.COVERAGE),
    "race": (_asserted.RACE,),
}


def check_static(
    model: Model,
    *,
    timeout_ms: int | None = None,
    kinds: tuple[str, ...] = KINDS,
    budget: int = CHECK_BUDGET,
) -> list[Obligation]:
    """Every static obligation of ``model`` with its verdict.

    The budget that bounds the check is deterministic (a number of solver checks, each
    under z3's resource limit; see :class:`._context.Analysis`): verdicts do not depend
    on machine load.  ``timeout_ms`` adds an opt-in wall-clock cap for the whole check
    (the ``solver-timeout-ms`` setting); once spent, the remaining queries answer
    ``unknown`` (never ``proved``), so with it set a loaded machine may answer ``unknown``
    where an idle one proves.  ``kinds`` selects obligation kinds; ``budget`` is the number
    of solver checks (``unknown`` past it, with the budget named in the reason).
    """
    return check_static_timed(model, timeout_ms=timeout_ms, kinds=kinds, budget=budget)[0]


def check_static_timed(
    model: Model,
    *,
    timeout_ms: int | None = None,
    kinds: tuple[str, ...] = KINDS,
    budget: int = CHECK_BUDGET,
) -> tuple[list[Obligation], float]:
    """:func:`check_static` and the seconds spent in the solver.

    Unsupported constructs are reported whatever ``kinds`` selects (fail closed), and while
    a model has one, no obligation that may depend on it is ``proved``: see
    :func:`_unsupported`.
    """
    an = Analysis(model, timeout_ms=timeout_ms, budget=budget)
    shape = _shape.check(an)  # always: it establishes that the domain admits sizes
    out = shape if "shape" in kinds else [o for o in shape if o.status != "proved"][:1]
    if an.domain_status != "consistent":
        if an.domain_status == "unknown":  # nothing can be trusted to be non-vacuous
            out += [
                Obligation(
                    k,
                    "unknown",
                    f"{k} obligations",
                    an.model_location(),
                    reason="whether the domain admits any sizes is unknown",
                )
                for k in kinds
                if k not in ("shape", "unsupported")
            ]
        return out + _unsupported(model, out, kinds), an.solver_seconds
    if "shape" in kinds:  # the kernel's own divisibility claims (pl.multiple_of)
        out += _claim.check(an)
    for kind in kinds:
        if kind in ("shape", "unsupported"):
            continue
        t0 = time.perf_counter()
        got = _MODULES[kind].check(an)
        for extra in _EXTRA.get(kind, ()):
            got += extra.check(an)
        for ob in got:
            if not ob.seconds:
                ob.seconds = time.perf_counter() - t0
        out += got
    hidden = {t: u for u in model.unsupported for t in u.tensors}
    if hidden:
        out = [
            _hidden_unknown(o, hidden)
            if o.kind in (*_BY_PHASE, "reads") and o.status in ("proved", "violated")
            else o
            for o in out
        ]
    if an.inexact_phases:
        out = [
            _phases_unknown(o, an)
            if o.kind in _BY_PHASE and o.status in ("proved", "violated")
            else o
            for o in out
        ]
    return out + _unsupported(model, out, kinds), an.solver_seconds


_BY_PHASE = ("race", "coverage")  # obligations that compare phases (grid barriers passed)


def _hidden_unknown(ob: Obligation, hidden: dict) -> Obligation:
    """A race or coverage verdict about a tensor that an unmodelled region (a while loop with
    no exact trip count) also accesses: its writes are missing from the model, so unknown."""
    t = next(
        (t for t in hidden if re.search(rf"(?<![\w.]){re.escape(t)}(?![\w(])", ob.message)), None
    )
    if t is None:
        return ob
    u = hidden[t]
    return Obligation(
        ob.kind,
        "unknown",
        ob.message if ob.status == "proved" else f"{ob.message.split(' when ')[0]} (not decided)",
        ob.location,
        reason=f"the unmodelled while loop at {u.loc.short} also accesses {t}",
        seconds=ob.seconds,
        detail=dict(ob.detail),
    )


def _phases_unknown(ob: Obligation, an: Analysis) -> Obligation:
    """A race or coverage verdict that rests on phase numbers the model does not have exactly
    (see :func:`._context.inexact_phase_loops`): unknown, naming the loop."""
    lp = an.inexact_phases[0]
    why = (
        f"the grid barriers per iteration of the loop at {lp.loc.short} change from one "
        "iteration to the next (a barrier in a loop whose trip count depends on the outer "
        "index, or under a branch on it): phases are not modelled exactly"
    )
    return Obligation(
        ob.kind,
        "unknown",
        ob.message if ob.status == "proved" else f"{ob.message.split(' when ')[0]} (not decided)",
        ob.location,
        reason=why,
        seconds=ob.seconds,
        hint="Hoist the barrier out of the inner loop, or give the inner loop a "
        "trip count that is the same in every outer iteration.",
        detail=dict(ob.detail),
    )


# shape obligations about the declarations alone (the domain, tensor and grid extents, divisors
# in them): no construct of the body can change them.  Matched by message, so a reworded
# message only makes them fail closed (demoted with the rest), never wrongly kept.
_DECLARATION_ONLY = re.compile(
    r"^(the domain admits|tensor \w+ .*has non-negative extents|grid .*has non-negative extents|"
    r"no divisor of (the grid extents|the shape of \w+|the value range of \w+) is zero)"
)


# an access left out because its index or mask is unmodelled (the lowering's wording); a
# reworded message only loses the narrowing below (everything is demoted), never soundness
_ONE_ACCESS = re.compile(r"^(?:an index of|the mask of an access to) (\w+) depends on ")
# kinds whose obligations are each about the accesses of one tensor (``detail["tensor"]``)
_PER_TENSOR = ("bounds", "overflow", "race", "coverage", "reads")
# kinds that a left-out access cannot change: barriers and splits are other nodes, and a
# left-out access takes its divisors with it (the unsupported item stands for them)
_NOT_ACCESS = ("shape", "split", "barrier")


# what the timing of a copy can change (``Unsupported.only``): which elements are written
# before a read (coverage) and whether two writes meet (race); an access's bounds, offsets
# and what it reads are the same whenever the copy lands
_ORDERING = ("coverage", "race")

_LANE_SPLIT = "split across lanes"  # the lanes' shares of a floating tile are not followed


def _scope(model: Model, node) -> tuple[str, set[str]] | None:
    """What an unsupported construct can change: ``("tensors", names)``, ``("kind", {k})``,
    ``("ordering", names)`` (the coverage and race obligations about those names)
    or None (everything).

    An access left out on its own (its index or mask unmodelled) is scoped to its tensor --
    only when that tensor holds floating data: a left-out store into an index tensor could
    break the value range that other tensors' proofs assume for its reads.  A floating tile
    whose lanes' shares are not followed (``split across lanes``) only hides ``split``
    facts: data values are abstract everywhere else.  A front end may name the only
    tensors a construct can change (``Unsupported.only``: a DMA whose completion is not
    modelled changes what its destinations hold and when, nothing else) -- again only
    floating tensors (a name that is no tensor, a semaphore array, scopes its own rules).  Anything else (a loop bound, a branch
    or exit condition, a rank, a while loop that may hold barriers) drops or ungates a whole
    region, and may change every verdict.
    """
    if _LANE_SPLIT in node.what:
        return ("kind", {"split"})
    only = getattr(node, "only", ())
    if only:  # a front end names what the construct can change (a DMA's completion)
        for t in only:
            decl = model.tensors.get(t)
            if decl is not None and getattr(decl, "is_index", True):
                return None  # index values feed other tensors' proofs: everything
        return ("ordering", set(only))
    m = _ONE_ACCESS.match(node.what)
    if not m:
        return None
    decl = model.tensors.get(m.group(1))
    if decl is None or getattr(decl, "is_index", True):
        return None
    return ("tensors", {m.group(1)})


def _depends(o: Obligation, scope: tuple[str, set[str]] | None) -> bool:
    """May obligation ``o`` be changed by an unsupported construct of this scope?"""
    if o.kind == "shape" and _DECLARATION_ONLY.match(o.message):
        return False
    if scope is None:
        return True
    what, names = scope
    if what == "kind":
        return o.kind in names
    if what == "ordering":  # when a DMA's copy lands: what its memory holds, and when
        t = (o.detail or {}).get("tensor")
        return o.kind in _ORDERING and (t is None or t in names)
    if o.kind in _NOT_ACCESS:
        return False
    if o.kind in _PER_TENSOR:
        t = (o.detail or {}).get("tensor")
        return t is None or t in names
    return True  # ring and any kind added later: not scoped


def _inexact(model: Model, obligations: list[Obligation]) -> None:
    """Refutations over an over-approximated value are unconfirmed (in place).

    A data symbol marked ``inexact`` (a loop carry advanced by data-dependent steps, see
    ``lowering._loops._carried_steps``) ranges over a superset of what the kernel can
    compute: a ``proved`` verdict holds for every real value, a ``violated`` one may rest on
    a value no run produces.  Every refutation of such a kernel becomes ``unknown``, its
    would-be counterexample kept in the reason (fail closed: which refutations the value
    reaches is not traced).
    """
    approx = sorted(
        (d for d in model.data.values() if getattr(d, "inexact", "")),
        key=lambda d: (d.loc.line or 0, d.name),
    )
    if not approx:
        return
    d = approx[0]
    more = f" (and {len(approx) - 1} more)" if len(approx) > 1 else ""
    for o in obligations:
        if o.status != "violated":
            continue
        ce = ", ".join(f"{k}={v}" for k, v in (o.counterexample or {}).items())
        o.reason = (
            f"it may rest on a value the model over-approximates: {d.inexact} at "
            f"{d.loc.short}{more} (this finding holds on the model" + (f": {ce})" if ce else ")")
        )
        o.message = f"unconfirmed: {o.message}"
        o.status, o.counterexample = "unknown", None
        o.detail = {**(o.detail or {}), "inexact": True}


def _unsupported(
    model: Model, obligations: list[Obligation], kinds: tuple[str, ...] = KINDS
) -> list[Obligation]:
    """Fail closed on constructs the lowering could not model exactly.

    Each :class:`~tileproof.model.Unsupported` item becomes its own ``unsupported``
    obligation (``unknown``, at the construct's line, naming it).  The model then lacks what
    the construct governs -- an access whose index or mask is unmodelled is left out, and so
    is everything under an unmodelled loop bound, branch condition or early exit -- so the
    verdicts that may depend on it may be wrong both ways: a ``proved`` one may have missed
    an access, a ``violated`` one may rest on a store that was dropped ("never written") or
    on programs that should have left early.  Those become ``unknown`` with the construct as
    their reason (a would-be counterexample is kept in the reason).  Which ones: see
    :func:`_scope` -- the obligations about the tensor of a left-out access, else all but
    the declaration-only shape facts.  A left-out access also gets its own ``bounds`` and
    ``overflow`` obligations (of the selected ``kinds``), ``unknown``, so that no kind
    reads as all proved while one of its accesses was never checked.  (Rewrites the
    obligations in place; returns the new ones.)
    """
    _inexact(model, obligations)
    items = model.unsupported
    if not items:
        return []
    scopes = [_scope(model, n) for n in items]
    for o in obligations:
        if o.status not in ("proved", "violated"):
            continue
        node = next((n for n, sc in zip(items, scopes) if _depends(o, sc)), None)
        if node is None:
            continue
        more = f" (and {len(items) - 1} more unsupported construct(s))" if len(items) > 1 else ""
        why = (
            f"it may depend on a construct the model cannot represent exactly: "
            f"{node.what} at {node.loc.short}{more}"
        )
        if o.status == "violated":
            ce = ", ".join(f"{k}={v}" for k, v in (o.counterexample or {}).items())
            why += " (this finding holds on the model without it" + (f": {ce})" if ce else ")")
            o.message = f"unconfirmed: {o.message}"
        o.status, o.reason, o.counterexample = "unknown", why, None
        o.detail = {**(o.detail or {}), "unsupported": True}
    out = []
    for node, sc in zip(items, scopes):
        scope = (
            "every obligation that may depend on it"
            if sc is None
            else f"the obligations about {', '.join(sorted(sc[1]))}"
            if sc[0] == "tensors"
            else f"the coverage and race obligations about {', '.join(sorted(sc[1]))}"
            if sc[0] == "ordering"
            else f"the {', '.join(sorted(sc[1]))} obligations"
        )
        out.append(
            Obligation(
                "unsupported",
                "unknown",
                f"unsupported construct at {node.loc.short}: {node.what}",
                node.loc,
                reason=f"the lowering cannot model it exactly: {node.what}; {scope} are unknown",
                hint="Rewrite it with constructs tileproof models (see the report's other "
                "unknowns for what it affects).",
                detail={
                    "construct": node.what,
                    "affects": sorted(sc[1])
                    if sc is not None and sc[0] in ("tensors", "ordering")
                    else None,
                    "kinds": sorted(sc[1]) if sc is not None and sc[0] == "kind" else None,
                },
            )
        )
        if sc is not None and sc[0] == "tensors":
            (t,) = sc[1]
            for kind, what in (("bounds", "stays in bounds"), ("overflow", "offsets fit")):
                if kind in kinds:
                    out.append(
                        Obligation(
                            kind,
                            "unknown",
                            f"the access to {t} at {node.loc.short} {what}",
                            node.loc,
                            reason=f"not checked: {node.what} at {node.loc.short}",
                            detail={"tensor": t, "unsupported": True},
                        )
                    )
    return out
