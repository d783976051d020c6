"""Lowering: trace a kernel body with JAX and read it into the tiled schedule model."""

from ._lower import lower as lower
from ._lower import trace as trace
from ._model import Access as Access
from ._model import Arith as Arith
from ._model import Barrier as Barrier
from ._model import Branch as Branch
from ._model import Comm as Comm
from ._model import Data as Data
from ._model import Dim as Dim
from ._model import Divide as Divide
from ._model import Fold as Fold
from ._model import LanePart as LanePart
from ._model import Lanes as Lanes
from ._model import Loop as Loop
from ._model import Model as Model
from ._model import Node as Node
from ._model import SplitReduce as SplitReduce
from ._model import Unsupported as Unsupported
from ._model import coord as coord
