"""Small Pallas (Triton) kernels for reduction reads and ``pl.multiple_of`` claims, each with
its defect twin.  Ordinary ``pl.pallas_call`` wrappers, verified unmodified by
``tests/test_pallas_reads.py`` and ``tests/test_pallas_claims.py``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

BK = 128
_GPU = plgpu.CompilerParams(num_warps=4)


# ----------------------------------------------------------------------------- reductions
def _split_kernel(x_ref, o_ref, *, masked: bool):
    """part[r, i] = sum(x[r, i*BK : (i+1)*BK]): program (r, i) folds one chunk of row r."""
    i = pl.program_id(1)
    k = x_ref.shape[1]
    cols = pl.ds(i * BK, BK)
    if masked:
        mask = i * BK + jnp.arange(BK) < k
        chunk = plgpu.load(x_ref.at[pl.program_id(0), cols], mask=mask, other=0.0)
    else:
        chunk = x_ref[pl.program_id(0), cols]
    o_ref[pl.program_id(0), i] = jnp.sum(chunk)


def split_sum(x, *, grid: str = "cdiv"):
    """Row sums of x [M, K] in two stages: the kernel's partial sums per chunk, then a sum.

    ``grid="floor"`` launches ``K // BK`` chunks per row: every partial sum is written,
    but the tail ``K % BK`` columns are never read (the reduction drops them)."""
    m, k = x.shape
    chunks = pl.cdiv(k, BK) if grid == "cdiv" else k // BK
    part = pl.pallas_call(
        functools.partial(_split_kernel, masked=grid == "cdiv"),
        out_shape=jax.ShapeDtypeStruct((m, chunks), x.dtype),
        grid=(m, chunks),
        compiler_params=_GPU,
    )(x)
    return part


def _loop_kernel(x_ref, o_ref, *, trip: str):
    """o[r] = sum(x[r, :]): one program per row walks the row in BK chunks."""
    r = pl.program_id(0)
    k = x_ref.shape[1]
    n = pl.cdiv(k, BK) if trip == "cdiv" else k // BK

    def body(i, acc):
        if trip == "cdiv":
            mask = i * BK + jnp.arange(BK) < k
            chunk = plgpu.load(x_ref.at[r, pl.ds(i * BK, BK)], mask=mask, other=0.0)
        else:
            chunk = x_ref[r, pl.ds(i * BK, BK)]
        return acc + jnp.sum(chunk)

    o_ref[r] = lax.fori_loop(0, n, body, jnp.float32(0))


def loop_sum(x, *, trip: str = "cdiv"):
    """Row sums with an in-kernel loop; ``trip="floor"`` loops ``K // BK`` times."""
    m, _k = x.shape
    return pl.pallas_call(
        functools.partial(_loop_kernel, trip=trip),
        out_shape=jax.ShapeDtypeStruct((m,), x.dtype),
        grid=(m,),
        compiler_params=_GPU,
    )(x)


def _gather_kernel(idx_ref, x_ref, o_ref):
    """o[i] = x[idx[i]]: a gather through an index table reads only the rows it names."""
    i = pl.program_id(0)
    row = idx_ref[i]
    o_ref[i, pl.ds(0, BK)] = x_ref[row, pl.ds(0, BK)]


def gather_rows(idx, x):
    """Rows of x [R, BK] picked by idx [N]: rows no entry names are (rightly) never read."""
    n = idx.shape[0]
    return pl.pallas_call(
        _gather_kernel,
        out_shape=jax.ShapeDtypeStruct((n, BK), x.dtype),
        grid=(n,),
        compiler_params=_GPU,
    )(idx, x)


# ----------------------------------------------------------------------------- pl.multiple_of
def _hint_kernel(x_ref, o_ref, *, step: int, claim: int):
    start = pl.multiple_of(pl.program_id(0) * step, claim)
    o_ref[pl.ds(start, step)] = x_ref[pl.ds(start, step)] + 1


def hinted(x, *, step: int = BK, claim: int = BK):
    """o = x + 1 in chunks of ``step``; the chunk start is claimed a multiple of ``claim``."""
    return pl.pallas_call(
        functools.partial(_hint_kernel, step=step, claim=claim),
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(x.shape[0] // step,),
        compiler_params=_GPU,
    )(x)


def _tail_hint_kernel(x_ref, o_ref):
    """The last chunk starts at n - BK: a multiple of BK only when BK divides n."""
    n = x_ref.shape[0]
    start = pl.multiple_of(n - BK + 0 * pl.program_id(0), BK)
    o_ref[pl.ds(0, BK)] = x_ref[pl.ds(start, BK)]


def tail_hinted(x):
    return pl.pallas_call(
        _tail_hint_kernel,
        out_shape=jax.ShapeDtypeStruct((BK,), x.dtype),
        grid=(1,),
        compiler_params=_GPU,
    )(x)


def _loop_hint_kernel(x_ref, o_ref, *, stride: int):
    def body(i, c):
        start = pl.multiple_of(i * stride, BK)
        o_ref[pl.ds(start, stride)] = x_ref[pl.ds(start, stride)] * 2
        return c

    lax.fori_loop(0, x_ref.shape[0] // stride, body, 0)


def loop_hinted(x, *, stride: int = BK):
    """A loop index times ``stride`` claimed a multiple of BK (false for stride 64)."""
    return pl.pallas_call(
        functools.partial(_loop_hint_kernel, stride=stride),
        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype),
        grid=(1,),
        compiler_params=_GPU,
    )(x)


# ----------------------------------------------------------------------------- size casts
def _wrap_kernel(x_ref, o_ref):
    """Copies the first BK elements when ``n - BK`` is below ``n`` *as uint32*: for n < BK
    the cast wraps on the device, the guard is false and nothing is written."""
    n = x_ref.shape[0]
    ok = jnp.asarray(n - BK).astype(jnp.uint32) < jnp.uint32(n)

    @pl.when(ok)
    def _():
        o_ref[pl.ds(0, BK)] = x_ref[pl.ds(0, BK)]


def unsigned_guard(x):
    return pl.pallas_call(
        _wrap_kernel,
        out_shape=jax.ShapeDtypeStruct((BK,), x.dtype),
        grid=(1,),
        compiler_params=_GPU,
    )(x)
