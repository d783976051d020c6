"""A Pallas front end: verify unmodified ``pl.pallas_call`` kernels (see docs/pallas.md).

``tileproof.pallas(fn, args=[tileproof.pallas.Arg(shape, dtype), ...], ...)``
traces ``fn`` on symbolic shapes and returns a kernel spec per ``pallas_call``
that ``tileproof check`` and :func:`tileproof.verify` treat like native specs.
The module itself is callable (``tp.pallas(...)``).
"""

import sys as _sys

from ._api import Arg as Arg
from ._api import _CallableModule
from ._api import pallas as pallas
from ._numeric import check_function as check_function
from ._numeric import function_runner as function_runner

__all__ = ["Arg", "check_function", "function_runner", "pallas"]

_sys.modules[__name__].__class__ = _CallableModule
