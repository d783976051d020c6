"""Moved to :mod:`tileproof.report` (text and SARIF); kept so that existing imports work."""

from ..report._sarif import to_sarif as to_sarif
from ..report._text import kernel_text as kernel_text
from ..report._text import render as render
from ..report._text import to_text as to_text
