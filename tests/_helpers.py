"""Helpers several test files share (one definition each, rather than a copy per file).

Kernels that test files and benchmarks share live in ``tests/specs/kernels.py``; the
listing diffs of the catalog lowering tests in ``tests/specs/listings.py``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

# The obligation kinds the JSON contract (docs/contracts.md) has named from the start: the
# package may add kinds (``reads``, ``unsupported``), never drop or rename one of these.
CONTRACT_KINDS = ("shape", "bounds", "coverage", "overflow", "split", "barrier", "race", "ring")


def line_of(source: str | Path | ModuleType, marker: str) -> int:
    """The line of ``source`` (a file, or a module such as a catalog kernel's) holding
    ``marker``, so that tests name lines by their content rather than pinning numbers that
    formatting or an edit above them moves.  Lines that call this helper (which spell the
    marker too) are passed over; exactly one other line must hold it."""
    if isinstance(source, ModuleType):
        text, name = inspect.getsource(source), source.__name__
    else:
        text, name = Path(source).read_text(), str(source)
    found = [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if marker in line and "line_of(" not in line
    ]
    assert len(found) == 1, f"{marker!r} is on lines {found} of {name}"
    return found[0]
