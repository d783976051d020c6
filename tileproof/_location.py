"""A point in the user's source, ``file:line`` (:class:`Location`), and ``UNKNOWN``.

Kept apart from :mod:`tileproof.spec` (which imports JAX) so that the model and the
findings (:mod:`tileproof.model`, :mod:`tileproof.report`) can carry and print locations
without it; ``tileproof.spec.Location`` is this class.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["UNKNOWN", "Location"]


@dataclass(frozen=True)
class Location:
    """A point in the user's source: ``file:line``."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{_short(self.file)}:{self.line}"

    @property
    def short(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


UNKNOWN = Location("<unknown>", 0)


def _short(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path
