"""JAX's own Pallas GPU (Triton) kernels, verified unmodified by ``tileproof.pallas``.

Run ``tileproof check examples/pallas/jax_gpu.py --static`` (or without ``--static``
for numerics).  Every kernel is imported from the installed
``jax.experimental.pallas.ops.gpu``; nothing is transcribed.  The references are the
ones those files ship (``*_reference``), adapted only where the argument layout differs.

Sizes are symbolic wherever the kernel is generic: batch, heads and rows.  What stays
concrete is what the kernels themselves need concrete (``pl.next_power_of_2`` of a
feature size, a block shape equal to a sequence length, a Python ``assert`` on a
divisibility); each such choice is commented.  The domain bounds are the production
ranges a user would state (they keep the 32-bit index arithmetic provable).
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp

with warnings.catch_warnings():
    # JAX 0.11 deprecates its Pallas GPU attention in favour of tokamax's; the file still
    # ships, unchanged, and it is the kernel verified here
    warnings.filterwarnings("ignore", "jax.experimental.pallas.ops.gpu", DeprecationWarning)
    from jax.experimental.pallas.ops.gpu import (
        attention,
        decode_attention,
        layer_norm,
        paged_attention,
        rms_norm,
        softmax,
    )

import tileproof as tp

A = tp.Arg
ROWS = ["B <= 4096", "S <= 8192"]

# --------------------------------------------------------------------------- softmax
# the row length feeds pl.next_power_of_2: concrete (1000, not a power of two: masked tail)
softmax_gpu = tp.pallas(
    softmax.softmax,
    args=[A(("B", 1000))],
    assume=["B <= 2**20"],
    reference=lambda x: jax.nn.softmax(x, axis=-1),
    name="gpu.softmax",
)

# --------------------------------------------------------------------------- layer_norm / rms_norm
# the feature size (512) feeds pl.next_power_of_2; batch and rows are symbolic (two vmaps)
_NORM_ARGS = [A(("B", "S", 512)), A((512,)), A((512,))]

layer_norm_gpu = tp.pallas(
    layer_norm.layer_norm,
    args=_NORM_ARGS,
    assume=ROWS,
    reference=lambda x, w, b: layer_norm.layer_norm_reference(x, w, b),
    name="gpu.layer_norm",
)
layer_norm_gpu_grad = tp.pallas(
    layer_norm.layer_norm, args=_NORM_ARGS, assume=ROWS, grad=True, name="gpu.layer_norm.grad"
)
rms_norm_gpu = tp.pallas(
    rms_norm.rms_norm,
    args=_NORM_ARGS,
    assume=ROWS,
    reference=lambda x, w, b: rms_norm.rms_norm_reference(x, w, b),
    name="gpu.rms_norm",
)
rms_norm_gpu_grad = tp.pallas(
    rms_norm.rms_norm, args=_NORM_ARGS, assume=ROWS, grad=True, name="gpu.rms_norm.grad"
)

# --------------------------------------------------------------------------- attention (mha)
# K/V blocks span the whole sequence (BlockSpec((None, kv_seq_len, ...))): the sequence is
# concrete (1024); batch and heads are symbolic
_MHA_ARGS = [A(("B", 1024, "H", 64))] * 3
_HEADS = ["B <= 256", "H <= 128"]


def _mha(q, k, v, causal=False):
    return attention.mha(q, k, v, None, causal=causal)


mha_gpu = tp.pallas(
    _mha,
    args=_MHA_ARGS,
    assume=_HEADS,
    reference=lambda q, k, v: attention.mha_reference(q, k, v, None),
    name="gpu.mha",
)
mha_gpu_causal = tp.pallas(
    functools.partial(_mha, causal=True),
    args=_MHA_ARGS,
    assume=_HEADS,
    reference=lambda q, k, v: attention.mha_reference(q, k, v, None, causal=True),
    name="gpu.mha.causal",
)
mha_gpu_grad = tp.pallas(_mha, args=_MHA_ARGS, assume=_HEADS, grad=True, name="gpu.mha.grad")

# --------------------------------------------------------------------------- decode attention
# k_splits=16 must divide the KV length (a Python assert): 1024, concrete
_KV = 1024
mqa_gpu = tp.pallas(
    decode_attention.mqa,
    args=[A(("B", "H", 64)), A(("B", _KV, 64)), A(("B", _KV, 64))],
    assume=["B <= 256", "H <= 128"],
    reference=decode_attention.mqa_reference,
    name="gpu.mqa",
)


def _mqa_lengths(q, k, v, lengths):
    return decode_attention.mqa(q, k, v, kv_seq_len=lengths)


mqa_gpu_masked = tp.pallas(
    _mqa_lengths,
    args=[
        A(("B", "H", 64)),
        A(("B", _KV, 64)),
        A(("B", _KV, 64)),
        A(("B",), "int32", values=f"1 <= v <= {_KV}"),
    ],
    assume=["B <= 256", "H <= 128"],
    reference=lambda q, k, v, n: decode_attention.mqa_reference(q, k, v, kv_seq_len=n),
    name="gpu.mqa.masked",
)
# grouped: 8 KV heads, G query heads per KV head (a symbolic group)
gqa_gpu = tp.pallas(
    decode_attention.gqa,
    args=[A(("B", "8*G", 64)), A(("B", _KV, 8, 64)), A(("B", _KV, 8, 64))],
    assume=["B <= 256", "G <= 16"],
    reference=decode_attention.gqa_reference,
    name="gpu.gqa",
)

# --------------------------------------------------------------------------- paged attention
# the K/V page pools are whole blocks of the call (BlockSpec((None, total_pages, ...))): the
# pool is concrete (256 pages of 16 rows); 128 table entries per sequence, so with k_splits=16
# each program walks 8 pages and gathers them 8 at a time (pages_per_compute_block=8, the
# default): `k_pages_ref[block_tables]` reads 8 table entries, one data symbol each
_PAGES, _PAGE, _PER_SEQ = 256, 16, 128


def _paged_reference(q, k_pages, v_pages, block_tables, lengths):
    """The file's reference takes dense [batch, kv_len, kv_heads, dim] K/V: gather the pages."""

    def dense(pages):  # [kv_heads, pages, page, dim] -> [batch, per_seq * page, kv_heads, dim]
        g = pages[:, block_tables]  # [kv_heads, batch, per_seq, page, dim]
        g = g.reshape(pages.shape[0], block_tables.shape[0], -1, pages.shape[-1])
        return jnp.transpose(g, (1, 2, 0, 3))

    return paged_attention.paged_attention_reference(q, dense(k_pages), dense(v_pages), lengths)


