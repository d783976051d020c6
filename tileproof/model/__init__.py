"""The tiled schedule model: what every front end produces and every checker reads.

A small, printable tree of accesses, loops, branches, barriers, lanes and ring
steps over :mod:`tileproof.shapes` expressions (see :mod:`._nodes`), with one
traversal (``Node.children()``, :func:`walk`), a text listing, and one concrete
interpreter.  It imports neither JAX nor z3: front ends (``spec`` +
``lowering``, ``pallas``) build it, ``verify`` and ``show`` read it.
"""

from ._data import RunError as RunError
from ._data import TooLarge as TooLarge
from ._interp import Event as Event
from ._interp import Schedule as Schedule
from ._interp import covers as covers
from ._interp import events as events
from ._interp import run as run
from ._interp import touched as touched
from ._nodes import PHASE_SCOPES as PHASE_SCOPES
from ._nodes import Access as Access
from ._nodes import Arith as Arith
from ._nodes import Assert as Assert
from ._nodes import Barrier as Barrier
from ._nodes import Branch as Branch
from ._nodes import Claim as Claim
from ._nodes import Comm as Comm
from ._nodes import Data as Data
from ._nodes import Dim as Dim
from ._nodes import Divide as Divide
from ._nodes import Fold as Fold
from ._nodes import LanePart as LanePart
from ._nodes import Lanes as Lanes
from ._nodes import Loop as Loop
from ._nodes import Model as Model
from ._nodes import Node as Node
from ._nodes import SplitReduce as SplitReduce
from ._nodes import Unsupported as Unsupported
from ._nodes import coord as coord
from ._nodes import listing as listing
from ._nodes import walk as walk
from ._sample import resolve_sizes as resolve_sizes
from ._sample import sample_data as sample_data
