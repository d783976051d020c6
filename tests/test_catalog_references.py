"""The catalog references against deliberately naive float64 loops over batch, pages, ranks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from tileproof.catalog.references import (
    compressor_pool,
    decode_split_k,
    fused_decode,
    mesh_ring_attention,
    paged_attention,
    ring_attention_steps,
)

TOL = {"rtol": 2e-5, "atol": 2e-5}  # float32 math against float64 loops, small sizes


def _f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _softmax(s: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _finite_grads(f, args, argnums) -> None:
    out = f(*args)
    cot = [np.random.default_rng(7).standard_normal(o.shape).astype(np.float32) for o in out]

    def loss(*a):
        return sum(jnp.sum(o.astype(jnp.float32) * c) for o, c in zip(f(*a), cot, strict=True))

    grads = jax.jit(jax.grad(loss, argnums=argnums))(*args)
    for i, g in zip(argnums, grads, strict=True):
        assert np.all(np.isfinite(np.asarray(g))), f"non-finite gradient for argument {i}"
        assert np.any(np.asarray(g) != 0), f"zero gradient for argument {i}"


# ---------------------------------------------------------------- paged decode attention


def naive_paged(q, k_cache, v_cache, table, lens, scale=None):
    """Loops over batch, pages, heads; only the first lens[b] tokens are ever looked at."""
    q, k_cache, v_cache = (np.asarray(a, np.float64) for a in (q, k_cache, v_cache))
    if k_cache.ndim == 3:
        k_cache, v_cache = k_cache[:, :, None], v_cache[:, :, None]
    b_, hq, d = q.shape
    page, hkv = k_cache.shape[1], k_cache.shape[2]
    scale = 1 / math.sqrt(d) if scale is None else scale
    out = np.zeros((b_, hq, d))
    for b in range(b_):
        n = int(lens[b])
        if n == 0:
            continue
        ks, vs = [], []
        for j in range(-(-n // page)):
            pg, valid = int(table[b, j]), min(page, n - j * page)
            ks.append(k_cache[pg, :valid])
            vs.append(v_cache[pg, :valid])
        k, v = np.concatenate(ks), np.concatenate(vs)  # [n, Hkv, D]
        for h in range(hq):
            kvh = h // (hq // hkv)
            w = _softmax(k[:, kvh] @ q[b, h] * scale)
            out[b, h] = w @ v[:, kvh]
    return out


def _paged_inputs(rng, *, b, hq, hkv, d, page, max_pages, pool, lens):
    q = _f32(rng, b, hq, d)
    kc, vc = _f32(rng, pool, page, hkv, d), _f32(rng, pool, page, hkv, d)
    table = rng.integers(0, pool, size=(b, max_pages)).astype(np.int32)  # with replacement
    table[0, 0] = pool - 1  # the last page of the pool is used
    rng.shuffle(table, axis=1)
    return q, kc, vc, table, np.asarray(lens, np.int32)


@pytest.mark.parametrize("hkv, page", [(1, 8), (2, 4)])
def test_paged_attention_matches_naive(hkv: int, page: int) -> None:
    rng = np.random.default_rng(0)
    max_pages = 3
    args = _paged_inputs(
        rng,
        b=3,
        hq=4,
        hkv=hkv,
        d=16,
        page=page,
        max_pages=max_pages,
        pool=5,
        lens=[1, max_pages * page, page + 1],
    )
    got = jax.jit(paged_attention)(*args)
    assert got.dtype == jnp.float32 and got.shape == (3, 4, 16)
    assert_allclose(got, naive_paged(*args), **TOL)
    # The kernel's flat single-head cache [pages, page, D] is accepted too.
    if hkv == 1:
        q, kc, vc, table, lens = args
        got3 = jax.jit(paged_attention)(q, kc[:, :, 0], vc[:, :, 0], table, lens)
        assert_allclose(got3, got, rtol=1e-6, atol=1e-6)
    scaled = jax.jit(paged_attention, static_argnames="scale")(*args, scale=0.3)
    assert_allclose(scaled, naive_paged(*args, scale=0.3), **TOL)


def test_decode_split_k_matches_naive() -> None:
    rng = np.random.default_rng(1)
    max_pages, page = 4, 4
    args = _paged_inputs(
        rng,
        b=3,
        hq=6,
        hkv=2,
        d=8,
        page=page,
        max_pages=max_pages,
        pool=6,
        lens=[max_pages * page, 1, 2 * page - 1],
    )
    got = jax.jit(decode_split_k)(*args)
    assert_allclose(got, naive_paged(*args), **TOL)
    half = [a.astype(np.float16) if a.dtype == np.float32 else a for a in args]
    got16 = jax.jit(decode_split_k)(*half)
    assert got16.dtype == jnp.float16
    assert_allclose(got16, naive_paged(*half), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("fn", [paged_attention, decode_split_k])
def test_paged_masking_ignores_poison_and_empty_rows(fn) -> None:
    """NaN past seq_len, garbage table entries past the last page, a row of length 0."""
    rng = np.random.default_rng(2)
    b, hq, hkv, d, page, max_pages = 3, 4, 2, 8, 4, 3
    lens = np.array([5, 0, 1], np.int32)
    pool = b * max_pages
    table = rng.permutation(pool).reshape(b, max_pages).astype(np.int32)  # pages unshared
    q, kc, vc = _f32(rng, b, hq, d), _f32(rng, pool, page, hkv, d), _f32(rng, pool, page, hkv, d)
    for row in range(b):
        for t in range(int(lens[row]), max_pages * page):
            kc[table[row, t // page], t % page] = np.nan
            vc[table[row, t // page], t % page] = np.nan
    want = naive_paged(q, kc, vc, table, lens)
    table[0, 2], table[1, :], table[2, 1:] = 10**6, -(10**6), pool + 3  # never read
    got = jax.jit(fn)(q, kc, vc, table, lens)
    assert_allclose(got, want, **TOL)
    assert np.all(np.asarray(got)[1] == 0)
    _finite_grads(lambda *a: (fn(*a, table, lens),), (q, kc, vc), (0, 1, 2))


@pytest.mark.parametrize("fn", [paged_attention, decode_split_k])
def test_paged_grads_finite(fn) -> None:
    rng = np.random.default_rng(3)
    q, kc, vc, table, lens = _paged_inputs(
        rng, b=3, hq=4, hkv=2, d=8, page=4, max_pages=2, pool=4, lens=[8, 0, 3]
    )
    _finite_grads(lambda *a: (fn(*a, table, lens),), (q, kc, vc), (0, 1, 2))


# ---------------------------------------------------------------- fused decode


def naive_fused(q, k_new, v_new, qw, kw, cos, sin, k_cache, v_cache, table, lens, eps=1e-6):
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    q, k_new, v_new, qw, kw, cos, sin = map(f, (q, k_new, v_new, qw, kw, cos, sin))
    kc, vc = f(k_cache).copy(), f(v_cache).copy()
    page, half = kc.shape[1], q.shape[-1] // 2

    def norm_rope(x, w, c, s):  # x [H, D]
        x = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w
        x1, x2 = x[:, :half], x[:, half:]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)

    q_rot = np.zeros_like(q)
    for b in range(q.shape[0]):
        n = int(lens[b])
        if n == 0:
            continue
        q_rot[b] = norm_rope(q[b], qw, cos[b], sin[b])
        pg, slot = int(table[b, (n - 1) // page]), (n - 1) % page
        kc[pg, slot] = norm_rope(k_new[b], kw, cos[b], sin[b])
        vc[pg, slot] = v_new[b]
    return naive_paged(q_rot, kc, vc, table, lens), kc, vc


def _fused_inputs(rng, lens, *, hq=10, hkv=2, d=8, page=4, max_pages=3, pool=7):
    b = len(lens)
    lens = np.asarray(lens, np.int32)
    q, kc, vc, table, lens = _paged_inputs(
        rng, b=b, hq=hq, hkv=hkv, d=d, page=page, max_pages=max_pages, pool=pool, lens=lens
    )
    # Each row's new token gets its own page (the last pages of the pool), so writes differ.
    for row in range(b):
        if lens[row] > 0:
            table[row, (lens[row] - 1) // page] = pool - 1 - row
    k_new, v_new = _f32(rng, b, hkv, d), _f32(rng, b, hkv, d)
    qw, kw = 1 + 0.1 * _f32(rng, d), 1 + 0.1 * _f32(rng, d)
    ang = rng.uniform(0, 2 * np.pi, size=(b, d // 2))
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    return q, k_new, v_new, qw, kw, cos, sin, kc, vc, table, lens


def test_fused_decode_matches_naive() -> None:
    rng = np.random.default_rng(4)
    args = _fused_inputs(rng, [12, 1, 7, 4])
    out, kc, vc = jax.jit(fused_decode)(*args)
    want_out, want_kc, want_vc = naive_fused(*args)
    assert out.shape == (4, 10, 8) and out.dtype == jnp.float32
    assert_allclose(out, want_out, **TOL)
    assert_allclose(kc, want_kc, **TOL)
    assert_allclose(vc, want_vc, **TOL)


def test_fused_decode_grads_finite() -> None:
    rng = np.random.default_rng(5)
    args = _fused_inputs(rng, [5, 0, 12])
    rest = args[3:]
    _finite_grads(lambda q, k, v: fused_decode(q, k, v, *rest), args[:3], (0, 1, 2))
    empty = jax.jit(fused_decode)(*args)
    assert np.all(np.asarray(empty[0])[1] == 0)
    assert_allclose(empty[1], naive_fused(*args)[1], **TOL)  # the empty row wrote nothing


# ---------------------------------------------------------------- ring attention


def naive_ring(q, k, v, causal=False):
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    n, sq, h, d = q.shape
    skv = k.shape[1]
    kk, vv = k.reshape(n * skv, h, d), v.reshape(n * skv, h, d)
    out = np.zeros_like(q)
    for r in range(n):
        for i in range(sq):
            for hh in range(h):
                s = kk[:, hh] @ q[r, i, hh] / math.sqrt(d)
                if causal:
                    s = np.where(np.arange(n * skv) <= r * sq + i, s, -np.inf)
                out[r, i, hh] = _softmax(s) @ vv[:, hh]
    return out


@pytest.mark.parametrize(("n", "sq", "skv", "causal"), [(3, 1, 4, False), (4, 3, 3, True)])
def test_mesh_ring_attention_matches_naive(n: int, sq: int, skv: int, causal: bool) -> None:
    rng = np.random.default_rng(6)
    q, k, v = _f32(rng, n, sq, 2, 8), _f32(rng, n, skv, 2, 8), _f32(rng, n, skv, 2, 8)
    got = jax.jit(mesh_ring_attention, static_argnames="causal")(q, k, v, causal=causal)
    assert_allclose(got, naive_ring(q, k, v, causal), **TOL)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("causal", [False, True])
def test_ring_steps_equal_mesh_ring_attention(n: int, causal: bool) -> None:
    rng = np.random.default_rng(10 + n)
    s = 4 if causal else 3
    q, k, v = _f32(rng, n, s, 2, 8), _f32(rng, n, 4, 2, 8), _f32(rng, n, 4, 2, 8)
    steps = jax.jit(ring_attention_steps, static_argnames="causal")(q, k, v, causal=causal)
    full = jax.jit(mesh_ring_attention, static_argnames="causal")(q, k, v, causal=causal)
    assert_allclose(steps, full, **TOL)


@pytest.mark.parametrize("fn", [mesh_ring_attention, ring_attention_steps])
def test_ring_grads_finite(fn) -> None:
    rng = np.random.default_rng(8)
    q, k, v = _f32(rng, 3, 2, 2, 8), _f32(rng, 3, 2, 2, 8), _f32(rng, 3, 2, 2, 8)
    _finite_grads(lambda *a: (fn(*a, causal=True),), (q, k, v), (0, 1, 2))


def test_ring_causal_needs_equal_chunks() -> None:
    q = jnp.zeros((2, 1, 1, 4))
    k = jnp.zeros((2, 3, 1, 4))
    with pytest.raises(ValueError, match="Sq == Skv"):
        mesh_ring_attention(q, k, k, causal=True)


# ---------------------------------------------------------------- compressor


def naive_compressor(x, w_kv, w_score, state_kv, state_score, kv_cache, start_pos, ape):
    """After the authors' torch golden: per batch row, per token."""
    x, w_kv, w_score, ape = (np.asarray(a, np.float64) for a in (x, w_kv, w_score, ape))
    skv, ssc = np.array(state_kv, np.float64), np.array(state_score, np.float64)
    cache = np.array(kv_cache, np.float64)
    b_, s_, _ = x.shape
    r, rows = skv.shape[1], cache.shape[0] // b_
    kv, score = x @ w_kv, x @ w_score
    for b in range(b_):
        pre = min(s_, r - start_pos % r)
        for s in range(pre):
            slot = (start_pos + s) % r
            skv[b, slot], ssc[b, slot] = kv[b, s], score[b, s] + ape[slot]
        if pre < s_ or (start_pos + s_) % r == 0:
            pooled = (_softmax(ssc[b], axis=0) * skv[b]).sum(axis=0)
            if start_pos // r < rows:
                cache[b * rows + start_pos // r] = pooled
        for s in range(pre, s_):
            slot = (start_pos + s) % r
            skv[b, slot], ssc[b, slot] = kv[b, s], score[b, s] + ape[slot]
    return cache, skv, ssc


def _compressor_inputs(rng, *, b=2, s=2, dim=16, hd=8, r=8, rows=3):
    return (
        0.3 * _f32(rng, b, s, dim),
        _f32(rng, dim, hd),
        _f32(rng, dim, hd),
        _f32(rng, b, r, hd),
        _f32(rng, b, r, hd),
        _f32(rng, b * rows, hd),
    )


_compressor_jit = jax.jit(compressor_pool)


@pytest.mark.parametrize(
    ("s", "r", "starts"),
    [
        # no pool, exact boundary, crossing, crossing in row 1, last row, past the cache
        (2, 8, [0, 3, 6, 7, 15, 23, 31]),
        (3, 8, [5, 6, 7, 22]),  # three tokens: 2 before / 1 before the boundary
        (1, 8, [6, 7]),
        (8, 8, [0, 1, 16]),  # a whole window per step
        (2, 128, [0, 126, 127, 383]),  # the kernel's ratio
    ],
)
def test_compressor_pool_matches_naive(s: int, r: int, starts: list[int]) -> None:
    rng = np.random.default_rng(100 + s + r)
    args = _compressor_inputs(rng, s=s, r=r)
    ape = _f32(rng, r, args[1].shape[1])
    for start in starts:
        got = _compressor_jit(*args, start, ape=ape)
        want = naive_compressor(*args, start, ape)
        for g, w, name in zip(got, want, ("kv_cache", "state_kv", "state_score"), strict=True):
            assert g.dtype == jnp.float32
            assert_allclose(g, w, **TOL, err_msg=f"{name}, start_pos={start}")


def test_compressor_pool_without_ape_and_grads() -> None:
    rng = np.random.default_rng(9)
    args = _compressor_inputs(rng)
    want = naive_compressor(*args, 7, np.zeros((8, 8)))
    for g, w in zip(_compressor_jit(*args, 7), want, strict=True):
        assert_allclose(g, w, **TOL)
    rest = args[3:]
    _finite_grads(lambda x, wk, ws: compressor_pool(x, wk, ws, *rest, 7), args[:3], (0, 1, 2))
