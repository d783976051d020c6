"""Differential fuzzing of the verifier: random small kernels, static verdicts vs brute force.

* :class:`KernelDesc` — a generated kernel as data; :func:`render` prints its
  spec source, :func:`build` imports it as a ``tp.kernel``;
* :func:`kernels` — hypothesis strategy of descriptions (needs ``hypothesis``);
* :func:`differential` — every static obligation of the kernel against the
  concrete runs of the description at every size point of a small box (and
  optionally the numeric executor's flags): a ``proved`` obligation must
  never meet a run that violates it, a ``violated`` one must reproduce.

``tests/test_fuzz_verifier.py`` runs a few hundred kernels;
``benchmarks/fuzz_soak.py --kernels N --seed S`` runs a longer soak.
"""

from ._check import Report as Report
from ._check import differential as differential
from ._check import key_of as key_of
from ._check import size_points as size_points
from ._desc import KernelDesc as KernelDesc
from ._desc import TensorDesc as TensorDesc
from ._desc import build as build
from ._desc import render as render


def kernels(*args, **kwargs):
    """Hypothesis strategy of :class:`KernelDesc` (see :mod:`._gen`)."""
    from ._gen import kernels as _k

    return _k(*args, **kwargs)
