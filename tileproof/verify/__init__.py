"""Verification: static obligations decided by z3, numeric matching against the reference, reports.

The package itself is callable — ``tileproof.verify(kernel)`` — while its
sub-packages (``tileproof.verify.static``, ``tileproof.verify.numeric``) stay
importable.
"""

import sys as _sys
import types as _types

from ..report import KINDS as KINDS
from ..report import KernelReport as KernelReport
from ..report import NumericResult as NumericResult
from ..report import Obligation as Obligation
from ..report import Report as Report
from ._api import verify as verify
from ._api import verify_kernel as verify_kernel
from ._api import verify_many as verify_many


class _CallableModule(_types.ModuleType):
    def __call__(self, kernel, **kwargs) -> Report:
        return verify(kernel, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
