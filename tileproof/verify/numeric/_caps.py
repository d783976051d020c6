"""The numeric cap: how large a size point a numeric run takes on a CPU.

A leaf, so that the size points (:mod:`._sizes`) and the condition points
(:mod:`._conditions`), which call each other's results, both read it without
importing each other.
"""

from __future__ import annotations

__all__ = ["CAP_ELEMENTS", "CAP_PROGRAMS"]

CAP_ELEMENTS = 1 << 20  # per tensor
CAP_PROGRAMS = 1 << 12  # ranks x grid
