"""check_numeric: correct kernels match values and gradients; defects show as mismatches."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import tileproof.spec as tp
from tileproof.verify.numeric import check_numeric, choose_sizes, execute

# ----------------------------------------------------------------------------- correct kernels


@tp.kernel(
    grid={"i": "cdiv(R, 8)", "j": "C // 16"},
    assume=["C % 16 == 0", "R <= 64", "C <= 64"],
    defaults={"R": 20, "C": 32},
    tensors=dict(x=tp.Input(("R", "C")), y=tp.Input(("R", "C")), o=tp.Output(("R", "C"))),
    reference=lambda x, y: x * y + x,
)
def masked_mul_add(x, y, o):
    i, j = tp.program_id(0), tp.program_id(1)
    rows = i * 8 + jnp.arange(8)[:, None] < tp.size("R")
    idx = (tp.ds(i * 8, 8), tp.ds(j * 16, 16))
    a = tp.load(x, idx, mask=jnp.broadcast_to(rows, (8, 16)))
    b = tp.load(y, idx, mask=jnp.broadcast_to(rows, (8, 16)))
    tp.store(o, idx, a * b + a, mask=jnp.broadcast_to(rows, (8, 16)))


@tp.kernel(
    grid={"m": "M // 8", "n": "N // 8"},
    assume=["M % 8 == 0", "N % 8 == 0", "K % 8 == 0", "M <= 32", "N <= 32", "K <= 32"],
    defaults={"M": 16, "N": 8, "K": 24},
    tensors=dict(a=tp.Input(("M", "K")), b=tp.Input(("K", "N")), c=tp.Output(("M", "N"))),
    reference=lambda a, b: jnp.dot(a, b, precision="highest"),
)
def matmul(a, b, c):
    m, n = tp.program_id(0), tp.program_id(1)

    def body(k, acc):
        at = tp.load(a, (tp.ds(m * 8, 8), tp.ds(k * 8, 8)))
        bt = tp.load(b, (tp.ds(k * 8, 8), tp.ds(n * 8, 8)))
        return acc + at @ bt

    acc = lax.fori_loop(0, tp.size("K") // 8, body, jnp.zeros((8, 8)))
    tp.store(c, (tp.ds(m * 8, 8), tp.ds(n * 8, 8)), acc)


@tp.kernel(
    grid={"r": "cdiv(R, 4)"},
    assume=["R <= 32"],
    defaults={"R": 6},
    tensors=dict(x=tp.Input(("R", 16)), o=tp.Output(("R", 16))),
    reference=lambda x: jax.nn.softmax(x, axis=-1),
)
def row_softmax(x, o):
    r = tp.program_id(0)
    valid = (r * 4 + jnp.arange(4) < tp.size("R"))[:, None]
    t = tp.load(x, (tp.ds(r * 4, 4), slice(None)), mask=jnp.broadcast_to(valid, (4, 16)))
    e = jnp.exp(t - t.max(axis=1, keepdims=True))
    tp.store(
        o,
        (tp.ds(r * 4, 4), slice(None)),
        e / e.sum(axis=1, keepdims=True),
        mask=jnp.broadcast_to(valid, (4, 16)),
    )


def test_tiled_kernels_match_values_and_gradients():
    for k in (masked_mul_add, matmul, row_softmax):
        res = check_numeric(k, budget=2)
        assert res.status == "matched", (k.name, res.message)
        assert res.gradients["status"] == "matched", (k.name, res.gradients)
        assert res.sizes[0] == k.defaults
        assert res.max_abs_err < 1e-4 and res.gradients["max_abs_err"] < 1e-4
        js = res.to_json()
        assert set(js) >= {"status", "sizes", "max_abs_err", "max_rel_err", "gradients"}


# ----------------------------------------------------------------------------- sizes


@tp.kernel(
    grid={"i": "N // 64"},  # drops the tail when 64 does not divide N
    assume=["N <= 1024"],
    defaults={"N": 128},
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def floor_grid(x, y):
    i = tp.program_id(0)
    tp.store(y, (tp.ds(i * 64, 64),), 2 * tp.load(x, (tp.ds(i * 64, 64),)))


def test_boundary_sizes_start_with_the_static_counterexample():
    cex = {"N": 48, "i": 0, "_c0": 5}  # what a violated coverage obligation reports
    sizes = choose_sizes(floor_grid, extra=[cex], budget=3)
    assert sizes[0] == {"N": 48}
    assert sizes[1] == {"N": 128}  # then the authors' defaults
    assert {"N": 1} in sizes  # the smallest admissible point (and 64 does not divide it)
    res = check_numeric(floor_grid, extra_sizes=[cex], budget=0, gradients=False)
    assert res.status == "mismatch" and res.sizes == [{"N": 48}]
    assert "at sizes N=48" in res.message and "y[0] is never written" in res.message


def test_sizes_respect_the_domain_and_make_divisions_inexact():
    sizes = choose_sizes(masked_mul_add, budget=5)
    assert sizes[0] == {"R": 20, "C": 32}
    assert all(s["C"] % 16 == 0 and s["R"] <= 64 for s in sizes)
    assert any(s["R"] % 8 for s in sizes)


def test_tolerances_are_per_dtype_and_overridable():
    res = check_numeric(
        matmul,
        sizes={"M": 8, "N": 8, "K": 8},
        budget=0,
        gradients=False,
        tolerances={"float32": (0.0, 0.0)},
    )
    assert res.status in ("matched", "mismatch")  # exact comparison may or may not pass
    res = check_numeric(
        row_softmax,
        sizes={"R": 3},
        budget=0,
        gradients=False,
        tolerances={"float32": {"rtol": 1e-3, "atol": 1e-3}},
    )
    assert res.status == "matched"


# ----------------------------------------------------------------------------- gradients


@jax.custom_vjp
def _double(x):
    return 2 * x


_double.defvjp(lambda x: (2 * x, None), lambda _, g: (3 * g,))  # wrong: the derivative is 2


@tp.kernel(
    grid={"i": 4}, tensors=dict(x=tp.Input((4, 8)), o=tp.Output((4, 8))), reference=lambda x: 2 * x
)
def wrong_backward(x, o):
    i = tp.program_id(0)
    tp.store(o, (i, slice(None)), _double(tp.load(x, (i, slice(None)))))


def test_right_forward_wrong_backward_is_a_gradient_mismatch():
    res = check_numeric(wrong_backward, budget=1)
    assert res.status == "mismatch"
    assert res.max_abs_err == 0.0
    assert res.gradients["status"] == "mismatch"
    assert "gradient dx[" in res.message


# ----------------------------------------------------------------------------- ring


def _ring_fold(r, n, streams, contrib, acc):
    """Bidirectional open-mesh ring: every rank folds every other rank's chunk once.

    At step s the west stream holds the chunk of rank r - s, the east stream that of r + s.
    """

    def step(s, carry):
        west, east, acc = carry
        west = [tp.sendrecv(w, to=r + 1, frm=r - 1, send=r + 1 < n, recv=r - 1 >= 0) for w in west]
        east = [tp.sendrecv(e, to=r - 1, frm=r + 1, send=r - 1 >= 0, recv=r + 1 < n) for e in east]
        w_ok, e_ok = r - s >= 0, r + s < n
        acc = acc + jnp.where(w_ok, contrib(*[tp.fold(w, when=w_ok) for w in west]), 0.0)
        acc = acc + jnp.where(e_ok, contrib(*[tp.fold(e, when=e_ok) for e in east]), 0.0)
        return west, east, acc

    return lax.fori_loop(1, n, step, (list(streams), list(streams), acc))[2]


def _ring_ref(q, k, v):
    m = jnp.einsum("csd,cse->de", k, v, precision="highest")
    return jnp.einsum("rqd,de->rqe", q, m, precision="highest")


_RING = dict(
    grid={"one": 1},
    ranks=tp.Ranks(size="n", topology="mesh"),
    assume=["n <= 8"],
    defaults={"n": 4},
)
_QKV = dict(
    q=tp.Input(("n", 4, 8), sharded=True),
    k=tp.Input(("n", 4, 8), sharded=True),
    v=tp.Input(("n", 4, 8), sharded=True),
)


@tp.kernel(
    **_RING, tensors=dict(**_QKV, o=tp.Output(("n", 4, 8), sharded=True)), reference=_ring_ref
)
def ring_attention(q, k, v, o):
    r, n = tp.rank_id(), tp.num_ranks()
    own = (r, slice(None), slice(None))
    qt, kt, vt = tp.load(q, own), tp.load(k, own), tp.load(v, own)
    m = _ring_fold(r, n, (kt, vt), lambda k, v: k.T @ v, kt.T @ vt)
    tp.store(o, own, qt @ m)


def _ring_bwd(reuse_step0: bool):
    def body(q, k, v, do, dq, dk, dv):
        r, n = tp.rank_id(), tp.num_ranks()
        own = (r, slice(None), slice(None))
        qt, kt, vt, dot = tp.load(q, own), tp.load(k, own), tp.load(v, own), tp.load(do, own)
        if reuse_step0:  # the real bug: every step folds the K/V it started with
            m = _ring_fold(r, n, (kt, vt), lambda _k, _v: kt.T @ vt, kt.T @ vt)
        else:
            m = _ring_fold(r, n, (kt, vt), lambda k, v: k.T @ v, kt.T @ vt)
        a = _ring_fold(r, n, (qt, dot), lambda q, d: q.T @ d, qt.T @ dot)
        tp.store(dq, own, dot @ m.T)
        tp.store(dk, own, vt @ a.T)
        tp.store(dv, own, kt @ a)

    outs = {f"d{n}": tp.Output(("n", 4, 8), sharded=True) for n in "qkv"}
    return tp.kernel(
        **_RING,
        tensors=dict(**_QKV, do=tp.Input(("n", 4, 8), sharded=True), **outs),
        name="ring_attention_bwd" + ("_step0" if reuse_step0 else ""),
    )(body)


def test_ring_matches_values_gradients_and_backward_spec():
    k = dataclasses.replace(ring_attention, backward=_ring_bwd(False))
    res = check_numeric(k, sizes={"n": 4}, budget=0)
    assert res.status == "matched", res.message
    assert res.gradients["status"] == "matched"


def test_ring_backward_reusing_step0_kv_is_a_mismatch():
    k = dataclasses.replace(ring_attention, backward=_ring_bwd(True))
    res = check_numeric(k, sizes={"n": 4}, budget=0)
    assert res.status == "mismatch"
    assert res.max_abs_err < 1e-4  # the forward is right
    assert "backward ring_attention_bwd_step0: dq[" in res.message
    assert "the reference's vjp" in res.message


def test_ranks_on_devices_match_ranks_as_a_vmapped_axis():
    """Each rank on its own (host) device through shard_map, ring steps as collectives."""
    code = textwrap.dedent(f"""
        import numpy as np, jax, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import test_numeric_check as t
        from tileproof.verify.numeric import execute
        assert len(jax.devices()) == 4
        rng = np.random.default_rng(1)
        x = {{n: rng.standard_normal((4, 4, 8)).astype(np.float32) for n in "qkv"}}
        a, fa = execute(t.ring_attention, {{"n": 4}}, x)
        b, fb = execute(t.ring_attention, {{"n": 4}}, x, devices=jax.devices())
        assert fa.ok and fb.ok, (fa.findings(), fb.findings())
        np.testing.assert_allclose(np.asarray(a["o"]), np.asarray(b["o"]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(b["o"]), np.asarray(t._ring_ref(x["q"], x["k"], x["v"])),
                                   rtol=1e-4, atol=1e-4)
        print("ok")
    """)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_ring_send_off_the_edge_and_unmatched_receive():
    @tp.kernel(**_RING, tensors=dict(x=tp.Input(("n", 8)), o=tp.Output(("n", 8))))
    def closed_ring_on_open_mesh(x, o):
        r, _n = tp.rank_id(), tp.num_ranks()
        got = tp.sendrecv(tp.load(x, (r, slice(None))), to=r + 1, frm=r - 1)  # wraps nowhere
        tp.store(o, (r, slice(None)), got)

    out, flags = execute(closed_ring_on_open_mesh, {"n": 4}, {"x": np.ones((4, 8), np.float32)})
    by = {f.kind: f for f in flags.findings()}
    assert set(by) == {"ring_edge", "ring_recv"}
    assert (
        "rank 3 program (one=0) sends" in by["ring_edge"].message
        and "to rank 4" in by["ring_edge"].message
    )
    assert "rank 0 program (one=0) receives" in by["ring_recv"].message
    assert np.isnan(np.asarray(out["o"])[0]).all()
