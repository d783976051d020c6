"""What makes a cold numeric check cheaper must not change what it finds (issue 13).

* Counts-only flags (:func:`tileproof.verify.numeric._flags.counts_only`): every
  record counts exactly what the detailed record counts, on kernels with each kind
  of defect and on their correct twins; counts-only findings are never worded, and
  ``check_numeric`` words a hit exactly as a detailed execution does.
* The CPU compile options are taken at the top level only: the executor still nests
  in ``jax.grad`` and ``jax.jit``.
* The pool's cost hint orders the catalog's kernels as their numeric times do.
* Sorted writes (:mod:`tileproof.verify.numeric._sparse`): the race records and the
  written values of the dense writer maps, and no full-size map at production sizes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import test_numeric_check as chk
import test_numeric_semantics as sem
from jax import lax

import tileproof.spec as tp
from tileproof.catalog import KERNELS
from tileproof.catalog import fused_decode as fd
from tileproof.verify.numeric import _memory, _sparse, check_numeric, executor
from tileproof.verify.numeric._execute import compile_options, run_compiled
from tileproof.verify.numeric._plan import cost_hint, get_plan, np_dtype

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
    (
        sem.ragged_sum,
        {"B": 3, "M": 4},
        lambda: {"lens": np.array([1, 20, 7], np.int32), "x": f32(3, 16)},
        {"loop_bound"},
    ),
]
TWINS = [
    (sem.neighbour_after_barrier, {}, lambda: {"x": f32(4, 4)}, set()),
    (sem.accumulate_in_output, {"B": 3, "K": 5}, lambda: {"x": f32(3, 40)}, set()),
    (
        sem.ragged_sum,
        {"B": 3, "M": 4},
        lambda: {"lens": np.array([1, 16, 7], np.int32), "x": f32(3, 16)},
        set(),
    ),
    (sem.tiled_add, {"G": 3}, lambda: {"x": f32(48, 16), "y": f32(48, 16)}, set()),
    (chk.ring_attention, {"n": 3}, lambda: {n: f32(3, 4, 8) for n in "qkv"}, set()),
]


@pytest.mark.parametrize(
    "kernel, sizes, make, want",
    DEFECTS + TWINS,
    ids=[c[0].name + ("_ok" if not c[3] else "") for c in DEFECTS + TWINS],
)
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


def test_an_option_the_installed_xla_rejects_is_dropped_not_fatal(monkeypatch):
    """The GPU options name XLA debug flags that a JAX release may rename or drop: the
    compilation goes on without the rejected one."""
    import tileproof.verify.numeric._execute as ex

    monkeypatch.setattr(
        ex,
        "compile_options",
        lambda devices=None: {"xla_no_such_flag": 0, "xla_backend_optimization_level": 0},
    )
    fn = executor(sem.tiled_add, {"G": 2})
    x, y = f32(32, 16), f32(32, 16)
    out, flags = ex.run_compiled(fn, {"x": x, "y": y})
    assert flags.ok
    np.testing.assert_allclose(out["o"], x + np.sin(y), rtol=1e-6, atol=1e-6)


def test_cost_hint_orders_the_catalog_as_its_numeric_times():
    hint = {k.name: cost_hint(k) for k in KERNELS}
    cheap = ("paged_attention", "mesh_ring_attention", "mesh_ring_attention_decode")
    for heavy in ("fused_decode", "compressor_pool"):
        assert all(hint[heavy] > 2 * hint[c] for c in cheap), hint


# ----------------------------------------------------------------------------- sorted writes


@tp.kernel(grid={"p": 3}, tensors=dict(o=tp.Output((2, 6))))
def rewrites_then_overlaps(o):
    """Each program rewrites its tile every iteration (ordered); programs 1 and 2 overlap."""
    p = tp.program_id(0)
    start = jnp.minimum(p * 2, 3)  # program 2's tile [3, 5) overlaps program 1's [2, 4)

    def body(j, c):
        tp.store(o, (1, tp.ds(start, 2)), jnp.full((2,), j + 10.0 * p, jnp.float32))
        return c

    lax.fori_loop(0, 3, body, 0)


@tp.kernel(grid={"p": 3}, tensors=dict(o=tp.Output((2, 6))))
def rewrites_disjoint(o):
    """The correct twin: the same rewrites on disjoint tiles (row 0 never written)."""
    p = tp.program_id(0)

    def body(j, c):
        tp.store(o, (1, tp.ds(p * 2, 2)), jnp.full((2,), j + 10.0 * p, jnp.float32))
        return c

    lax.fori_loop(0, 3, body, 0)


SORTED = [
    (sem.two_writers, {}, lambda: {"x": f32(4, 8)}),
    (sem.same_program_twice, {}, dict),
    (sem.store_past_end, {}, lambda: {"x": f32(8)}),
    (sem.skips_a_row, {}, lambda: {"x": f32(4, 8)}),
    (rewrites_then_overlaps, {}, dict),
    (rewrites_disjoint, {}, dict),
    (chk.ring_attention, {"n": 3}, lambda: {n: f32(3, 4, 8) for n in "qkv"}),
]


@pytest.mark.parametrize("kernel, sizes, make", SORTED, ids=[c[0].name for c in SORTED])
def test_sorted_writes_find_what_the_writer_maps_find(kernel, sizes, make, monkeypatch):
    """Race records (count, first element, both writers) and written values are the dense
    path's when the writes are sorted instead (forced here on small tensors)."""
    inputs = make()
    used = []  # which path each run took: the sorted one must run when forced

    def spy(*args, **kwargs):
        used.append(True)
        return real(*args, **kwargs)

    real = _memory.sorted_writes
    monkeypatch.setattr(_memory, "sorted_writes", spy)
    logged = []  # whether the run applied write logs at all (fast stores write directly)
    from tileproof.verify.numeric import _execute as ex

    real_apply = ex.apply_logs

    def spy_apply(*args, **kwargs):
        logged.append(True)
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(ex, "apply_logs", spy_apply)

    def jitted():
        # each path jit-compiled as the check runs it, in a fresh function so that JAX's
        # trace cache (keyed on the function) cannot hand the second the first's trace;
        # the ratio is read while it traces (op-by-op eager runs cost a minute, no more)
        run = executor(kernel, sizes, jit=False)
        return jax.jit(lambda x: run(x))

    monkeypatch.setattr(_sparse, "SPARSE_MIN_RATIO", 1 << 40)
    out_d, dense = jitted()(inputs)
    assert not used
    monkeypatch.setattr(_sparse, "SPARSE_MIN_RATIO", 0)
    out_s, srt = jitted()(inputs)
    # the forced run sorted its logged writes (ring_attention's stores keep their writer maps
    # even when forced: its comparison is a twin's); a kernel whose stores all take a fast
    # path logs none (its findings are compared all the same)
    assert used or kernel is chk.ring_attention or not logged
    assert [f.message for f in dense.findings()] == [f.message for f in srt.findings()]
    for a, b in zip(dense.records, srt.records):
        assert a.info == b.info and int(a.count) == int(b.count)
        if int(a.count):
            assert [int(x) for x in a.ids] == [int(x) for x in b.ids]
            assert [int(x) for x in a.elem] == [int(x) for x in b.elem]
    if not any(f.kind == "race" for f in dense.findings()):  # a race's value is either write
        for n in out_d:
            np.testing.assert_array_equal(np.asarray(out_d[n]), np.asarray(out_s[n]))


