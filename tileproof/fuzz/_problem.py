"""A problem the fuzzer found: an unsound verdict, a wrong counterexample, a disagreement.

Its own module because both the static differential (:mod:`._check`) and the
executor cross-check (:mod:`._exec`, which :mod:`._check` calls) report them:
neither has to import the other to build one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem"]


@dataclass
class Problem:
    what: str  # unsound | irreproducible | disagreement | error
    key: tuple | None
    message: str
    sizes: dict | None = None
    idx: list | None = None

    def __str__(self) -> str:
        at = f" at {self.sizes}" if self.sizes is not None else ""
        fill = f" idx={self.idx}" if self.idx is not None else ""
        return f"{self.what.upper()} {self.key}: {self.message}{at}{fill}"
