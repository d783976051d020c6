"""Numeric matching: the tiled schedule executed in JAX, against the reference.

``execute(kernel, sizes, inputs)`` runs a kernel spec's tiled schedule as a
pure, jit-able, differentiable JAX function (programs vectorised, phases in
order, lanes and ranks as batch axes) with hardware-strict memory semantics;
``check_numeric(kernel)`` chooses sizes from the domain, draws inputs, and
compares values and gradients with the kernel's reference.
"""

from ._check import check_numeric as check_numeric
from ._compare import TOLERANCES as TOLERANCES
from ._execute import execute as execute
from ._execute import executor as executor
from ._flags import KINDS as KINDS
from ._flags import Finding as Finding
from ._flags import Flags as Flags
from ._inputs import draw_inputs as draw_inputs
from ._jaxpr import NumericUnsupported as NumericUnsupported
from ._sizes import CAP_ELEMENTS as CAP_ELEMENTS
from ._sizes import CAP_PROGRAMS as CAP_PROGRAMS
from ._sizes import choose_sizes as choose_sizes
