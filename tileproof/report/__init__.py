"""Findings as data, and how they are rendered.

- :mod:`._status` — one status vocabulary for the whole package (:class:`Status`);
- :mod:`._codes` — stable finding codes (``TP102``), one per obligation kind and finding;
- :mod:`._keys` — typed counterexample keys (:class:`CexKey`);
- :mod:`._findings` — :class:`Finding` (alias ``Obligation``), :class:`NumericResult`,
  :class:`KernelReport`, :class:`Report`; their ``to_json`` is the JSON contract;
- :mod:`._text`, :mod:`._sarif` — text with ``[code]`` and SARIF 2.1.0 (one rule per code).

Checks produce findings; nothing here proves, runs or reads a spec (no JAX, no z3).
"""

from ._codes import CODES as CODES
from ._codes import code_of as code_of
from ._findings import FINDING_KINDS as FINDING_KINDS
from ._findings import KINDS as KINDS
from ._findings import Finding as Finding
from ._findings import KernelReport as KernelReport
from ._findings import NumericResult as NumericResult
from ._findings import Obligation as Obligation
from ._findings import Report as Report
from ._keys import CexKey as CexKey
from ._sarif import to_sarif as to_sarif
from ._status import Status as Status
from ._text import kernel_text as kernel_text
from ._text import render as render
from ._text import to_text as to_text