def _paged_args(table_values: str, heads="64*G"):
    return [
        A(("B", heads, 64)),
        A((4, _PAGES, _PAGE, 64)),
        A((4, _PAGES, _PAGE, 64)),
        A(("B", _PER_SEQ), "int32", values=table_values),
        A(("B",), "int32", values=f"0 <= v <= {_PER_SEQ * _PAGE}"),
    ]


# `if q_heads_per_kv_head % block_h:` (paged_attention.py) pads the query heads: a Python
# test of a size, which tracing cannot take on a symbolic size (tileproof refuses it, as
# JAX would silently take it as true for every size).  So the two programs are verified
# apart: 16*G query heads per KV head (no padding, G symbolic) and 6 (padded to 16).
paged_attention_gpu = tp.pallas(
    paged_attention.paged_attention,
    args=_paged_args(f"0 <= v < {_PAGES}"),
    assume=["B <= 256", "G <= 8"],
    reference=_paged_reference,
    name="gpu.paged_attention",
)
paged_attention_gpu_padded = tp.pallas(
    paged_attention.paged_attention,
    args=_paged_args(f"0 <= v < {_PAGES}", heads=24),
    assume=["B <= 256"],
    reference=_paged_reference,
    name="gpu.paged_attention.padded",
)

KERNELS = tuple(
    k
    for group in (
        softmax_gpu,
        layer_norm_gpu,
        layer_norm_gpu_grad,
        rms_norm_gpu,
        rms_norm_gpu_grad,
        mha_gpu,
        mha_gpu_causal,
        mha_gpu_grad,
        mqa_gpu,
        mqa_gpu_masked,
        gqa_gpu,
        paged_attention_gpu,
        paged_attention_gpu_padded,
    )
    for k in (group if isinstance(group, tuple) else (group,))
)
