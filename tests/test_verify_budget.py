"""The static check's budget is deterministic: verdicts do not depend on machine load.

Each solver check runs under z3's resource limit (``rlimit``) and a kernel gets a fixed
number of checks; the wall clock decides nothing unless the user sets
``solver-timeout-ms``.  So the catalog's verdicts are the same with the CPUs busy.
"""

from __future__ import annotations

import subprocess
import sys

from tileproof import catalog
from tileproof.lowering import lower
from tileproof.shapes._decide import clear_caches
from tileproof.verify.static import check_static

KERNELS = [
    k
    for k in catalog.KERNELS
    if k.name in ("paged_attention", "compressor_pool", "mesh_ring_attention")
]
HOG = "while True:\n    pass\n"


def _verdicts(**kw) -> list[tuple[str, str, str, str]]:
    clear_caches()  # nothing decided before may be reused
    out = []
    for k in KERNELS:
        for o in check_static(lower(k), **kw):
            out.append((k.name, o.kind, o.status, o.message))
    return out


def test_verdicts_are_the_same_on_a_busy_machine():
    quiet = _verdicts()
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(4)]
    try:
        busy = _verdicts()
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert busy == quiet
    assert {v[2] for v in quiet} == {"proved"}


def test_an_exhausted_budget_is_unknown_and_named():
    small = _verdicts(budget=10)
    assert small == _verdicts(budget=10)  # the same cut, run after run
    unknown = [v for v in small if v[2] == "unknown"]
    assert unknown and "proved" in {v[2] for v in small}
    obs = check_static(lower(KERNELS[0]), budget=10)
    reasons = {o.reason for o in obs if o.status == "unknown"}
    assert any("solver budget of the static check exhausted" in r for r in reasons), reasons
