"""The executor at production sizes: exact offsets at any size, the device cap, while conditions.

Nothing here allocates a production-sized tensor: the 2.68e9-element stacked KV cache of
``fused_decode`` at its defaults is traced abstractly (``jax.eval_shape``), and the
per-axis search and saturating counts used above 2**31 elements are exercised by lowering
their thresholds on small arrays and comparing with the flat path and with numpy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.catalog import fused_decode as fd
from tileproof.verify.numeric import _flags, execute, executor
from tileproof.verify.numeric._plan import get_plan, np_dtype

# ----------------------------------------------------------------------------- search and count


@pytest.fixture
def tiny_limits(monkeypatch):
    """Thresholds of the large-size paths lowered so that small arrays take them."""
    monkeypatch.setattr(_flags, "_FLAT_MAX", 31)
    monkeypatch.setattr(_flags, "COUNT_SATURATED", 16)
    monkeypatch.setattr(_flags, "_FOLD", 4)


@pytest.mark.parametrize(
    "shape", [(3, 5), (4, 3, 3), (2, 2, 20), (1, 25), (30,), (5, 11), (3, 2, 20), (20, 2, 1)]
)
def test_first_true_per_axis_matches_numpy(tiny_limits, shape):
    rng = np.random.default_rng(1)
    for density in (0.0, 0.05, 0.5):
        bad = rng.random(shape) < density
        ix = tuple(int(i) for i in _flags.first_true_nd(jnp.asarray(bad)))
        hits = np.argwhere(bad)
        want = tuple(int(i) for i in hits[0]) if len(hits) else (0,) * len(shape)
        assert ix == want
        assert int(_flags.count_true(jnp.asarray(bad))) == min(int(bad.sum()), 16)  # saturates


def test_one_axis_beyond_the_chunk_is_folded(tiny_limits):
    bad = np.zeros(30, bool)
    bad[[13, 29]] = True
    assert tuple(int(i) for i in _flags.first_true_nd(jnp.asarray(bad))) == (13,)
    # 2 hits: below the (lowered) saturation, exact
    assert int(_flags.count_true(jnp.asarray(bad))) == 2


def test_counts_saturate_instead_of_wrapping():
    big = jnp.array([1 << 30, 1 << 30, 5], jnp.int32)  # 2**31 + 5 would wrap negative in int32
    assert int(_flags.saturating_sum(big)) == 1 << 30
    assert int(_flags.saturating_sum(jnp.array([3, 4, 1 << 20], jnp.int32))) == 7 + (1 << 20)


# a race, an unwritten row and a poisoned read: the same findings on the per-axis path


@tp.kernel(
    grid={"p": 4}, tensors=dict(x=tp.Input((4, 8)), s=tp.Scratch((4, 8)), o=tp.Output((4, 8)))
)
def racy(x, s, o):
    p = tp.program_id(0)
    row = jnp.minimum(p, 2)  # programs 2 and 3 both write row 2 of s; row 3 is never written
    tp.store(s, (row, slice(None)), tp.load(x, (p, slice(None))))
    tp.barrier()
    tp.store(o, (jnp.minimum(p, 2), slice(None)), tp.load(s, (p, slice(None))))


@tp.kernel(
    grid={"p": 4}, tensors=dict(x=tp.Input((4, 8)), s=tp.Scratch((4, 8)), o=tp.Output((4, 8)))
)
def racy_twin(x, s, o):
    p = tp.program_id(0)
    tp.store(s, (p, slice(None)), tp.load(x, (p, slice(None))))
    tp.barrier()
    tp.store(o, (p, slice(None)), tp.load(s, (p, slice(None))))


def test_findings_identical_on_the_per_axis_path(monkeypatch):
    x = np.arange(32, dtype=np.float32).reshape(4, 8)
    out_a, flags_a = execute(racy, {}, {"x": x})
    want = [f.message for f in flags_a.findings()]
    assert {f.kind for f in flags_a.findings()} >= {"race", "poison", "unwritten"}
    monkeypatch.setattr(_flags, "_FLAT_MAX", 15)  # the [4, 8] tensors: searched row by row
    monkeypatch.setattr(
        _flags, "COUNT_SATURATED", 16
    )  # counted row by row (counts < 16 stay exact)
    out_b, flags_b = executor(racy, {}, jit=False)({"x": x})
    assert [f.message for f in flags_b.findings()] == want
    np.testing.assert_array_equal(np.asarray(out_a["o"]), np.asarray(out_b["o"]))
    out_t, flags_t = executor(racy_twin, {}, jit=False)({"x": x})
    assert flags_t.ok
    np.testing.assert_array_equal(np.asarray(out_t["o"]), x)


# ----------------------------------------------------------------------------- production sizes


def _abstract_inputs(kernel, sizes):
    plan = get_plan(kernel, sizes)
    return {
        n: jax.ShapeDtypeStruct(plan.shapes[n], np_dtype(kernel.tensors[n].dtype))
        for n in kernel.inputs
    }


def test_fused_decode_defaults_trace_with_exact_offsets():
    """The stacked cache has 40*512*1024*128 = 2.68e9 elements: more than an int32 flat index
    holds.  Tracing the executor at the authors' sizes (forward and gradient) must not overflow."""
    k = fd.fused_decode
    sizes = dict(k.defaults)
    spec = _abstract_inputs(k, sizes)
    assert int(np.prod(spec["k_cache"].shape, dtype=np.int64)) > 2**31
    outs, flags = jax.eval_shape(executor(k, sizes), spec)
    assert outs["out"].shape == (16, 40 * 128)
    assert all(r.count.dtype == jnp.int32 for r in flags.records)

    fn0 = executor(k, sizes, poison="zero")
    floats = ["q", "k_new", "v_new"]

    def grad(d, rest):
        out, pull = jax.vjp(lambda d: fn0({**rest, **d})[0]["out"], d)
        return pull(jnp.ones(out.shape, out.dtype))[0]

    g = jax.eval_shape(
        grad, {n: spec[n] for n in floats}, {n: v for n, v in spec.items() if n not in floats}
    )
    assert g["q"].shape == spec["q"].shape


