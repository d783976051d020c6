"""Source locations of replayed equations (part of :mod:`tileproof.pallas._body`)."""

from __future__ import annotations

import contextlib
import os

from ..spec._errors import Location
from ._read import loc_of

try:
    from jax._src import source_info_util as _siu
except ImportError:  # pragma: no cover
    _siu = None

_FALLBACK: list[Location] = []  # the kernel function's line, for equations that lost theirs
_SHIMS: dict = {}


def _traceback_at(loc: Location):
    """A JAX traceback whose innermost frame is ``loc`` (a one-line shim compiled there).

    JAX traces a ``custom_vjp`` backward kernel lazily, and its equations carry only the
    call site of the ``custom_vjp`` (frames inside JAX and tileproof): with no user frame
    a finding would have no line (and an int arithmetic check no site).  Those equations
    are re-bound under a traceback pointing at the kernel function's definition instead.
    """
    from jax._src.lib import xla_client

    key = (loc.file, loc.line)
    if key not in _SHIMS:
        ns: dict = {}
        src = "\n" * max(loc.line - 1, 0) + "def _shim(get): return get()\n"
        exec(compile(src, loc.file, "exec"), ns)
        _SHIMS[key] = ns["_shim"]
    return _SHIMS[key](xla_client.Traceback.get_traceback)


def _reaches(tb, file: str) -> bool:
    """Whether a traceback has a user frame in the kernel's file (a lazily traced backward
    kernel's equations carry the custom_vjp call site only)."""
    if tb is None:
        return False
    return any(os.path.abspath(f.file_name) == file for f in _siu.user_frames(tb))


def eqn_location(eqn, kernel_loc: Location) -> Location:
    """The equation's line in the kernel, or the kernel function's when the trace lost it."""
    tb = getattr(eqn.source_info, "traceback", None)
    if kernel_loc.line and not _reaches(tb, kernel_loc.file):
        return kernel_loc
    loc = loc_of(eqn)
    return loc if loc.line else kernel_loc


@contextlib.contextmanager
def _at(eqn):
    if _siu is None:
        yield
        return
    tb = eqn.source_info.traceback
    if _FALLBACK and _FALLBACK[-1].line and not _reaches(tb, _FALLBACK[-1].file):
        tb = _traceback_at(_FALLBACK[-1])
    with _siu.user_context(tb, name_stack=eqn.source_info.name_stack):
        yield


@contextlib.contextmanager
def at_location(loc: Location):
    """Bind what follows at ``loc`` (arithmetic of no equation: a block's start)."""
    if _siu is None or not loc.line:
        yield
        return
    with _siu.user_context(_traceback_at(loc)):
        yield
