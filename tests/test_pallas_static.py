"""tileproof.pallas on small Triton kernels: each bug class refuted, each correct twin proved.

The kernels live in ``tests/specs/pallas_small.py`` as plain ``pl.pallas_call`` code; they are
verified unmodified, traced on symbolic shapes.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import pytest

import tileproof as tp
from tileproof.lowering import lower

_HERE = os.path.dirname(__file__)
_spec = importlib.util.spec_from_file_location(
    "pallas_small", os.path.join(_HERE, "specs", "pallas_small.py")
)
ps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ps)
SRC = os.path.abspath(os.path.join(_HERE, "specs", "pallas_small.py"))


def _verify(fn, args, assume, **kw):
    k = tp.pallas(fn, args=args, assume=assume, **kw)
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error is None, rep.error
    return k, rep.obligations


def _by(obs, kind, status):
    return [o for o in obs if o.kind == kind and o.status == status]


def _all_proved(obs):
    bad = [(o.kind, o.status, o.message) for o in obs if o.status != "proved"]
    assert not bad, bad


N = [tp.Arg(("N",))]


def test_masked_tail_with_cdiv_grid_is_proved():
    k, obs = _verify(ps.scale, N, ["N <= 2**20"])
    _all_proved(obs)
    assert [g.name for g in k.grid] == ["pid0"]
    assert str(k.grid[0].extent) == "(N + 127) // 128"


def test_floor_divided_grid_leaves_the_tail_unwritten():
    _k, obs = _verify(functools.partial(ps.scale, grid="floor"), N, ["N <= 2**20"])
    (cov,) = _by(obs, "coverage", "violated")
    assert cov.counterexample["N"] < 128  # N // 128 programs: none at all for a short array
    assert cov.location.file == SRC and cov.location.line == 26  # the kernel's own store
    assert not _by(obs, "bounds", "violated")


def test_unmasked_tail_block_reads_and_writes_past_the_array():
    _k, obs = _verify(functools.partial(ps.scale, masked=False), N, ["N <= 2**20"])
    viol = _by(obs, "bounds", "violated")
    assert {o.message.split()[0] for o in viol} == {"load", "store"}
    for o in viol:
        assert o.location.file == SRC and o.location.line == 28
        n, i = o.counterexample["N"], o.counterexample["element[0]"]
        assert i >= n  # substituted back: the element is past the end


def test_a_grid_axis_the_output_index_map_ignores_races():
    args = [tp.Arg(("M", "128*K"))]
    _k, obs = _verify(functools.partial(ps.rows, race=True), args, ["M <= 1024", "K <= 64"])
    (race,) = _by(obs, "race", "violated")
    ce = race.counterexample
    assert ce["pid1"] != ce["pid1'"] and ce["pid0"] == ce["pid0'"]
    _k, obs = _verify(ps.rows, args, ["M <= 1024", "K <= 64"])
    _all_proved(obs)


def test_one_byte_arrays_past_2_31_elements_overflow_triton_i32_offsets():
    # Triton computes element offsets in i32 unless the array exceeds 2**32 bytes
    # (jax/_src/pallas/triton/lowering.py): an int8 array of 2**31 + 1 .. 2**32 elements wraps.
    arg = [tp.Arg(("N",), "int8", values="-64 <= v < 64")]
    _k, obs = _verify(ps.scale, arg, ["N <= 2**32"])
    offs = [o for o in _by(obs, "overflow", "violated") if "offset" in o.message]
    assert offs and all(o.counterexample["N"] > 2**31 for o in offs)
    _k, obs = _verify(ps.scale, arg, ["N <= 2**31"])
    _all_proved(obs)


def test_four_byte_arrays_use_wide_offsets_but_the_kernels_i32_arithmetic_is_checked():
    # f32 arrays over 2**32 bytes get i64 offsets, but `i * BLOCK` in the kernel is i32
    _k, obs = _verify(ps.scale, N, ["N <= 2**33"])
    arith = _by(obs, "overflow", "violated")
    assert arith and all("int32 arithmetic" in o.message for o in arith)
    assert all(o.counterexample["N"] > 2**31 - 128 for o in arith)


@pytest.mark.parametrize(
    "fn,args,assume,what",
    [
        (ps.strided, [tp.Arg((256,))], [], "strided"),
        (ps.atomic_sum, [tp.Arg(("128*K",))], ["K <= 64"], "atomic_rmw"),
    ],
)
def test_constructs_without_an_exact_model_are_unknown_never_proved(fn, args, assume, what):
    k, obs = _verify(fn, args, assume)
    unk = [o for o in obs if o.status == "unknown" and what in o.message]
    assert unk and unk[0].location.file == SRC
    assert any(what in u.what for u in lower(k).unsupported)


def test_a_backend_whose_rules_are_not_modelled_is_refused_not_proved():
    # the call is lowered for Triton; declaring TPU is refused at the call's line
    k = tp.pallas(ps.scale, args=N, assume=["N <= 2**20"], backend="tpu")
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error and "triton" in rep.error and "pallas_small.py" in rep.error
    assert not any(o.status == "proved" for o in rep.obligations)


def test_a_tpu_call_declared_for_the_gpu_is_refused():
    # the declared backend must be the one the call is lowered for: Triton's rules on a
    # Mosaic call would report wrong verdicts (tests/test_pallas_tpu.py verifies it as TPU)
    from jax.experimental.pallas.ops.tpu import matmul as mm

    k = tp.pallas(
        mm.matmul,
        args=[tp.Arg(("128*M", "128*K")), tp.Arg(("128*K", "128*N"))],
        static=dict(block_shape=(128, 128)),
        assume=["M <= 64", "N <= 64", "K <= 64"],
        backend="gpu",
    )
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error and "mosaic" in rep.error and "matmul.py" in rep.error


def test_trace_errors_name_the_kernels_line():
    from jax.experimental.pallas.ops.gpu import softmax

    # the row length must be static: pl.next_power_of_2(row_len) on a symbolic size fails
    with pytest.raises(tp.spec.SpecError) as e:
        tp.pallas(softmax.softmax, args=[tp.Arg(("B", "N"))])
    assert "softmax.py:" in str(e.value)
    with pytest.raises(tp.spec.SpecError, match=r"calls no pl\.pallas_call"):
        tp.pallas(lambda x: x + 1, args=N)


def test_the_supported_jax_range_is_declared_and_checked():
    from tileproof.pallas._read import jax_supported

    assert jax_supported()  # the installed one
    assert jax_supported("0.11.2") and not jax_supported("0.9.0") and not jax_supported("0.12.0")
    with open(os.path.join(_HERE, "..", "pyproject.toml")) as f:
        text = f.read()
    assert 'pallas = ["jax>=0.10,<0.12"]' in text


def test_size_arithmetic_is_exact_host_math_but_device_index_math_is_i32():
    # `n * 8` overflows int32 from N = 2**28, but it is a Python int at lowering time: no finding
    _k, obs = _verify(ps.looped, N, ["N <= 2**31 - 128"])
    _all_proved(obs)
    # the device's `i * BLOCK + arange` does wrap once the array passes 2**31 - 127 elements
    _k, obs = _verify(ps.looped, N, ["N <= 2**31 + 128"])
    bad = _by(obs, "overflow", "violated")
    assert bad and all(o.location.file == SRC for o in bad)
    assert all(o.counterexample["N"] > 2**31 - 128 for o in bad)
