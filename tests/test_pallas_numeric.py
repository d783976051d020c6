"""Numerics of Pallas functions: tileproof's executor runs the unmodified kernel body.

Values against the user's reference (and gradients), against Pallas' interpret mode when
the call's operands are not the function's arguments, and end to end through the whole
function; the executor's strict memory flags catch what interpret mode clamps.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np

import tileproof as tp
from tileproof.pallas import check_function, function_runner

_HERE = os.path.dirname(__file__)
_spec = importlib.util.spec_from_file_location(
    "pallas_small_n", os.path.join(_HERE, "specs", "pallas_small.py")
)
ps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ps)

N = [tp.Arg(("N",))]


def test_masked_kernel_matches_its_reference_with_gradients():
    k = tp.pallas(ps.scale, args=N, assume=["N <= 4096"], reference=lambda x: 2 * x)
    res = tp.verify.verify(k, numeric=True, numeric_options={"budget": 2}).kernels[0].numeric
    assert res.status == "matched", res.message
    assert res.gradients["status"] == "matched"


def test_floor_divided_grid_leaves_poison_in_the_output():
    k = tp.pallas(
        functools.partial(ps.scale, grid="floor"),
        args=N,
        assume=["N <= 4096"],
        reference=lambda x: 2 * x,
    )
    res = tp.verify.verify(k, numeric=True, numeric_options={"sizes": [{"N": 200}], "budget": 0})
    assert res.kernels[0].numeric.status == "mismatch"


def test_unmasked_tail_is_flagged_out_of_bounds_at_run_time():
    # Pallas interpret mode would clamp this block; the executor flags the access
    run = function_runner(functools.partial(ps.scale, masked=False), None, N, {"N": 200})
    _out, findings = run(jnp.ones((200,), jnp.float32))
    assert any(
        f.kind == "oob_load" and f.element == (200,) and f.location.line == 28 for f in findings
    )


def test_reshaping_wrapper_is_checked_against_interpret_mode_and_end_to_end():
    from jax.experimental.pallas.ops.gpu import decode_attention as da

    args = [tp.Arg(("B", "H", 64)), tp.Arg(("B", 1024, 64)), tp.Arg(("B", 1024, 64))]
    k = tp.pallas(da.mqa, args=args, assume=["B <= 2", "H <= 20"], reference=da.mqa_reference)
    assert getattr(k.reference, "interpret_mode", False)  # K/V are reshaped before the call
    res = tp.verify.verify(k, numeric=True, numeric_options={"budget": 1}).kernels[0].numeric
    assert res.status == "matched", res.message
    out = check_function(da.mqa, args=args, env={"B": 2, "H": 20}, reference=da.mqa_reference)
    assert out["status"] == "matched" and out["max_abs_err"] < 1e-4, out


def test_end_to_end_mismatch_is_reported():
    args = [tp.Arg(("N",))]
    out = check_function(ps.scale, args=args, env={"N": 300}, reference=lambda x: 3 * x)
    assert out["status"] == "mismatch" and out["max_abs_err"] > 0.1


def test_function_runner_is_jittable_and_equals_pallas_interpret_mode():
    from jax.experimental.pallas.ops.gpu import softmax

    args = [tp.Arg(("B", 100))]
    run = function_runner(softmax.softmax, None, args, {"B": 5})
    x = jnp.asarray(np.random.default_rng(0).standard_normal((5, 100)), jnp.float32)
    got = jax.jit(lambda v: run(v, findings=False)[0])(x)[0]
    want = softmax.softmax(x, interpret=True)
    assert np.allclose(got, want, atol=1e-6)


def test_masked_lanes_without_other_are_undefined_and_poisoned():
    args = [tp.Arg(("B", 100))]
    ref = lambda x: jnp.sum(x, axis=1)  # noqa: E731
    ok = tp.pallas(ps.row_sum, args=args, assume=["B <= 64"], reference=ref)
    bad = tp.pallas(
        functools.partial(ps.row_sum, other=None), args=args, assume=["B <= 64"], reference=ref
    )
    opts = {"budget": 1, "gradients": False}
    assert (
        tp.verify.verify(ok, numeric=True, numeric_options=opts).kernels[0].numeric.status
        == "matched"
    )
    res = tp.verify.verify(bad, numeric=True, numeric_options=opts).kernels[0].numeric
    assert res.status == "mismatch"  # Triton leaves those lanes undefined; the sum reads them
