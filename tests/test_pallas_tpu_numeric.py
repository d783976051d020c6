"""The executor on TPU schedules: per-program VMEM buffers, the write-back in the grid loop.

A TPU call's VMEM buffers and scratch are per-program tensors whose leading dimensions
are the program id; the executor gives each program its own slice of them (``owned``)
instead of a private copy of the whole tensor per program (memory quadratic in the grid:
flash attention's numeric run died at 21 GB), and runs the output write-back inside the
arbitrary-axis loop as an accumulated store (no write log, no scatter).  Each defect the
run-time flags exist for on these schedules -- an accumulator read before it is written,
an output block written by two programs, a new output block that starts from garbage --
is run with those paths and without (``TILEPROOF_NO_FAST_PATH``): identical outputs and
findings, with a clean correct twin.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

import tileproof as tp
from tileproof.pallas import function_runner
from tileproof.pallas._api import _build_concrete
from tileproof.pallas._numeric import _concrete_args, _pallas_eqns
from tileproof.verify.numeric._plan import get_plan

A = tp.Arg


def _call(kernel, out_shape, grid, in_specs, out_specs, semantics, scratch=()):
    return pl.pallas_call(
        kernel,
        out_shape=out_shape,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=0,
            grid=grid,
            in_specs=in_specs,
            out_specs=out_specs,
            scratch_shapes=list(scratch),
        ),
        compiler_params=pltpu.CompilerParams(dimension_semantics=semantics),
    )


def _matmul(x, y, *, semantics=("parallel", "parallel", "arbitrary"), init=True):
    def kernel(x_ref, y_ref, o_ref, acc_ref):
        if init:

            @pl.when(pl.program_id(2) == 0)
            def _():
                acc_ref[...] = jnp.zeros_like(acc_ref)

        acc_ref[...] += jnp.dot(x_ref[...], y_ref[...], preferred_element_type=jnp.float32)
        o_ref[...] = acc_ref[...]

    m, kk = x.shape
    n = y.shape[1]
    return _call(
        kernel,
        jax.ShapeDtypeStruct((m, n), jnp.float32),
        (m // 128, n // 128, kk // 128),
        [
            pl.BlockSpec((128, 128), lambda i, j, k: (i, k)),
            pl.BlockSpec((128, 128), lambda i, j, k: (k, j)),
        ],
        pl.BlockSpec((128, 128), lambda i, j, k: (i, j)),
        semantics,
        [pltpu.VMEM((128, 128), jnp.float32)],
    )(x, y)


def _acc_2d(x, *, first):
    """Sums two input blocks into each output block (blocks 0, 0, 1, 1), zeroing it when
    ``first(a, b)``."""

    def kernel(x_ref, o_ref):
        @pl.when(first(pl.program_id(0), pl.program_id(1)))
        def _():
            o_ref[...] = jnp.zeros_like(o_ref)

        o_ref[...] += x_ref[...]

    return _call(
        kernel,
        jax.ShapeDtypeStruct((8, 256), x.dtype),
        (2, 2),
        [pl.BlockSpec((8, 128), lambda a, b: (0, 2 * a + b))],
        pl.BlockSpec((8, 128), lambda a, b: (0, a)),
        ("arbitrary", "arbitrary"),
    )(x)


_MM_ARGS = [A((256, 256)), A((256, 256))]
CASES = [
    ("matmul", _matmul, _MM_ARGS, None),
    (
        "matmul-uninitialised",
        functools.partial(_matmul, init=False),
        _MM_ARGS,
        "poisoned read: acc_ref",
    ),
    (
        "matmul-k-parallel",
        functools.partial(_matmul, semantics=("parallel",) * 3),
        _MM_ARGS,
        "race: o_ref",
    ),
    ("acc-each", functools.partial(_acc_2d, first=lambda a, b: b == 0), [A((8, 512))], None),
    (
        "acc-once",
        functools.partial(_acc_2d, first=lambda a, b: (a == 0) & (b == 0)),
        [A((8, 512))],
        "poisoned read: o_ref_vmem",
    ),
]


def _run(fn, args, fast: bool, monkeypatch):
    if fast:
        monkeypatch.delenv("TILEPROOF_NO_FAST_PATH", raising=False)
    else:
        monkeypatch.setenv("TILEPROOF_NO_FAST_PATH", "1")
    rng = np.random.default_rng(0)
    vals = [jnp.asarray(rng.standard_normal(s.shape), s.dtype) for s in _concrete_args(args, {})]
    run = function_runner(fn, None, args, {})  # plans are built here, per fresh kernel
    outs, findings = run(*vals)
    return [np.asarray(o) for o in outs], [f.message for f in findings]


@pytest.mark.parametrize(("name", "fn", "args", "want"), CASES, ids=[c[0] for c in CASES])
def test_tpu_schedules_run_the_same_with_owned_buffers_and_accumulated_write_back(
    name, fn, args, want, monkeypatch
):
    o_fast, f_fast = _run(fn, args, True, monkeypatch)
    o_slow, f_slow = _run(fn, args, False, monkeypatch)
    for a, b in zip(o_fast, o_slow):
        np.testing.assert_array_equal(a, b)
    assert f_fast == f_slow
    if want is None:
        assert not f_fast, f_fast
    else:
        assert any(want in m for m in f_fast), f_fast


def _flash_kernel(heads: int):
    from jax.experimental.pallas.ops.tpu import flash_attention as fa

    args = [A((1, "H", 256, 128))] * 3
    closed = jax.make_jaxpr(fa.flash_attention)(*_concrete_args(args, {"H": heads}))
    return _build_concrete(_pallas_eqns(closed.jaxpr, [])[0], "call0")


def test_flash_attention_buffers_are_per_program_slices():
    # 2 heads x 2 query blocks = 4 programs, 2 kv iterations each
    k = _flash_kernel(2)
    plan = get_plan(k, {})
    (ph,) = plan.phases
    buffers = {t for t in plan.shapes if t not in k.inputs and t not in k.outputs}
    assert buffers and set(ph.owned) == buffers == ph.private
    assert all(ph.owned[t] == 3 for t in buffers)  # (B, H, q block) lead every buffer
    # every access of a buffer starts at a known place inside it: no padding (a buffer padded
    # by its own extent on every side was 3**4 times its size)
    assert all(not any(plan.pads[t]) for t in buffers)
    assert any(id_ in ph.accumulate for id_ in ph.fast_store)  # the write-back of o
    # 128 heads: 256 programs, whose private copies of the whole buffers were refused
    # (256 x 4194304 elements each) and are now 256 slices of 16384
    big = get_plan(_flash_kernel(128), {})
    assert len(big.phases[0].owned) == len(buffers)


def test_flash_attention_end_to_end_matches_interpret_mode_and_the_reference():
    from jax.experimental.pallas.ops.tpu import flash_attention as fa

    args = [A((1, "H", 256, 128))] * 3
    out = tp.pallas.check_function(
        fa.flash_attention,
        args=args,
        env={"H": 2},
        reference=lambda q, k, v: fa.mha_reference(q, k, v, None),
    )
    assert out["status"] == "matched" and not out["findings"], out
