"""Findings are data: obligation results, numeric results, per-kernel and whole reports.

Checks produce these; formatters (text, JSON, SARIF) render them; nothing
here prints.  The JSON shape is a stable contract (docs/contracts.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec._errors import UNKNOWN, Location

__all__ = [
    "KINDS",
    "NUMERIC_STATUSES",
    "SKIPPABLE",
    "STATUSES",
    "KernelReport",
    "NumericResult",
    "Obligation",
    "Report",
]

KINDS = ("shape", "bounds", "coverage", "overflow", "split", "barrier", "race", "ring",
         "reads", "unsupported")
# kinds a ``[tool.tileproof.skip]`` may name: an unsupported construct is never skipped (it
# stays ``unknown`` and fails the run: fail closed)
SKIPPABLE = tuple(k for k in KINDS if k != "unsupported")
STATUSES = ("proved", "violated", "unknown", "skipped")
# ``error``: the numeric run itself failed (the reference or the body raised, the outputs do
# not fit the declaration, no inputs could be drawn, a construct the executor does not run):
# nothing was compared, so it fails the kernel.  ``skipped`` is only what the user asked for.
NUMERIC_STATUSES = ("matched", "mismatch", "error", "skipped")


@dataclass
class Obligation:
    """One proof obligation and its verdict.

    ``counterexample`` holds user-visible values only (sizes, program/lane/rank
    ids, loop indices, data values, the element) and has been re-checked by
    concrete evaluation before a ``violated`` is reported.  ``reason`` says why
    an ``unknown`` is unknown or why a check was ``skipped``.
    """

    kind: str
    status: str
    message: str
    location: Location = UNKNOWN
    counterexample: dict[str, int] | None = None
    reason: str = ""
    hint: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        assert self.kind in KINDS, self.kind
        assert self.status in STATUSES, self.status

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "location": str(self.location) if self.location is not UNKNOWN else None,
            "counterexample": self.counterexample,
            **({"reason": self.reason} if self.reason else {}),
            **({"hint": self.hint} if self.hint else {}),
        }


@dataclass
class NumericResult:
    """The tiled execution against the reference, over the sizes tried."""

    status: str
    sizes: list[dict[str, int]] = field(default_factory=list)
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    gradients: dict[str, Any] | None = None
    message: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        assert self.status in NUMERIC_STATUSES, self.status

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sizes": self.sizes,
            "max_abs_err": self.max_abs_err,
            "max_rel_err": self.max_rel_err,
            "gradients": self.gradients,
            **({"message": self.message} if self.message else {}),
            **({"conditions": self.detail["conditions"]} if self.detail.get("conditions") else {}),
            **({"rerun": self.rerun} if self.rerun else {}),
            # with --devices: how many points ran with ranks on devices, how many vmapped
            **({"placements": dict(self.detail["placements"])}
               if (self.detail or {}).get("placements") else {}),
        }

    @property
    def rerun(self) -> dict[str, Any] | None:
        """For a mismatch: the size point, its seed, the small index tensors' values and
        the command that runs exactly that point again."""
        r = (self.detail or {}).get("rerun")
        return dict(r) if r else None


@dataclass
class KernelReport:
    name: str
    source: str
    obligations: list[Obligation] = field(default_factory=list)
    numeric: NumericResult | None = None
    lowering_seconds: float = 0.0
    solver_seconds: float = 0.0
    error: str | None = None  # a spec error (or an internal error) that stopped verification
    cached: bool = False  # the static results came from the proof cache
    numeric_cached: bool = False  # the numeric result came from the numeric cache
    sizes: list[str] = field(default_factory=list)  # the kernel's size symbols (for messages)
    internal: bool = False  # ``error`` is a bug in tileproof, not in the spec
    # the index width offsets were checked in, and where it came from: "kernel" (declared
    # index_bits=...), "config" ([tool.tileproof] index-bits) or "default" (32)
    index_bits: int | None = None
    index_bits_from: str = ""

    @property
    def ok(self) -> bool:
        """Fails closed: only proved (or configured-skipped) obligations and a numeric run that
        matched, or was skipped on request, pass."""
        if self.error:
            return False
        if any(o.status not in ("proved", "skipped") for o in self.obligations):
            return False
        return self.numeric is None or self.numeric.status in ("matched", "skipped")

    def timings(self) -> dict[str, float]:
        """Seconds this run spent lowering, proving (0 when answered from the proof cache)
        and running numerics (0 when not run)."""
        return {
            "lowering_s": round(self.lowering_seconds, 4),
            "static_s": round(self.solver_seconds, 4),
            "numeric_s": round(self.numeric.seconds, 4) if self.numeric is not None else 0.0,
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "obligations": [o.to_json() for o in self.obligations],
            "numeric": self.numeric.to_json()
            if self.numeric
            else {
                "status": "skipped",
                "sizes": [],
                "max_abs_err": None,
                "max_rel_err": None,
                "gradients": None,
            },
        }
        out["timings"] = self.timings()
        if self.index_bits is not None:
            out["index_bits"] = self.index_bits
            out["index_bits_from"] = self.index_bits_from
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class Report:
    kernels: list[KernelReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(k.ok for k in self.kernels)

    def summary(self) -> dict[str, Any]:
        counts = {s: 0 for s in STATUSES}
        for k in self.kernels:
            for o in k.obligations:
                counts[o.status] += 1
        numeric = {s: 0 for s in NUMERIC_STATUSES}
        for k in self.kernels:
            numeric[k.numeric.status if k.numeric else "skipped"] += 1
        return {
            "kernels": len(self.kernels),
            "failed_kernels": sum(1 for k in self.kernels if not k.ok),
            "obligations": counts,
            "numeric": numeric,
            "errors": sum(1 for k in self.kernels if k.error),
            "ok": self.ok,
        }

    def to_json(self) -> dict[str, Any]:
        return {"kernels": [k.to_json() for k in self.kernels], "summary": self.summary()}
