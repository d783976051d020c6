"""tileproof: specify tiled kernels as JAX functions, prove their schedules sound for every shape.

``tileproof.shapes`` (symbolic shape arithmetic) imports without JAX; the
other layers load lazily so ``import tileproof`` stays cheap.
"""

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _NotFound
from importlib.metadata import version as _version

from .errors import TileproofError as TileproofError

try:
    __version__ = _version("tileproof")
except _NotFound:  # running from a source tree that is not installed
    __version__ = "0.0.0"

_LAZY = (
    "shapes",
    "model",
    "spec",
    "lowering",
    "verify",
    "report",
    "catalog",
    "pallas",
    "show",
    "project",
)


def __getattr__(name: str):
    if name in _LAZY:
        return _import_module(f".{name}", __name__)
    if name == "Arg":  # tp.Arg(shape, dtype): an argument of a Pallas function (tp.pallas)
        return _import_module(".pallas", __name__).Arg
    raise AttributeError(f"module 'tileproof' has no attribute {name!r}")
