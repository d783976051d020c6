"""Run every obligation kind over a model, in a fixed order."""

from __future__ import annotations

import re
import time

from ...lowering._model import Model, Unsupported
from .._report import KINDS, Obligation
from . import _barrier, _bounds, _coverage, _overflow, _race, _ring, _shape, _split, _stored
from ._context import Analysis

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
}
_EXTRA = {"bounds": (_stored,)}  # further modules of a kind: stored index values


def check_static(model: Model, *, timeout_ms: int = 20_000,
                 kinds: tuple[str, ...] = KINDS) -> list[Obligation]:
    """Every static obligation of ``model`` with its verdict.

    ``timeout_ms`` bounds the whole check: once spent, the remaining queries
    answer ``unknown`` (never ``proved``).  ``kinds`` selects obligation kinds.
    """
    return check_static_timed(model, timeout_ms=timeout_ms, kinds=kinds)[0]


def check_static_timed(model: Model, *, timeout_ms: int = 20_000,
                       kinds: tuple[str, ...] = KINDS) -> tuple[list[Obligation], float]:
    """:func:`check_static` and the seconds spent in the solver."""
    an = Analysis(model, timeout_ms=timeout_ms)
    shape = _shape.check(an)  # always: it establishes that the domain admits sizes
    out = shape if "shape" in kinds else [o for o in shape if o.status != "proved"][:1]
    if an.domain_status != "consistent":
        if an.domain_status == "unknown":  # nothing can be trusted to be non-vacuous
            out += [Obligation(k, "unknown", f"{k} obligations", an.model_location(),
                               reason="whether the domain admits any sizes is unknown")
                    for k in kinds if k != "shape"]
        return out, an.solver_seconds
    for kind in kinds:
        if kind == "shape":
            continue
        t0 = time.perf_counter()
        got = _MODULES[kind].check(an)
        for extra in _EXTRA.get(kind, ()):
            got += extra.check(an)
        for ob in got:
            if not ob.seconds:
                ob.seconds = time.perf_counter() - t0
        out += got
    out += [o for o in _unsupported(model) if o.kind in kinds]
    hidden = {t: u for u in model.unsupported for t in u.tensors}
    if hidden:
        out = [_hidden_unknown(o, hidden) if o.kind in _BY_PHASE and o.status in (
            "proved", "violated") else o for o in out]
    if an.inexact_phases:
        out = [_phases_unknown(o, an) if o.kind in _BY_PHASE and o.status in (
            "proved", "violated") else o for o in out]
    return out, an.solver_seconds


_BY_PHASE = ("race", "coverage")  # obligations that compare phases (grid barriers passed)


def _hidden_unknown(ob: Obligation, hidden: dict) -> Obligation:
    """A race or coverage verdict about a tensor that an unmodelled region (a while loop with
    no exact trip count) also accesses: its writes are missing from the model, so unknown."""
    t = next((t for t in hidden if re.search(rf"(?<![\w.]){re.escape(t)}(?![\w(])", ob.message)),
             None)
    if t is None:
        return ob
    u = hidden[t]
    return Obligation(ob.kind, "unknown", ob.message if ob.status == "proved" else
                      f"{ob.message.split(' when ')[0]} (not decided)", ob.location,
                      reason=f"the unmodelled while loop at {u.loc.short} also accesses {t}",
                      seconds=ob.seconds, detail=dict(ob.detail))


def _phases_unknown(ob: Obligation, an: Analysis) -> Obligation:
    """A race or coverage verdict that rests on phase numbers the model does not have exactly
    (see :func:`._context.inexact_phase_loops`): unknown, naming the loop."""
    lp = an.inexact_phases[0]
    why = (f"the grid barriers per iteration of the loop at {lp.loc.short} change from one "
           "iteration to the next (a barrier in a loop whose trip count depends on the outer "
           "index, or under a branch on it): phases are not modelled exactly")
    return Obligation(ob.kind, "unknown", ob.message if ob.status == "proved" else
                      f"{ob.message.split(' when ')[0]} (not decided)", ob.location,
                      reason=why, seconds=ob.seconds,
                      hint="Hoist the barrier out of the inner loop, or give the inner loop a "
                           "trip count that is the same in every outer iteration.",
                      detail=dict(ob.detail))


def _unsupported(model: Model) -> list[Obligation]:
    out = []
    for node in model.walk():
        if not isinstance(node, Unsupported):
            continue
        w = node.what.lower()
        kind = ("split" if "split across lanes" in w
                else "ring" if any(k in w for k in ("ring", "fold", "rank", "sendrecv", "provenance"))
                else "bounds" if any(k in w for k in ("index", "mask", "load", "access"))
                else "barrier" if "barrier" in w else "shape")
        out.append(Obligation(kind, "unknown", f"unsupported construct at {node.loc.short}: "
                              f"{node.what}", node.loc,
                              reason=f"the lowering could not model it: {node.what}"))
    return out
