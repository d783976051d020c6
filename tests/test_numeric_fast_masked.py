"""Masked top-level accesses on the executor's reshape fast path behave as the general path.

A masked load or store whose starts are data-independent and tile the launch is run as a
reshape of the tensor (no gather, no scatter); its tiles may overhang the tensor (the
masked-off tail of a ``cdiv`` grid).  Each kernel runs twice, with the fast path and
without (``TILEPROOF_NO_FAST_PATH``): the outputs and every finding must be identical,
for correct kernels and for each defect the flags exist for (a lane out of bounds that
the mask lets through, a row never written, two programs storing one tile).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import tileproof.spec as tp
from tileproof.verify.numeric import execute
from tileproof.verify.numeric._plan import get_plan

X = np.random.default_rng(1).standard_normal((3, 100)).astype(np.float32)


def _kernel(kind: str):
    """A row-wise scale of x [M, N] by programs of (1, 64) tiles, with one defect or none."""
    grid = (
        {"r": "M", "c": "cdiv(N, 64)"}
        if kind != "shared"
        else {"r": "M", "c": "cdiv(N, 64)", "k": 2}
    )

    @tp.kernel(grid=grid, tensors=dict(x=tp.Input(("M", "N")), y=tp.Output(("M", "N"))))
    def scale(x, y):
        r, c = tp.program_id(0), tp.program_id(1)
        n = tp.size("N")
        cols = c * 64 + jnp.arange(64)
        mask = cols < n
        if kind == "oob":
            mask = cols < n + 3  # three lanes past the end get through
        row = tp.load(x, (r, tp.ds(c * 64, 64)), mask=mask)
        if kind == "hole":
            mask = mask & (r != 1)  # row 1 is never written
        tp.store(y, (r, tp.ds(c * 64, 64)), row * 2, mask=mask)

    scale.name = f"scale_{kind}"
    return scale


def _run(kind, fast: bool, monkeypatch):
    if fast:
        monkeypatch.delenv("TILEPROOF_NO_FAST_PATH", raising=False)
    else:
        monkeypatch.setenv("TILEPROOF_NO_FAST_PATH", "1")
    k = _kernel(kind)  # a fresh kernel: plans are per kernel object
    x = X
    out, flags = execute(k, {"M": 3, "N": 100}, {"x": x})
    plan = get_plan(k, {"M": 3, "N": 100})
    paths = sum(len(ph.fast_load) + len(ph.fast_store) for ph in plan.phases)
    return x, np.asarray(out["y"]), [f.message for f in flags.findings()], paths


@pytest.mark.parametrize("kind", ["ok", "oob", "hole", "shared"])
def test_masked_fast_path_equals_the_general_path(kind, monkeypatch):
    x, y_fast, f_fast, n_fast = _run(kind, True, monkeypatch)
    _x, y_slow, f_slow, n_slow = _run(kind, False, monkeypatch)
    assert n_slow == 0
    # the load always tiles; the store only when no two programs share a tile
    assert n_fast == (1 if kind == "shared" else 2)
    np.testing.assert_array_equal(y_fast, y_slow)
    assert f_fast == f_slow
    if kind == "ok":
        assert not f_fast
        np.testing.assert_allclose(y_fast, 2 * x)
    else:
        want = {"oob": "out-of-bounds store", "hole": "never written", "shared": "race: y"}
        assert any(want[kind] in m for m in f_fast), f_fast