def test_extent_beyond_int32_is_refused():
    @tp.kernel(grid={"p": 1}, tensors=dict(x=tp.Input(("N",)), o=tp.Output((1,))))
    def huge(x, o):
        tp.store(o, (tp.ds(0, 1),), tp.load(x, (tp.ds(0, 1),)))

    from tileproof.verify.numeric import NumericUnsupported

    with pytest.raises(NumericUnsupported, match="beyond 2\\*\\*31"):
        get_plan(huge, {"N": 1 << 31})


# ----------------------------------------------------------------------------- the device's cap


class _FakeDevice:
    def __init__(self, platform, stats):
        self.platform, self._stats = platform, stats

    def memory_stats(self):
        return self._stats


def test_cap_follows_the_devices_free_memory():
    from tileproof.verify.numeric._sizes import BYTES_PER_ELEMENT, CAP_ELEMENTS, device_cap_elements

    h200 = _FakeDevice("gpu", {"bytes_limit": 139 << 30, "bytes_in_use": 1 << 30})
    cap = device_cap_elements(h200)
    assert cap == int((138 << 30) * 0.8) // BYTES_PER_ELEMENT
    assert cap >= 40 * 512 * 1024 * 128  # fused_decode's stacked cache fits
    small = _FakeDevice("gpu", {"bytes_limit": 8 << 30, "bytes_in_use": 6 << 30})
    assert CAP_ELEMENTS < device_cap_elements(small) < 40 * 512 * 1024 * 128
    assert device_cap_elements(_FakeDevice("cpu", {})) == CAP_ELEMENTS
    assert device_cap_elements(_FakeDevice("gpu", None)) == CAP_ELEMENTS  # no statistics
    assert device_cap_elements(jax.devices("cpu")[0]) == CAP_ELEMENTS


def test_defaults_run_where_the_device_has_the_memory():
    from tileproof.verify.numeric._sizes import choose_sizes

    k = fd.fused_decode
    dropped: list = []
    on_gpu = choose_sizes(k, budget=1, cap=1 << 33, extra=[dict(B=8)], dropped=dropped)
    assert on_gpu[1] == k.defaults and not dropped  # given point, then the authors' sizes
    on_gpu_given = on_gpu[0]
    assert on_gpu_given["B"] == 8 and on_gpu_given["L"] == 40  # completed from the defaults
    on_cpu = choose_sizes(k, budget=1, extra=[dict(k.defaults)], dropped=dropped)
    assert k.defaults not in on_cpu and dropped == [k.defaults]


# ----------------------------------------------------------------------------- while conditions


