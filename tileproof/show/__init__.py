"""Pictures of a schedule at concrete sizes (``tileproof show``), drawn from one run of the
model's concrete interpreter (:func:`tileproof.model.run`): coverage heat maps, ring
charts, phase timelines.  Needs matplotlib; imports neither JAX nor z3."""

from ._pictures import COVERAGE_COLORS as COVERAGE_COLORS
from ._pictures import coverage as coverage
from ._pictures import element_of as element_of
from ._pictures import ring as ring
from ._pictures import timeline as timeline
