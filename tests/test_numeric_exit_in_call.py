"""An ``exit_if`` inside a call (a jitted helper) is an exit like one at the top level.

The executor's fast path writes a tile with one unmasked store for every program; it may
only do so when no program can have left before the store.  An exit inside a ``jax.jit``
helper was not seen by that test, so the exited program's row was written and its "never
written" finding lost (found while reworking the Pallas fast paths; this is its twin pair).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import tileproof.spec as tp
from tileproof.verify.numeric import execute


def _exit_in_call(kind: str):
    """Program 2 leaves through exit_if inside a jitted helper ("exit"), or none does."""

    @tp.kernel(grid={"r": 4}, tensors=dict(x=tp.Input((4, 8)), y=tp.Output((4, 8))))
    def k(x, y):
        r = tp.program_id(0)

        def leave(r):
            tp.exit_if(r == (2 if kind == "exit" else 9))
            return r

        jax.jit(leave)(r)
        tp.store(y, (r, tp.ds(0, 8)), tp.load(x, (r, tp.ds(0, 8))))

    k.name = f"exit_in_call_{kind}"
    return k


@pytest.mark.parametrize("kind", ["exit", "stay"])
def test_an_exit_inside_a_call_keeps_later_stores_off_the_fast_path(kind, monkeypatch):
    monkeypatch.delenv("TILEPROOF_NO_FAST_PATH", raising=False)
    out, flags = execute(_exit_in_call(kind), {}, {"x": np.ones((4, 8), np.float32)})
    msgs = [f.message for f in flags.findings()]
    if kind == "exit":  # was lost: the unmasked fast store wrote row 2 for the exited program
        assert any("y[2, 0] is never written" in m for m in msgs), msgs
        assert np.isnan(np.asarray(out["y"])[2]).all()
    else:
        assert not msgs and (np.asarray(out["y"]) == 1).all()
