"""Moved to :mod:`tileproof.report` (findings as data); kept so that existing imports work."""

from ..report._findings import *  # noqa: F403
from ..report._findings import FINDING_KINDS as FINDING_KINDS
from ..report._findings import KINDS as KINDS
from ..report._findings import NUMERIC_STATUSES as NUMERIC_STATUSES
from ..report._findings import SKIPPABLE as SKIPPABLE
from ..report._findings import STATUSES as STATUSES
from ..report._findings import Finding as Finding
from ..report._findings import KernelReport as KernelReport
from ..report._findings import NumericResult as NumericResult
from ..report._findings import Obligation as Obligation
from ..report._findings import Report as Report
