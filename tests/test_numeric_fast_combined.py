"""Fast paths nested in the constructs main's executor runs apart: each must behave as the
general path.

The fast paths (``_nested``: accesses in branches and loops run as reshapes, stores there
guarded or accumulated) meet three mechanisms that run parts of a phase on their own:

* a loop whose iterations are independent runs as one ``vmap`` over them (``_vecloop``):
  an accumulated store's tile is then folded over the iterations (the last iteration
  that wrote an element wins, also when a later one did not write it);
* a ``when`` block that few programs may enter runs on those programs only (``_gate``):
  its nested fast loads read their programs' tiles, its guarded fast stores are placed
  for those programs, nothing for the others;
* a branch that a size rules out does not run at all (``_interp._cond``): its guarded
  fast store writes nothing.

Each kernel runs with every mechanism and without the fast paths
(``TILEPROOF_NO_FAST_PATH``), and without the mechanism (``TILEPROOF_NO_VEC_LOOPS``,
``TILEPROOF_NO_GATES``): outputs and findings must be identical, for a correct kernel
(clean) and for its defect twins (an element never written, two programs on one tile, a
store past the end).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.verify.numeric import _gate, execute
from tileproof.verify.numeric import _interp as interp_mod
from tileproof.verify.numeric._plan import get_plan

X = np.random.default_rng(5).standard_normal((8, 128)).astype(np.float32)


def _vec_acc(kind: str):
    """A store in a 4-trip loop whose iterations are independent (only the counter moves):
    iteration i writes lanes 32i..32i+31 (``quarters``: each element written once, by one
    iteration, none by the last for most) or lanes >= 10i (``overlap``: the last wins)."""

    @tp.kernel(grid={"r": 4}, tensors=dict(x=tp.Input((4, 128)), y=tp.Output((4, 128))))
    def vec_acc(x, y):
        r = tp.program_id(0)

        def body(i, c):
            w = tp.load(x, (r, tp.ds(0, 128)))
            lanes = jnp.arange(128)
            m = (lanes // 32 == i) if kind.startswith("quarters") else lanes >= i * 10
            if kind.endswith("hole"):
                m = m & ((r != 3) | (lanes < 96))  # row 3 loses its last quarter
            row = r // 2 if kind.endswith("shared") else r
            tp.store(y, (row, tp.ds(0, 128)), w * (i + 1), mask=m)
            return c

        lax.fori_loop(0, 4, body, jnp.int32(0))

    vec_acc.name = f"vec_acc_{kind}"
    return vec_acc


def _gated(kind: str):
    """Programs 0..2 of 8 copy their row (a block at most 3/8 of the programs enter: run
    on those only); the store and the load in it are nested fast paths."""
    rows = 4 if kind == "hole" else 3

    @tp.kernel(grid={"p": 8}, tensors=dict(x=tp.Input((8, 128)), y=tp.Output((rows, 128))))
    def gated(x, y):
        p = tp.program_id(0)

        @tp.when(p < 3)
        def _():
            v = tp.load(x, (p, tp.ds(0, 128)))
            start = 64 if kind == "oob" else 0
            tp.store(y, (p, tp.ds(start, 128)), v * 2)

    gated.name = f"gated_{kind}"
    return gated


def _known(kind: str):
    """An unmasked store under ``when(N >= 64)``: at N=32 the branch does not run (known
    while tracing), and y is never written; at N=64 it is."""

    @tp.kernel(grid={"r": 4}, tensors=dict(x=tp.Input((4, "N")), y=tp.Output((4, 128))))
    def known(x, y):
        r = tp.program_id(0)

        @tp.when(tp.size("N") >= 64)
        def _():
            tp.store(y, (r, tp.ds(0, 128)), jnp.ones((128,), jnp.float32) * r)

    known.name = f"known_{kind}"
    return known


def _inputs(k, kind):
    if k.name.startswith("known"):
        n = 32 if kind == "hole" else 64
        return {"N": n}, {"x": X[:4, :n]}
    if k.name.startswith("vec_acc"):
        return {}, {"x": X[:4]}
    return {}, {"x": X}


def _run(make, kind, monkeypatch, fast=True, off=None):
    for v in ("TILEPROOF_NO_FAST_PATH", "TILEPROOF_NO_VEC_LOOPS", "TILEPROOF_NO_GATES"):
        monkeypatch.delenv(v, raising=False)
    if not fast:
        monkeypatch.setenv("TILEPROOF_NO_FAST_PATH", "1")
    if off:
        monkeypatch.setenv(off, "1")
    k = make(kind)  # a fresh kernel: plans are per kernel object
    sizes, inputs = _inputs(k, kind)
    out, flags = execute(k, sizes, inputs)
    plan = get_plan(k, sizes)
    return np.asarray(out["y"]), [f.message for f in flags.findings()], plan


CASES = [
    (_vec_acc, "quarters", None, "TILEPROOF_NO_VEC_LOOPS"),
    (_vec_acc, "quarters_hole", "never written", "TILEPROOF_NO_VEC_LOOPS"),
    (_vec_acc, "quarters_shared", "race: y", "TILEPROOF_NO_VEC_LOOPS"),
    (_vec_acc, "overlap", None, "TILEPROOF_NO_VEC_LOOPS"),
    (_vec_acc, "overlap_hole", "never written", "TILEPROOF_NO_VEC_LOOPS"),
    (_gated, "ok", None, "TILEPROOF_NO_GATES"),
    (_gated, "hole", "never written", "TILEPROOF_NO_GATES"),
    (_gated, "oob", "out-of-bounds store", "TILEPROOF_NO_GATES"),
    (_known, "ok", None, None),
    (_known, "hole", "never written", None),
]


@pytest.mark.parametrize(
    ("make", "kind", "want", "off"), CASES, ids=[f"{m.__name__[1:]}-{k}" for m, k, _, _ in CASES]
)
def test_fast_paths_inside_vec_loops_gates_and_known_branches(make, kind, want, off, monkeypatch):
    y_fast, f_fast, _plan = _run(make, kind, monkeypatch)
    y_slow, f_slow, slow_plan = _run(make, kind, monkeypatch, fast=False)
    assert not any(ph.fast_store or ph.fast_load for ph in slow_plan.phases)
    np.testing.assert_array_equal(y_fast, y_slow)
    assert f_fast == f_slow
    if off is not None:  # the same without the mechanism (a scan, every program runs)
        y_off, f_off, _ = _run(make, kind, monkeypatch, off=off)
        np.testing.assert_array_equal(y_fast, y_off)
        assert f_fast == f_off
    if want is None:
        assert not f_fast, f_fast
    else:
        assert any(want in m for m in f_fast), f_fast


def test_the_mechanisms_and_the_fast_stores_meet(monkeypatch):
    """The correct twins take the fast paths *inside* the mechanisms (or the comparison
    above proves nothing): a vectorised loop with an accumulated store, a gated block with a
    guarded store and a fast load, a known branch with a guarded store."""
    calls = []

    def spy(real):
        def f(*a, **kw):
            calls.append(1)
            return real(*a, **kw)

        return f

    monkeypatch.setattr(interp_mod, "while_vec", spy(interp_mod.while_vec))
    monkeypatch.setattr(interp_mod, "scan_vec", spy(interp_mod.scan_vec))
    _y, _f, plan = _run(_vec_acc, "quarters", monkeypatch)
    assert calls and sum(len(ph.accumulate) for ph in plan.phases) == 1

    import tileproof.verify.numeric._execute as ex

    seen = []
    real_gates = _gate.phase_gates

    def gates(plan, ph):
        g = real_gates(plan, ph)
        seen.append(len(g))
        return g

    monkeypatch.setattr(ex, "phase_gates", gates)
    _y, _f, plan = _run(_gated, "ok", monkeypatch)
    assert sum(seen) == 1
    assert sum(len(ph.guarded) for ph in plan.phases) == 1
    assert sum(len(ph.fast_load) for ph in plan.phases) == 1

    y, f, plan = _run(_known, "ok", monkeypatch)
    assert sum(len(ph.guarded) for ph in plan.phases) == 1 and not f
    np.testing.assert_array_equal(y, np.arange(4, dtype=np.float32)[:, None] * np.ones(128))


def test_vectorised_accumulation_keeps_the_last_write(monkeypatch):
    """Each element holds the value of the last iteration that wrote it."""
    y, f, _ = _run(_vec_acc, "overlap", monkeypatch)
    assert not f
    x = X[:4]
    want = np.empty_like(x)
    for i in range(4):
        lanes = np.arange(128) >= i * 10
        want[:, lanes] = (x * (i + 1))[:, lanes]
    np.testing.assert_allclose(y, want, rtol=1e-6)
    y, f, _ = _run(_vec_acc, "quarters", monkeypatch)
    assert not f
    q = np.arange(128) // 32 + 1
    np.testing.assert_allclose(y, x * q[None, :], rtol=1e-6)
