"""Listing helpers shared by the catalog lowering tests: what changed between two specs."""

import difflib

from tileproof.lowering import lower

_LISTINGS: dict[str, str] = {}


def listing(kernel) -> str:
    """The lowered listing, computed once per kernel name."""
    if kernel.name not in _LISTINGS:
        _LISTINGS[kernel.name] = lower(kernel).listing()
    return _LISTINGS[kernel.name]


def changed(correct, variant) -> tuple[list[str], list[str]]:
    """(lines only in the correct listing, lines only in the variant's), header aside."""
    a = listing(correct).splitlines()[1:]
    b = listing(variant).splitlines()[1:]
    diff = list(difflib.ndiff(a, b))
    return (
        [d[2:].strip() for d in diff if d.startswith("- ")],
        [d[2:].strip() for d in diff if d.startswith("+ ")],
    )
