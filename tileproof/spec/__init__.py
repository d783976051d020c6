"""The authoring API: declare a kernel's sizes, grid and tensors; write its body in JAX.

Pallas' vocabulary where the idea is the same (``program_id``, ``num_programs``,
``ds``, ``load``, ``store``, ``mask=``, ``when``), plus what Pallas lacks:
symbolic sizes with a domain, index tensors with value ranges, lanes, barriers,
a launch/machine model and ring traffic with provenance.
"""

from ._decl import Input as Input
from ._decl import Launch as Launch
from ._decl import Output as Output
from ._decl import Ranks as Ranks
from ._decl import Region as Region
from ._decl import Scratch as Scratch
from ._decl import Task as Task
from ._decl import Tensor as Tensor
from ._decl import build_enumeration as build_enumeration
from ._errors import Location as Location
from ._errors import SpecError as SpecError
from ._kernel import Kernel as Kernel
from ._kernel import kernel as kernel
from ._ops import Ref as Ref
from ._ops import barrier as barrier
from ._ops import ds as ds
from ._ops import exit_if as exit_if
from ._ops import fold as fold
from ._ops import lane_id as lane_id
from ._ops import lane_part as lane_part
from ._ops import lanes as lanes
from ._ops import load as load
from ._ops import num_lanes as num_lanes
from ._ops import num_programs as num_programs
from ._ops import num_ranks as num_ranks
from ._ops import program_id as program_id
from ._ops import rank_id as rank_id
from ._ops import sendrecv as sendrecv
from ._ops import size as size
from ._ops import store as store
from ._ops import when as when
from ._options import NumericOptions as NumericOptions
