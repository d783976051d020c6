"""What makes a cold numeric check cheaper must not change what it finds (issue 13).

* Counts-only flags (:func:`tileproof.verify.numeric._flags.counts_only`): every
  record counts exactly what the detailed record counts, on kernels with each kind
  of defect and on their correct twins; counts-only findings are never worded, and
  ``check_numeric`` words a hit exactly as a detailed execution does.
* The CPU compile options are taken at the top level only: the executor still nests
  in ``jax.grad`` and ``jax.jit``.
* The pool's cost hint orders the catalog's kernels as their numeric times do.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import test_numeric_check as chk
import test_numeric_semantics as sem

from tileproof.catalog import KERNELS
from tileproof.verify.numeric import check_numeric, executor
from tileproof.verify.numeric._execute import compile_options, run_compiled
from tileproof.verify.numeric._plan import cost_hint

RNG = np.random.default_rng(7)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# (kernel, sizes, inputs, kinds a detailed run finds)
DEFECTS = [
    (sem.skips_a_row, {}, lambda: {"x": f32(4, 8)}, {"poison"}),
    (sem.two_writers, {}, lambda: {"x": f32(4, 8)}, {"race", "unwritten"}),
    (sem.unmasked_load, {"N": 100}, lambda: {"x": f32(100)}, {"oob_load"}),
    (sem.store_past_end, {}, lambda: {"x": f32(8)}, {"oob_store", "unwritten"}),
    (sem.neighbour_without_barrier, {}, lambda: {"x": f32(4, 4)}, {"poison", "rw_race"}),
    (sem.exits_before_barrier, {}, lambda: {"x": f32(4, 4)}, {"barrier", "unwritten"}),
    (sem.odd_lane_split, {}, lambda: {"x": f32(2, 5, 8)}, {"unwritten"}),
    (sem.ragged_sum, {"B": 3, "M": 4},
     lambda: {"lens": np.array([1, 20, 7], np.int32), "x": f32(3, 16)}, {"loop_bound"}),
]
TWINS = [
    (sem.neighbour_after_barrier, {}, lambda: {"x": f32(4, 4)}, set()),
    (sem.accumulate_in_output, {"B": 3, "K": 5}, lambda: {"x": f32(3, 40)}, set()),
    (sem.ragged_sum, {"B": 3, "M": 4},
     lambda: {"lens": np.array([1, 16, 7], np.int32), "x": f32(3, 16)}, set()),
    (sem.tiled_add, {"G": 3}, lambda: {"x": f32(48, 16), "y": f32(48, 16)}, set()),
    (chk.ring_attention, {"n": 3}, lambda: {n: f32(3, 4, 8) for n in "qkv"}, set()),
]


@pytest.mark.parametrize("kernel, sizes, make, want", DEFECTS + TWINS,
                         ids=[c[0].name + ("_ok" if not c[3] else "") for c in DEFECTS + TWINS])
def test_counts_only_counts_what_the_detailed_run_counts(kernel, sizes, make, want):
    inputs = make()
    out_d, full = executor(kernel, sizes)(inputs)
    out_c, lite = executor(kernel, sizes, detail=False)(inputs)
    assert {f.kind for f in full.findings()} == want
    assert len(full.records) == len(lite.records)
    for a, b in zip(full.records, lite.records):
        assert a.info == b.info
        assert int(np.asarray(a.count)) == int(np.asarray(b.count)), a.info
    assert lite.ok == (not want)
    if want:  # placeholders are never worded
        with pytest.raises(ValueError, match="counts-only"):
            lite.findings()
    for n in out_d:  # the outputs do not depend on the mode (poison included)
        np.testing.assert_array_equal(np.asarray(out_d[n]), np.asarray(out_c[n]))


def test_check_numeric_words_a_hit_as_the_detailed_run_does():
    k = sem.odd_lane_split
    res = check_numeric(k, gradients=False, budget=0)
    assert res.status == "mismatch"
    (run,) = [r for r in res.detail["runs"] if r.get("findings")]
    detailed = executor(k, {})({"x": f32(2, 5, 8)})[1].findings()  # the inputs do not matter
    assert run["findings"] == [f.message for f in detailed]
    assert "output o[0, 4, 0] is never written; 16 elements in all" in res.message


def test_correct_twin_matches_with_gradients():
    k = dataclasses.replace(sem.tiled_add, reference=lambda x, y: x + jnp.sin(y))
    res = check_numeric(k, sizes={"G": 3}, budget=1)
    assert res.status == "matched", res.message
    assert res.gradients["status"] == "matched"


def test_ring_backward_defect_still_caught_with_merged_gradients():
    k = dataclasses.replace(chk.ring_attention, backward=chk._ring_bwd(True))
    res = check_numeric(k, sizes={"n": 3}, budget=0)
    assert res.status == "mismatch" and "backward ring_attention_bwd_step0" in res.message


def test_compile_options_on_cpu_only_at_the_top_level(monkeypatch):
    assert compile_options() == {"xla_backend_optimization_level": 0}
    monkeypatch.setenv("TILEPROOF_XLA_OPT", "1")
    assert compile_options() is None
    monkeypatch.delenv("TILEPROOF_XLA_OPT")
    fn = executor(sem.tiled_add, {"G": 2})
    x, y = f32(32, 16), f32(32, 16)
    out, flags = run_compiled(fn, {"x": x, "y": y})
    assert flags.ok
    # the same jitted executor nests in grad and jit (options would be refused there)
    g = jax.jit(jax.grad(lambda x: fn({"x": x, "y": y})[0]["o"].sum()))(x)
    np.testing.assert_allclose(g, np.ones_like(x))
    np.testing.assert_allclose(out["o"], x + np.sin(y), rtol=1e-6, atol=1e-6)


def test_cost_hint_orders_the_catalog_as_its_numeric_times():
    hint = {k.name: cost_hint(k) for k in KERNELS}
    cheap = ("paged_attention", "mesh_ring_attention", "mesh_ring_attention_decode")
    for heavy in ("fused_decode", "compressor_pool"):
        assert all(hint[heavy] > 2 * hint[c] for c in cheap), hint
