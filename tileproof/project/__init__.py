"""The run layer: settings, caches, discovery, and the runner that verifies kernels with them.

It sits above the verifier and below the front doors (``tileproof check``, the
pytest plugin, :mod:`tileproof.testing`), which all run kernels through it:

* :mod:`._settings` -- ``[tool.tileproof]`` in pyproject.toml (:func:`load_config`);
* :mod:`._cache` -- the proof cache; :mod:`._numcache` -- numeric results and
  JAX's compilation cache, in the same folder;
* :mod:`._discover` -- kernel specs in files, folders and modules;
* :mod:`._runner` -- one kernel with the settings and caches (:func:`run_kernel`);
* :mod:`._workers` -- many kernels, in worker processes (:func:`verify_refs`).

Nothing below (spec, lowering, model, verify, report) imports it.
"""

from ._cache import ProofCache as ProofCache
from ._discover import KernelRef as KernelRef
from ._discover import collect as collect
from ._discover import find_kernel as find_kernel
from ._discover import find_kernels as find_kernels
from ._numcache import NumericCache as NumericCache
from ._runner import run_kernel as run_kernel
from ._settings import CACHE_DIR as CACHE_DIR
from ._settings import Config as Config
from ._settings import ConfigError as ConfigError
from ._settings import load_config as load_config
from ._workers import choose_jobs as choose_jobs
from ._workers import verify_refs as verify_refs