def test_sorted_writes_are_taken_by_the_kernels_that_log_writes(monkeypatch):
    """The comparison above is not vacuous: the racing kernels log their writes (no fast
    store takes a write another program may also make), so their forced runs sort."""
    from tileproof.verify.numeric import _execute as ex

    calls = []
    real = _memory.sorted_writes
    monkeypatch.setattr(_memory, "sorted_writes", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(ex, "apply_logs", ex.apply_logs)
    monkeypatch.setattr(_sparse, "SPARSE_MIN_RATIO", 0)
    for kernel, sizes, make in SORTED:
        if kernel in (sem.two_writers, sem.store_past_end, rewrites_then_overlaps):
            calls.clear()
            run = executor(kernel, sizes, jit=False)
            jax.jit(lambda x, run=run: run(x))(make())
            assert calls, kernel.name


def test_sorted_writes_race_and_twin(monkeypatch):
    monkeypatch.setattr(_sparse, "SPARSE_MIN_RATIO", 0)
    _out, flags = executor(rewrites_then_overlaps, {}, jit=False)({})
    (race,) = [f for f in flags.findings() if f.kind == "race"]
    assert race.element == (1, 3) and race.count == 1
    assert "by program (p=1) and by program (p=2)" in race.message
    out, flags = executor(rewrites_disjoint, {}, jit=False)({})
    assert [f.kind for f in flags.findings()] == ["unwritten"]  # row 0 only
    np.testing.assert_array_equal(np.asarray(out["o"])[1], [2, 2, 12, 12, 22, 22])


def test_fused_decode_at_its_defaults_builds_no_full_size_writer_map():
    """The 2.68e9-element caches are written a few thousand elements per step: their race
    check sorts those writes instead of building [20971520, 128] int32 writer maps."""
    k = fd.fused_decode
    sizes = dict(k.defaults)
    spec = {
        n: jax.ShapeDtypeStruct(get_plan(k, sizes).shapes[n], np_dtype(k.tensors[n].dtype))
        for n in k.inputs
    }
    text = jax.jit(executor(k, sizes, detail=False)).lower(spec).as_text()
    assert "tensor<20971520x128xf32>" in text or "tensor<20971520x128xbf16>" in text
    assert "tensor<20971520x128xi32>" not in text
