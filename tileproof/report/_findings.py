"""Findings are data: obligation results, numeric results, per-kernel and whole reports.

Checks produce these; formatters (text, JSON, SARIF) render them; nothing
here prints.  The JSON shape is a stable contract (docs/contracts.md): its
``status`` words stay as they were (:func:`~._status.legacy`), and each object
adds its precise ``outcome`` (:class:`~._status.Status`), its ``code``
(:mod:`._codes`) and, beside the ``counterexample``, its typed keys
(``counterexample_keys``, :mod:`._keys`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._location import UNKNOWN, Location
from ._codes import code_of
from ._keys import key_of, typed_keys
from ._status import NUMERIC_OUTCOMES, OBLIGATION_OUTCOMES, PASSING, Status, legacy

__all__ = [
    "FINDING_KINDS",
    "KINDS",
    "NUMERIC_STATUSES",
    "SKIPPABLE",
    "STATUSES",
    "Finding",
    "KernelReport",
    "NumericResult",
    "Obligation",
    "Report",
]

KINDS = (
    "shape",
    "bounds",
    "coverage",
    "overflow",
    "split",
    "barrier",
    "race",
    "ring",
    "reads",
    "unsupported",
)
# kinds a ``[tool.tileproof.skip]`` may name: an unsupported construct is never skipped (it
# stays ``unknown`` and fails the run: fail closed)
SKIPPABLE = tuple(k for k in KINDS if k != "unsupported")
# findings beyond the static obligations: a numeric run's, and a kernel that could not be
# verified at all (a spec, setting or internal error)
FINDING_KINDS = (*KINDS, "numeric", "spec")
# the JSON contract's ``status`` words (the precise word is ``outcome``: Status)
STATUSES = ("proved", "violated", "unknown", "skipped")
# ``error``: the numeric run itself failed (the reference or the body raised, the outputs do
# not fit the declaration, no inputs could be drawn, a construct the executor does not run):
# nothing was compared, so it fails the kernel.  ``skipped`` is only what the user asked for.
NUMERIC_STATUSES = ("matched", "mismatch", "error", "skipped")


@dataclass
class Finding:
    """One finding: a proof obligation and its verdict (or a numeric or kernel-level one).

    ``status`` is a :class:`Status` (a plain word is converted).  ``counterexample`` holds
    user-visible values only (sizes, program/lane/rank ids, loop indices, data values, the
    element), keyed by :class:`~._keys.CexKey` (typed, printing as before), and has been
    re-checked by concrete evaluation before a ``violated`` is reported.  ``reason`` says
    why an ``unknown`` is unknown, why a check was ``skipped`` or where the original of a
    ``duplicate`` is.  ``code`` is the kind's stable code (``TP102``).
    """

    kind: str
    status: Status
    message: str
    location: Location = UNKNOWN
    counterexample: dict[str, int] | None = None  # keys: CexKey (see typed_keys)
    reason: str = ""
    hint: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        assert self.kind in FINDING_KINDS, self.kind
        assert self.status in OBLIGATION_OUTCOMES or self.kind in ("numeric", "spec"), self.status

    def __setattr__(self, name: str, value: Any) -> None:
        # checks often attach the counterexample after building the finding: checked too
        if name == "counterexample":
            value = typed_keys(value)
        elif name == "status":
            value = Status(value)
        super().__setattr__(name, value)

    @property
    def code(self) -> str:
        return code_of(self.kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": legacy(self.status),
            "message": self.message,
            "location": str(self.location) if self.location is not UNKNOWN else None,
            "counterexample": _plain(self.counterexample),
            **({"reason": self.reason} if self.reason else {}),
            **({"hint": self.hint} if self.hint else {}),
            "code": self.code,
            "outcome": str(self.status),
            **(
                {
                    "counterexample_keys": [
                        {**key_of(k).to_json(), "value": v} for k, v in self.counterexample.items()
                    ]
                }
                if self.counterexample
                else {}
            ),
        }


# the static checks' name for a finding (every module of verify/static builds these)
Obligation = Finding


def _plain(ce: dict | None) -> dict[str, int] | None:
    return None if ce is None else {str(k): v for k, v in ce.items()}


@dataclass
class NumericResult:
    """The tiled execution against the reference, over the sizes tried."""

    status: Status
    sizes: list[dict[str, int]] = field(default_factory=list)
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    gradients: dict[str, Any] | None = None
    message: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.status = Status(self.status)
        assert self.status in NUMERIC_OUTCOMES, self.status

    def to_json(self) -> dict[str, Any]:
        return {
            "status": legacy(self.status),
            "sizes": self.sizes,
            "max_abs_err": self.max_abs_err,
            "max_rel_err": self.max_rel_err,
            "gradients": self.gradients,
            **({"message": self.message} if self.message else {}),
            **({"conditions": self.detail["conditions"]} if self.detail.get("conditions") else {}),
            **({"rerun": self.rerun} if self.rerun else {}),
            # with --devices: how many points ran with ranks on devices, how many vmapped
            **(
                {"placements": dict(self.detail["placements"])}
                if (self.detail or {}).get("placements")
                else {}
            ),
            "code": code_of("numeric"),
            "outcome": str(self.status),
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
        if any(o.status not in PASSING for o in self.obligations):
            return False
        return self.numeric is None or self.numeric.status in PASSING

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
            else {  # --static: no numeric run
                "status": legacy(Status.NOT_RUN),
                "sizes": [],
                "max_abs_err": None,
                "max_rel_err": None,
                "gradients": None,
                "code": code_of("numeric"),
                "outcome": str(Status.NOT_RUN),
            },
        }
        out["timings"] = self.timings()
        if self.index_bits is not None:
            out["index_bits"] = self.index_bits
            out["index_bits_from"] = self.index_bits_from
        if self.error:
            out["error"] = self.error
            out["error_code"] = code_of("spec")
        return out

    def findings(self) -> list[Finding]:
        """Everything this kernel's report says, as findings: a kernel error (``spec``),
        the obligations, and the numeric result (``numeric``, at the kernel's source)."""
        out: list[Finding] = []
        where = _location(self.source)
        if self.error:
            out.append(
                Finding("spec", Status.ERROR, self.error, where, detail={"internal": self.internal})
            )
        out.extend(self.obligations)
        num = self.numeric
        if num is not None:
            # what the text prints beside the status: the errors, the sizes, the rerun point
            detail: dict[str, Any] = {
                "sizes": num.sizes,
                "max_abs_err": num.max_abs_err,
                "max_rel_err": num.max_rel_err,
            }
            if num.rerun:
                detail["rerun"] = num.rerun
            out.append(Finding("numeric", num.status, num.message, where, detail=detail))
        return out


@dataclass
class Report:
    kernels: list[KernelReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(k.ok for k in self.kernels)

    def summary(self) -> dict[str, Any]:
        counts = {s: 0 for s in STATUSES}
        outcomes = {str(s): 0 for s in OBLIGATION_OUTCOMES}
        for k in self.kernels:
            for o in k.obligations:
                counts[legacy(o.status)] += 1
                outcomes[str(o.status)] += 1
        numeric = {s: 0 for s in NUMERIC_STATUSES}
        numeric_outcomes = {str(s): 0 for s in NUMERIC_OUTCOMES}
        for k in self.kernels:
            status = k.numeric.status if k.numeric else Status.NOT_RUN
            numeric[legacy(status)] += 1
            numeric_outcomes[str(status)] += 1
        return {
            "kernels": len(self.kernels),
            "failed_kernels": sum(1 for k in self.kernels if not k.ok),
            "obligations": counts,
            "numeric": numeric,
            "errors": sum(1 for k in self.kernels if k.error),
            "ok": self.ok,
            "outcomes": {"obligations": outcomes, "numeric": numeric_outcomes},
        }

    def to_json(self) -> dict[str, Any]:
        return {"kernels": [k.to_json() for k in self.kernels], "summary": self.summary()}


def _location(source: str) -> Location:
    """A kernel's ``file:line`` source as a :class:`Location` (``UNKNOWN`` if it is none)."""
    file, _, line = source.rpartition(":")
    return Location(file, int(line)) if file and line.isdigit() else UNKNOWN
