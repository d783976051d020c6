"""The device-side comparison of large floating arrays says what the host's says.

:func:`tileproof.verify.numeric._compare.compare` compares tensors of at least
``DEVICE_MIN_ELEMENTS`` elements where they are (production-size gradients would
otherwise make a dozen float64 copies on the host).  Here the threshold is lowered so
that small arrays take the device path, and every verdict, worst index, count and the
message are checked against the host path on the same arrays: planted mismatches, NaN
(poisoned) elements, NaN in both, infinities, ties, zero tolerances.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tileproof.verify.numeric import _compare
from tileproof.verify.numeric._compare import TOLERANCES, _split, compare


def both(monkeypatch, a, b, dtype="float32", tol=TOLERANCES):
    host = compare("x", np.asarray(a), np.asarray(b), tol, dtype)
    monkeypatch.setattr(_compare, "DEVICE_MIN_ELEMENTS", 1)
    dev = compare("x", jnp.asarray(a), jnp.asarray(b), tol, dtype)
    monkeypatch.setattr(_compare, "DEVICE_MIN_ELEMENTS", 1 << 24)
    return host, dev


def same(host, dev, a=None, b=None):
    assert dev.ok == host.ok, (host, dev)
    if dev.where != host.where:  # only between errors equal to float32 precision
        err = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        np.testing.assert_allclose(err[dev.where], err[host.where], rtol=1e-6)
    np.testing.assert_allclose(dev.max_abs_err, host.max_abs_err, rtol=1e-6)
    if np.isfinite(host.max_rel_err):
        np.testing.assert_allclose(dev.max_rel_err, host.max_rel_err, rtol=1e-5)
    if not host.ok:
        # the count is exact; the element and its values where the worst is the same one
        if dev.where == host.where:
            assert dev.message.split("(")[0] == host.message.split("(")[0]
        assert dev.message.split(";")[1] == host.message.split(";")[1]


RNG = np.random.default_rng(3)


@pytest.mark.parametrize(
    "case", ["equal", "one_off", "nan_got", "nan_both", "inf_ref", "ties", "all_bad", "3d"]
)
def test_device_path_matches_host_path(monkeypatch, case):
    shape = (6, 5, 4) if case == "3d" else (7, 9)
    b = RNG.standard_normal(shape).astype(np.float32)
    a = b + RNG.standard_normal(shape).astype(np.float32) * 1e-7
    if case == "one_off":
        a[3, 4] += 0.5
    elif case == "nan_got":
        a[2, 1] = np.nan
        a[5, 0] = np.nan
    elif case == "nan_both":
        a[1, 1] = b[1, 1] = np.nan
    elif case == "inf_ref":
        b[0, 3] = np.inf
        a[0, 3] = np.inf
    elif case == "ties":
        a = b.copy()
        a[1, 2] += 1.0
        a[4, 0] += 1.0  # same error twice: the first index is the one reported
    elif case == "all_bad":
        a = b + 10.0 + np.arange(b.size, dtype=np.float32).reshape(shape) % 5
    elif case == "3d":
        a[5, 4, 3] -= 3.0
    host, dev = both(monkeypatch, a, b)
    same(host, dev, a, b)
    if case in ("one_off", "nan_got", "ties", "all_bad", "3d"):
        assert not dev.ok
    else:
        assert dev.ok


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 6),
    bad=st.lists(st.tuples(st.integers(0, 35), st.floats(-4, 4)), max_size=4),
    dtype=st.sampled_from(["float32", "bfloat16", "float16"]),
    zero_tol=st.booleans(),
)
def test_device_and_host_agree_on_drawn_arrays(rows, cols, bad, dtype, zero_tol):
    mp = pytest.MonkeyPatch()
    try:
        b = np.random.default_rng(rows * 7 + cols).standard_normal((rows, cols)).astype(np.float32)
        a = b.copy()
        for k, d in bad:
            a.flat[k % a.size] += d
        a, b = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
        tol = {dtype: (0.0, 0.0)} if zero_tol else TOLERANCES
        host, dev = both(mp, np.asarray(a), np.asarray(b), dtype, tol)
        same(host, dev, a, b)
    finally:
        mp.undo()


def test_split_keeps_both_factors_inside_int32():
    assert _split((16, 32, 512, 8, 8, 128, 20)) is not None
    shape = (40, 512, 16, 32, 8, 128)  # 2.7e9 elements: fused_decode's KV cache
    i = _split(shape)
    assert np.prod(shape[:i]) < 2**31 and np.prod(shape[i:]) < 2**31
    assert _split((2**32,)) is None  # one axis beyond int32: the host's comparison


def test_integers_and_small_arrays_stay_on_the_host(monkeypatch):
    calls = []
    monkeypatch.setattr(_compare, "_device_stats", lambda *a: calls.append(a))
    compare("x", jnp.arange(10), jnp.arange(10), TOLERANCES, "int32")
    compare("x", jnp.ones(10), jnp.ones(10), TOLERANCES, "float32")
    assert calls == []


def test_production_paths_find_the_same_mismatches(monkeypatch):
    """With every floating input drawn on the device and every comparison made there (the
    paths production sizes take), a correct kernel matches and defects stay mismatches,
    in values and in gradients."""
    from test_numeric_check import floor_grid, wrong_backward

    from tileproof.catalog import KERNELS
    from tileproof.verify.numeric import _inputs, check_numeric

    monkeypatch.setattr(_inputs, "_BIG_FLOAT", 0)
    monkeypatch.setattr(_compare, "DEVICE_MIN_ELEMENTS", 1)
    paged = next(k for k in KERNELS if k.name == "paged_attention")
    assert check_numeric(paged, budget=1).status == "matched"
    res = check_numeric(floor_grid, extra_sizes=[{"N": 48}], budget=0, gradients=False)
    assert res.status == "mismatch" and "y[0] is never written" in res.message
    res = check_numeric(wrong_backward, budget=1)
    assert res.status == "mismatch" and "gradient dx[" in res.message
