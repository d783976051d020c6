"""Spec errors that point at the user's own file and line.

Errors are part of the product: a kernel author should read one paragraph
naming *their* file and line and what to do, never a JAX traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from types import FrameType

from .._location import UNKNOWN, Location
from ..errors import TileproofError

__all__ = ["UNKNOWN", "LocatedError", "Location", "SpecError", "caller_location"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Frames inside these folders are tileproof's machinery, never the user's code.
_INTERNAL = tuple(
    os.path.join(_PKG_DIR, d) + os.sep for d in ("spec", "lowering", "verify", "shapes", "model")
)


_CONTEXTLIB = contextlib.__file__  # frames of @contextmanager's machinery are not the user's


def _is_internal(filename: str) -> bool:
    if not filename.startswith("<"):  # imported through a path with `..` or a relative one
        filename = os.path.abspath(filename)
    if filename.startswith(_INTERNAL) or filename == _CONTEXTLIB:  # `with tp.lanes(...)`
        return True
    return any(
        part in filename for part in (f"{os.sep}jax{os.sep}", f"{os.sep}jaxlib{os.sep}")
    ) or ("<frozen" in filename or filename.startswith("<"))


def caller_location(depth_limit: int = 64) -> Location:
    """The innermost stack frame in user code (outside tileproof's layers and JAX)."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(depth_limit):
        if frame is None:
            break
        if not _is_internal(frame.f_code.co_filename):
            return Location(os.path.abspath(frame.f_code.co_filename), frame.f_lineno)
        frame = frame.f_back
    return UNKNOWN


def location_from_traceback(tb) -> Location:
    """The innermost user frame of a traceback (for exceptions raised while tracing)."""
    best = UNKNOWN
    while tb is not None:
        fn = tb.tb_frame.f_code.co_filename
        if not _is_internal(fn):
            best = Location(os.path.abspath(fn), tb.tb_lineno)
        tb = tb.tb_next
    return best


class LocatedError(TileproofError):
    """An error worded for the user at a place in their files: ``file:line: error: ... hint``.

    The CLI turns every one of them into exit 2 (a usage, configuration or spec error)."""

    def __init__(self, message: str, location: Location | None = None, hint: str = ""):
        self.message = message
        self.location = location or UNKNOWN
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location is not UNKNOWN else ""
        text = f"{where}error: {self.message}"
        if self.hint:
            text += f" {self.hint}"
        return text


class SpecError(LocatedError):
    """A kernel spec that cannot be lowered, with the user's location and a fix."""
