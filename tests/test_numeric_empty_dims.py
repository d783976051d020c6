"""A point access into a dimension of extent 0 is flagged out of bounds, not a crash of the run.

Regression: ``decode_zero_splits`` at ``NS=0`` loads ``x[b, h, 0]`` from a ``[B, H, NS]``
tensor; a one-element window cannot be cut from an empty dimension, and the numeric run
ended as an ``error`` (a ``dynamic_slice`` TypeError) instead of the out-of-bounds finding.
"""

from __future__ import annotations

import numpy as np

import tileproof.spec as tp
from tileproof.verify.numeric import execute


def _kernel(guarded: bool):
    @tp.kernel(grid={"b": "B"}, tensors=dict(x=tp.Input(("B", "S")), y=tp.Output(("B",))))
    def first(x, y):
        b = tp.program_id(0)
        if guarded:
            v = tp.load(x, (b, 0), mask=tp.size("S") > 0)
        else:
            v = tp.load(x, (b, 0))
        tp.store(y, (b,), v)

    first.name = f"first_{'guarded' if guarded else 'unguarded'}"
    return first


def test_point_load_from_an_empty_dimension_is_flagged():
    _out, flags = execute(_kernel(False), {"B": 2, "S": 0}, {"x": np.zeros((2, 0), np.float32)})
    msgs = [f.message for f in flags.findings()]
    assert any("out-of-bounds load of x" in m for m in msgs), msgs


def test_masked_twin_reads_nothing_and_is_clean():
    out, flags = execute(_kernel(True), {"B": 2, "S": 0}, {"x": np.zeros((2, 0), np.float32)})
    assert [f.message for f in flags.findings()] == []
    np.testing.assert_array_equal(np.asarray(out["y"]), np.zeros(2, np.float32))