def _cond_load(offset: int = 0, cond_tensor: str = "lens"):
    """`while i < lens[b + offset]`: copies a row prefix of each sequence (the bound is read
    from memory at every evaluation of the condition)."""

    def ref(lens, x, o, s):
        keep = jnp.arange(x.shape[1])[None, :] < lens[:, None]
        return {"o": jnp.where(keep, x, o)}

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "L <= 64"],
        tensors=dict(
            lens=tp.Input(("B",), "int32", values="0 <= v <= L"),
            x=tp.Input(("B", "L")),
            o=tp.Input(("B", "L"), updated=True),
            s=tp.Input(("B",), "int32", values="0 <= v <= L"),
        ),
        reference=ref,
    )
    def cond_load(lens, x, o, s):
        b = tp.program_id(0)
        bound = lens if cond_tensor == "lens" else s

        def body(i):
            tp.store(o, (b, tp.ds(i, 1)), tp.load(x, (b, tp.ds(i, 1))))
            return i + 1

        lax.while_loop(lambda i: i < tp.load(bound, (b + offset,)), body, jnp.int32(0))

    return cond_load


def test_a_load_in_a_while_condition_runs_and_matches():
    k = _cond_load(0)
    lens = np.array([0, 3, 5, 1], np.int32)
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    o = -np.ones((4, 5), np.float32)
    out, flags = execute(k, {"B": 4, "L": 5}, {"lens": lens, "x": x, "o": o, "s": lens})
    assert flags.ok, flags.findings()
    want = np.where(np.arange(5)[None, :] < lens[:, None], x, o)
    np.testing.assert_array_equal(np.asarray(out["o"]), want)
    from tileproof.verify.numeric import check_numeric

    res = check_numeric(k, budget=2)
    assert res.status == "matched", res.message


def test_an_overrunning_load_in_a_while_condition_is_flagged():
    """`lens[b + 1]`: the last program's condition reads past the end of lens."""
    k = _cond_load(1)
    lens = np.array([2, 3, 5, 1], np.int32)
    x = np.zeros((4, 5), np.float32)
    _out, flags = execute(k, {"B": 4, "L": 5}, {"lens": lens, "x": x, "o": x, "s": lens})
    (f,) = [f for f in flags.findings() if f.kind == "oob_load"]
    assert f.tensor == "lens" and f.element == (4,) and f.program == {"b": 3}
    assert "test_numeric_scale.py" in str(f.location)


def test_a_store_in_a_while_condition_is_refused():
    @tp.kernel(grid={"b": 1}, tensors=dict(x=tp.Input((4,)), o=tp.Output((4,))))
    def storing_cond(x, o):
        def cond(i):
            tp.store(o, (tp.ds(0, 1),), tp.load(x, (tp.ds(0, 1),)))
            return i < 4

        lax.while_loop(cond, lambda i: i + 1, jnp.int32(0))

    from tileproof.verify.numeric import NumericUnsupported

    with pytest.raises(NumericUnsupported):
        execute(storing_cond, {}, {"x": np.zeros(4, np.float32)})


def test_logged_writes_to_an_empty_tensor_run_and_flag_nothing_that_did_not_happen():
    """A tensor with a zero extent (``N - 1`` at N=1) whose stores are all guarded off:
    applying the phase's write log must not gather from the empty array (fuzz regression)."""
    import jax.numpy as jnp
    import numpy as np

    import tileproof.spec as tp
    from tileproof.verify.numeric import execute

    @tp.kernel(
        grid={"p0": 2, "p1": 2},
        assume=["N <= 6"],
        tensors=dict(x=tp.Input(("N", 4)), y=tp.Output(("N - 1",))),
    )
    def empty_tail(x, y):
        p0, p1, n = tp.program_id(0), tp.program_id(1), tp.size("N")

        @tp.when(p0 < n - 1)
        def _():
            tp.store(y, (tp.ds(p1, 1),), jnp.float32(0))

            @tp.when(p1 == 0)
            def _():
                start = jnp.minimum(2 * p1, n - 2)
                tp.store(y, (tp.ds(start, 2),), jnp.float32(0), mask=start + jnp.arange(2) < n - 1)

    _, flags = execute(empty_tail, {"N": 1}, {"x": np.ones((1, 4), np.float32)})
    assert flags.findings() == []
    _, flags = execute(empty_tail, {"N": 3}, {"x": np.ones((3, 4), np.float32)})
    assert any(
        "race" in f.kind or "twice" in f.message or "written by" in f.message
        for f in flags.findings()
    ), [f.message for f in flags.findings()]
