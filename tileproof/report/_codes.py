"""Stable finding codes, like ruff's and mypy's: one per obligation kind and finding class.

A code never changes meaning and is never reused; a new obligation kind takes the next
free ``TP1xx`` number.  Text findings end ``[TPnnn]``, SARIF has one rule per code, the
JSON carries ``code`` on every obligation; docs/contracts.md lists them (a test checks
that it lists exactly these).
"""

from __future__ import annotations

__all__ = ["CODES", "RULE_TEXT", "code_of"]

# kind -> code.  Static obligation kinds are TP1xx, numeric findings TP2xx, a kernel that
# could not be verified at all (spec, setting or internal error) TP001.
CODES: dict[str, str] = {
    "spec": "TP001",
    "shape": "TP101",
    "bounds": "TP102",
    "coverage": "TP103",
    "overflow": "TP104",
    "split": "TP105",
    "barrier": "TP106",
    "race": "TP107",
    "ring": "TP108",
    "reads": "TP109",
    "unsupported": "TP110",
    "numeric": "TP201",
}

RULE_TEXT: dict[str, str] = {
    "shape": "declared shapes match, sizes are non-negative, no division by zero",
    "bounds": "every access is in bounds (masked ones under their mask)",
    "coverage": "outputs are written exactly once; scratch is written before it is read",
    "overflow": "offsets fit the declared index width",
    "split": "split tile dimensions are divisible by the lane count",
    "barrier": "every participant reaches the same barriers, and all fit on the machine",
    "race": "two programs of one phase never write the same element",
    "ring": "every rank folds every chunk exactly once; sends match receives",
    "reads": "a reduction reads every element of the input region it declares",
    "unsupported": "every construct is modelled exactly (else what depends on it is unknown)",
    "numeric": "the tiled execution matches the reference (values and gradients)",
    "spec": "the kernel spec lowers to a schedule model",
}


def code_of(kind: str) -> str:
    """The code of a finding of ``kind`` (an obligation kind, ``numeric`` or ``spec``)."""
    return CODES[kind]
