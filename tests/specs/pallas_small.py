"""Small Pallas (Triton) kernels, written as a Pallas author would, each with a defect twin.

Every function here is an ordinary ``pl.pallas_call`` wrapper; ``tests/test_pallas_*.py``
verify them with :func:`tileproof.pallas` unmodified.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

BLOCK = 128


def _scale_kernel(x_ref, o_ref, *, masked: bool):
    """o = 2 * x on one block of BLOCK elements (block index = program id)."""
    i = pl.program_id(0)
    n = x_ref.shape[0]
    if masked:
        mask = i * BLOCK + jnp.arange(BLOCK) < n
        x = plgpu.load(x_ref.at[pl.ds(i * BLOCK, BLOCK)], mask=mask, other=0.0)
        plgpu.store(o_ref.at[pl.ds(i * BLOCK, BLOCK)], x * 2, mask=mask)
    else:
        o_ref[pl.ds(i * BLOCK, BLOCK)] = x_ref[pl.ds(i * BLOCK, BLOCK)] * 2


def scale(x, *, grid: str = "cdiv", masked: bool = True):
    """y = 2 * x over a 1-D array; whole-array refs, each program takes one BLOCK."""
    n = x.shape[0]
    programs = pl.cdiv(n, BLOCK) if grid == "cdiv" else n // BLOCK
    return pl.pallas_call(
        functools.partial(_scale_kernel, masked=masked),
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(programs,),
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )(x)


def _row_kernel(x_ref, o_ref):
    o_ref[...] = x_ref[...] + 1


def rows(x, *, race: bool = False):
    """o = x + 1 on blocks of (1, 128) rows; with ``race`` a second grid axis rewrites them."""
    m, n = x.shape
    spec = pl.BlockSpec((None, BLOCK), lambda i, j: (i, j))
    out = pl.BlockSpec((None, BLOCK), (lambda i, j: (i, 0)) if race else (lambda i, j: (i, j)))
    return pl.pallas_call(
        _row_kernel,
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(m, n // BLOCK),
        in_specs=[spec],
        out_specs=out,
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )(x)


def _strided_kernel(x_ref, o_ref):
    o_ref[...] = x_ref[pl.ds(0, BLOCK, stride=2)]


def strided(x):
    """Reads every other element: a strided slice the model does not hold (fail closed)."""
    return pl.pallas_call(
        _strided_kernel,
        out_shape=jax.ShapeDtypeStruct((BLOCK,), x.dtype),
        grid=(1,),
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )(x)


def _atomic_kernel(x_ref, o_ref):
    plgpu.atomic_add(o_ref, (pl.ds(0, BLOCK),), x_ref[pl.ds(pl.program_id(0) * BLOCK, BLOCK)])


def atomic_sum(x):
    """Accumulates blocks into one output with atomics: not modelled (fail closed)."""
    return pl.pallas_call(
        _atomic_kernel,
        out_shape=jax.ShapeDtypeStruct((BLOCK,), x.dtype),
        grid=(x.shape[0] // BLOCK,),
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )(x)


def _hinted_kernel(x_ref, o_ref):
    start = pl.multiple_of(pl.program_id(0) * BLOCK, BLOCK)
    o_ref[pl.ds(start, BLOCK)] = x_ref[pl.ds(start, BLOCK)] + 1


def hinted(x):
    """A pl.multiple_of hint: a claim the ``shape`` obligation proves (tests/test_pallas_claims.py)."""
    return pl.pallas_call(
        _hinted_kernel,
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(x.shape[0] // BLOCK,),
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )(x)


def _row_sum_kernel(x_ref, o_ref, *, other):
    """o[row] = sum(x[row, :n]) over a power-of-two block of 128 lanes, the tail masked."""
    n = x_ref.shape[0]
    mask = jnp.arange(BLOCK) < n
    row = plgpu.load(x_ref.at[pl.ds(0, BLOCK)], mask=mask, other=other)
    o_ref[...] = jnp.sum(row)


def row_sum(x, *, other=0.0):
    """A row sum whose masked-off lanes hold ``other``; without one they are undefined."""
    f = pl.pallas_call(
        functools.partial(_row_sum_kernel, other=other),
        out_shape=jax.ShapeDtypeStruct((), x.dtype),
        grid=(),
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )
    return jax.vmap(f)(x)


def _looped_kernel(x_ref, o_ref):
    """One program walks the whole array in BLOCK tiles; the trip count is host arithmetic."""
    n = x_ref.shape[0]

    @pl.loop(0, pl.cdiv(n * 8, 8 * BLOCK))  # n * 8 is exact on the host (a Python int)
    def _(i):
        idx = i * BLOCK + jnp.arange(BLOCK)  # device i32 arithmetic
        mask = idx < n
        x = plgpu.load(x_ref.at[idx], mask=mask, other=0.0)
        plgpu.store(o_ref.at[idx], x + 1, mask=mask)


def looped(x):
    return pl.pallas_call(
        _looped_kernel,
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(1,),
        compiler_params=plgpu.CompilerParams(num_warps=4),
    )(x)
