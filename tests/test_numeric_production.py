"""The executor at production sizes: memory that follows what the kernel touches (issue 13).

A kernel that reads a few tiles of a large tensor must not make the executor copy that
tensor per phase (a padded snapshot of ``fused_decode``'s 2.68e9-element KV cache was most
of the 85 GiB it tried to allocate), and a 16-bit float tensor must not be widened to
32 bits around a gather or scatter.  The windows that replace the padded copies must read
exactly what the padded copies gave, values and gradients.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tileproof.spec as tp
from tileproof.verify.numeric import execute, executor
from tileproof.verify.numeric._memory import gather_window, pad, scatter_set, window

RNG = np.random.default_rng(0)

# ----------------------------------------------------------------------------- windows


CASES = [
    # (shape, dims, start candidates per dim)
    ((10,), (("ds", 4),), [(-5, -1, 0, 3, 6, 7, 9, 10, 14)]),
    ((6, 5), (("ds", 3), ("ds", 5)), [(-2, 0, 2, 4, 5), (0,)]),
    ((6, 5), (("ds", 3), ("ds", 2)), [(-1, 0, 4, 5), (-1, 0, 3, 4, 5)]),
    ((4, 6, 3), (("point", 1), ("ds", 4), ("ds", 3)), [(-1, 0, 3, 4), (-3, 0, 2, 3, 6), (0, 1)]),
    ((5, 4), (("ds", 2), ("point", 1)), [(-1, 0, 3, 4), (-1, 0, 3, 4)]),
]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_gather_window_reads_what_the_padded_window_reads(case, dtype):
    shape, dims, cands = CASES[case]
    x = jnp.asarray(RNG.standard_normal(shape), dtype)
    pads = tuple(size for _, size in dims)
    xp = pad(x, pads)
    for starts in itertools.product(*cands):
        st = [jnp.int32(s) for s in starts]
        want = window(xp, st, pads, dims)
        for args in (st, list(starts)):  # traced-like and static starts
            got = gather_window(x, args, dims)
            assert got.shape == want.shape and got.dtype == x.dtype
            # in-bounds elements are the tensor's; the others are masked by the caller
            ok = np.ones(want.shape, bool)
            j = 0
            for s, (kind, size), n in zip(starts, dims, shape):
                if kind == "point":
                    if not 0 <= s < n:
                        ok[...] = False
                    continue
                c = s + np.arange(size)
                sh = [1] * len(want.shape)
                sh[j] = size
                ok &= ((c >= 0) & (c < n)).reshape(sh)
                j += 1
            np.testing.assert_array_equal(np.asarray(got)[ok], np.asarray(want)[ok])


def test_gather_window_under_vmap_and_its_gradient_in_bfloat16():
    x = jnp.asarray(RNG.standard_normal((9, 4)), jnp.bfloat16)
    dims = (("ds", 3), ("ds", 4))
    starts = jnp.array([-1, 0, 5, 7], jnp.int32)

    def total(x, gather):
        tiles = jax.vmap(lambda s: gather(x, s))(starts)
        c = starts[:, None] + jnp.arange(3)[None]
        ok = ((c >= 0) & (c < 9))[..., None]
        return jnp.sum(jnp.where(ok, tiles, 0).astype(jnp.float32) * 3)

    new = jax.grad(lambda x: total(x, lambda x, s: gather_window(x, (s, 0), dims)))(x)
    old = jax.grad(lambda x: total(x, lambda x, s: window(pad(x, (3, 4)), (s, 0), (3, 4), dims)))(x)
    assert new.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(new, np.float32), np.asarray(old, np.float32))


def test_scatter_set_of_bfloat16_is_bit_exact_and_differentiable():
    x = jnp.asarray(RNG.standard_normal((6, 3)), jnp.bfloat16)
    v = jnp.asarray(RNG.standard_normal((2, 3)), jnp.bfloat16)
    rows = jnp.array([4, 6], jnp.int32)  # row 6 is out of range: dropped
    got = scatter_set(x, (rows,), v)
    want = x.at[rows].set(v, mode="drop")
    np.testing.assert_array_equal(np.asarray(got).view(np.uint16), np.asarray(want).view(np.uint16))

    def f(x, v, set_):
        return jnp.sum(set_(x, v).astype(jnp.float32) * jnp.arange(18.0).reshape(6, 3))

    g_new = jax.grad(f, argnums=(0, 1))(x, v, lambda x, v: scatter_set(x, (rows,), v))
    g_old = jax.grad(f, argnums=(0, 1))(x, v, lambda x, v: x.at[rows].set(v, mode="drop"))
    for a, b in zip(g_new, g_old):
        np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


# ----------------------------------------------------------------------------- memory

ROWS = 1 << 16  # a 16 MiB bf16 "cache" of [ROWS, 128]


@tp.kernel(
    grid={"p": 4},
    tensors=dict(
        cache=tp.Input((ROWS, 128), "bfloat16"),
        rows=tp.Input((4,), "int32", values=f"0 <= v <= {ROWS - 64}"),
        new=tp.Input((4, 128), "bfloat16"),
        out=tp.Output((4 * 64, 128)),
    ),
)
def cache_update_then_read(cache, rows, new, out):
    """Each program writes one row into a large cache, and after the barrier reads a
    64-row block of it (a decode step's shape: a few rows of a large tensor touched)."""
    p = tp.program_id(0)
    r = tp.load(rows, (p,))
    tp.store(cache, (tp.ds(r, 1), slice(None)), tp.load(new, (tp.ds(p, 1), slice(None))))
    tp.barrier()
    blk = tp.load(cache, (tp.ds(r, 64), slice(None))).astype(jnp.float32)
    tp.store(out, (tp.ds(p * 64, 64), slice(None)), blk)


def _temp_bytes(kernel, sizes, inputs) -> int:
    f = executor(kernel, sizes)
    return f.lower(inputs).compile().memory_analysis().temp_size_in_bytes


def test_memory_follows_the_touched_rows_not_the_tensor():
    inputs = {
        "cache": jax.ShapeDtypeStruct((ROWS, 128), jnp.bfloat16),
        "rows": jax.ShapeDtypeStruct((4,), jnp.int32),
        "new": jax.ShapeDtypeStruct((4, 128), jnp.bfloat16),
    }
    cache_bytes = ROWS * 128 * 2
    temp = _temp_bytes(cache_update_then_read, {}, inputs)
    # the written cache is one new array (the input is not donated); no padded snapshot,
    # no float32 widening of it, no per-element writer maps of the tensor's size
    assert temp < 1.5 * cache_bytes, temp


def test_cache_update_then_read_values():
    cache = jnp.asarray(RNG.standard_normal((ROWS, 128)), jnp.bfloat16)
    rows = np.array([0, 7, ROWS - 64, 100], np.int32)
    new = jnp.asarray(RNG.standard_normal((4, 128)), jnp.bfloat16)
    out, flags = execute(cache_update_then_read, {}, {"cache": cache, "rows": rows, "new": new})
    assert flags.ok
    ref = np.asarray(cache, np.float32).copy()
    ref[rows] = np.asarray(new, np.float32)
    want = np.concatenate([ref[r : r + 64] for r in rows])
    np.testing.assert_array_equal(np.asarray(out["out"]), want)
