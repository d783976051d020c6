"""One status vocabulary for the whole package: :class:`Status`.

Every obligation, numeric result and gradient comparison carries one of these words.
``skipped`` used to mean three things; each now has its own word:

- ``skipped``: the user asked for it not to be checked (``[tool.tileproof.skip]``,
  ``numeric={"skip": "why"}``), with their reason;
- ``duplicate``: the same finding is already reported at another site (a zero divisor
  reported once for every site that divides by it), so it is not re-checked here;
- ``not_run``: this run did not include it (``--static``: no numeric run; gradients
  when the values already mismatched);
- ``not_applicable``: there is nothing to compare (gradients of a kernel without
  floating-point inputs and outputs).

The JSON contract (docs/contracts.md) keeps its ``status`` words: the last three read
``skipped`` there, as before (:func:`legacy`), and the precise word is added beside it as
``outcome``.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "NUMERIC_OUTCOMES",
    "OBLIGATION_OUTCOMES",
    "PASSING",
    "Status",
    "legacy",
]


class Status(str, Enum):
    """A verdict or an outcome; compares (and serialises) as its word: ``Status.PROVED ==
    "proved"``.

    Spelled ``(str, Enum)`` with ``__str__``/``__format__`` returning the word, which is what
    ``enum.StrEnum`` does: ``StrEnum`` only exists from Python 3.11 and the package supports 3.10.
    """

    # static obligations
    PROVED = "proved"
    VIOLATED = "violated"
    UNKNOWN = "unknown"
    # numeric runs (values, gradients)
    MATCHED = "matched"
    MISMATCH = "mismatch"
    ERROR = "error"
    # not decided here, each for its own reason (see the module's docstring)
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    NOT_RUN = "not_run"
    NOT_APPLICABLE = "not_applicable"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return self.value.__format__(format_spec)


OBLIGATION_OUTCOMES = (
    Status.PROVED,
    Status.VIOLATED,
    Status.UNKNOWN,
    Status.SKIPPED,
    Status.DUPLICATE,
)
NUMERIC_OUTCOMES = (Status.MATCHED, Status.MISMATCH, Status.ERROR, Status.SKIPPED, Status.NOT_RUN)
# what lets a kernel pass: proofs and matches, and what was asked not to be checked or is
# checked elsewhere (a duplicate's original carries the verdict); never unknown or error
PASSING = frozenset(
    {
        Status.PROVED,
        Status.MATCHED,
        Status.SKIPPED,
        Status.DUPLICATE,
        Status.NOT_RUN,
        Status.NOT_APPLICABLE,
    }
)

_LEGACY = {Status.DUPLICATE: "skipped", Status.NOT_RUN: "skipped", Status.NOT_APPLICABLE: "skipped"}


def legacy(status: str) -> str:
    """The word the JSON contract's ``status`` field has always used for ``status``."""
    return _LEGACY.get(Status(status), str(status))
