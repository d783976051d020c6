"""Verification: static obligations decided by z3, numeric matching against the reference, reports.

The package itself is callable — ``tileproof.verify(kernel)`` — while its
sub-packages (``tileproof.verify.static``, ``tileproof.verify.numeric``) stay
importable.
"""

import sys as _sys
import types as _types

from ._api import verify as verify
from ._api import verify_kernel as verify_kernel
from ._api import verify_many as verify_many
from ._report import KINDS as KINDS
from ._report import KernelReport as KernelReport
from ._report import NumericResult as NumericResult
from ._report import Obligation as Obligation
from ._report import Report as Report


class _CallableModule(_types.ModuleType):
    def __call__(self, kernel, **kwargs) -> Report:
        return verify(kernel, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
