"""JAX's own Pallas TPU (Mosaic) kernels, verified unmodified by ``tileproof.pallas``.

Run ``tileproof check examples/pallas/jax_tpu.py --static`` (or without ``--static`` for
numerics on this machine's CPU: the TPU rules are replayed by tileproof's executor, no TPU
is needed).  Every kernel is imported from the installed
``jax.experimental.pallas.ops.tpu``; nothing is transcribed.  The TPU rules (VMEM block
copies with padded edges, arbitrary axes as loops, write-back on block change, per-core
scratch, the tiling rule) are described in docs/pallas.md.

Sizes are symbolic wherever tracing allows: the sizes the kernels tile are written as
multiples of their blocks (``"128*S"``), the only sizes these kernels are correct for (see
the findings in docs/pallas.md).  What stays concrete is what the file itself needs concrete,
each commented.  Three kernels are *not* proved and say why (fail closed): megablox ``gmm``
(its grid extent is computed from the group sizes), ``paged_attention`` and
``ragged_paged_attention`` (their manual DMAs are modelled, but each prefetches the next
step's pages, a copy waited in a later grid step or loop iteration, whose pairing is not
followed; paged attention's walk to the next non-empty sequence is modelled, ragged
paged attention's ``while`` loop, which stops on a flag, is not).
"""

from __future__ import annotations

import functools
import importlib

import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import flash_attention as fa
from jax.experimental.pallas.ops.tpu import matmul as mm
from jax.experimental.pallas.ops.tpu.paged_attention import paged_attention_kernel as pa
from jax.experimental.pallas.ops.tpu.ragged_paged_attention import kernel as rpa

import tileproof as tp

# the package's `gmm` name is the custom_vjp op (megablox/__init__.py): the module itself
gmm_mod = importlib.import_module("jax.experimental.pallas.ops.tpu.megablox.gmm")

A = tp.Arg

# --------------------------------------------------------------------------- matmul
# grid (M // bm, N // bn, K // bk): every size a multiple of its block (see the finding:
# other sizes leave output rows unwritten or drop the K tail)
_MM = [A(("128*M", "128*K")), A(("128*K", "128*N"))]
matmul_tpu = tp.pallas(
    mm.matmul,
    args=_MM,
    static=dict(block_shape=(128, 128), block_k=128),
    assume=["M <= 256", "N <= 256", "K <= 256"],
    reference=lambda x, y: x @ y,
    backend="tpu",
    defaults=dict(M=2, N=2, K=3),
    name="tpu.matmul",
)
matmul_tpu_bf16 = tp.pallas(
    mm.matmul,
    args=[A(("256*M", "512*K"), "bfloat16"), A(("512*K", "256*N"), "bfloat16")],
    static=dict(block_shape=(256, 256), block_k=512),
    assume=["M <= 128", "N <= 128", "K <= 64"],
    reference=lambda x, y: (x.astype(jnp.float32) @ y.astype(jnp.float32)).astype(jnp.bfloat16),
    backend="tpu",
    defaults=dict(M=1, N=2, K=2),
    name="tpu.matmul.bf16",
)

# --------------------------------------------------------------------------- flash attention
# [batch, heads, seq, head_dim]: the sequence in blocks of 128 (the default block sizes are
# min(128, seq)); the head dim is concrete (128 lanes)
_QKV = [A(("B", "H", "128*S", 128))] * 3
_BHS = ["B <= 64", "H <= 64", "S <= 64"]
_SMALL = dict(B=1, H=2, S=3)  # the numeric run's first point
# the executor's values-and-gradients run: each program's VMEM buffers and scratch are
# its own slices (not a copy of every program's per program, as before: 21 GB even at
# B = H = S = 1); at the defaults and two drawn points (the full default budget of six
# points matched too, under 0.7 GB, in 161 s for the plain kernel)
_NUMERIC = {"budget": 2}


def _ref(q, k, v, causal=False):
    """The file's reference, without a bias (its ``ab`` is positional)."""
    return fa.mha_reference(q, k, v, None, causal=causal)


flash_attention_tpu = tp.pallas(
    fa.flash_attention,
    args=_QKV,
    assume=_BHS,
    reference=_ref,
    backend="tpu",
    defaults=_SMALL,
    numeric=_NUMERIC,
    name="tpu.flash_attention",
)
flash_attention_tpu_causal = tp.pallas(
    functools.partial(fa.flash_attention, causal=True),
    args=_QKV,
    assume=_BHS,
    reference=functools.partial(_ref, causal=True),
    backend="tpu",
    defaults=_SMALL,
    numeric=_NUMERIC,
    name="tpu.flash_attention.causal",
)
# the file's masked variants: segment ids (attention only within a segment) and a bias
_SEGS = A(("B", "128*S"), "int32", values="0 <= v < 4")


def _flash_segments(q, k, v, q_seg, kv_seg):
    return fa.flash_attention(q, k, v, segment_ids=fa.SegmentIds(q_seg, kv_seg))


def _ref_segments(q, k, v, q_seg, kv_seg):
    return fa.mha_reference(q, k, v, None, segment_ids=fa.SegmentIds(q_seg, kv_seg))


flash_attention_tpu_segments = tp.pallas(
    _flash_segments,
    args=[*_QKV, _SEGS, _SEGS],
    assume=_BHS,
    reference=_ref_segments,
    backend="tpu",
    defaults=_SMALL,
    numeric=_NUMERIC,
    name="tpu.flash_attention.segment_ids",
)
flash_attention_tpu_bias = tp.pallas(
    lambda q, k, v, ab: fa.flash_attention(q, k, v, ab=ab),
    args=[*_QKV, A(("B", "H", "128*S", "128*S"))],
    assume=_BHS,
    reference=lambda q, k, v, ab: fa.mha_reference(q, k, v, ab),
    backend="tpu",
    defaults=_SMALL,
    numeric=_NUMERIC,
    name="tpu.flash_attention.bias",
)
# larger blocks: 256 query rows, K/V in majors of 512 walked in minors of 128
_BIG = fa.BlockSizes(block_q=256, block_k_major=512, block_k=128, block_b=1)
flash_attention_tpu_blocks = tp.pallas(
    functools.partial(fa.flash_attention, block_sizes=_BIG),
    args=[A(("B", "H", "512*S", 128))] * 3,
    assume=["B <= 64", "H <= 64", "S <= 16"],
    reference=_ref,
    backend="tpu",
    defaults=dict(B=1, H=1, S=2),
    numeric=_NUMERIC,
    name="tpu.flash_attention.blocks",
)
# the custom_vjp's forward (with residuals) and both backward kernels (dK/dV and dQ)
flash_attention_tpu_grad = tp.pallas(
    fa.flash_attention,
    args=_QKV,
    assume=_BHS,
    grad=True,
    backend="tpu",
    defaults=_SMALL,
    numeric=_NUMERIC,
    name="tpu.flash_attention.grad",
)

# --------------------------------------------------------------------------- megablox gmm
# make_group_metadata histograms over the row tiles (jnp.histogram needs a concrete bin
# count) and _calculate_irregular_num_tiles tests `if rem:` on K and N: all concrete.  The
# grid's second extent is the number of active tiles, computed from group_sizes: a data-
# dependent grid the model does not hold, so this kernel is reported unknown (fail closed).
gmm_tpu = tp.pallas(
    gmm_mod.gmm,
    args=[A((512, 256)), A((4, 256, 384)), A((4,), "int32", values="0 <= v <= 128")],
    backend="tpu",
    numeric={"skip": "a data-dependent grid: the executor cannot run it"},
    name="tpu.gmm",
)

# --------------------------------------------------------------------------- paged attention
# pages are fetched with manual DMAs (pltpu.make_async_copy) on DMA semaphores, double
# buffered: the next block's pages are started before the current ones are waited, so a copy
# crosses into the next loop iteration / grid step (unsupported, scoped to the coverage and
# race of its buffers and pages, tileproof/pallas/_dma.py).  The walk to the next
# non-empty sequence (a fori_loop whose carry steps by 1 or 0) is over-approximated
# soundly (tileproof/lowering/_loops.py): its reads are proved.  buffer_index_ref (the
# wrapper's jnp.zeros, flipped between 0 and 1 by the kernel) gets the inferred range
# [0, 1] (tileproof/pallas/_tables.py): every bounds obligation is proved
paged_attention_tpu = tp.pallas(
    functools.partial(pa.paged_attention, pages_per_compute_block=8),
    args=[
        A(("B", 8, 128)),
        A((8, 256, 16, 128)),
        A((8, 256, 16, 128)),
        A(("B",), "int32", values="0 <= v <= 2048"),
        A(("B", 128), "int32", values="0 <= v < 256"),
    ],
    assume=["B <= 256"],
    backend="tpu",
    numeric={"skip": "DMAs waited in a later step: unsupported"},
    name="tpu.paged_attention",
)
ragged_paged_attention_tpu = tp.pallas(
    functools.partial(
        rpa.ragged_paged_attention, num_kv_pages_per_block=8, num_queries_per_block=32
    ),
    args=[
        A((256, 8, 128)),
        A((512, 16, 8, 128)),
        A((16,), "int32", values="0 <= v <= 2048"),
        A((16, 128), "int32", values="0 <= v < 512"),
        A((17,), "int32", values="0 <= v <= 256"),
        A((1,), "int32", values="0 <= v <= 16"),
    ],
    backend="tpu",
    numeric={
        "skip": "DMAs waited in a later step and a while loop with no exact trip count: unsupported"
    },
    name="tpu.ragged_paged_attention",
)

PROVED = tuple(
    k
    for group in (
        matmul_tpu,
        matmul_tpu_bf16,
        flash_attention_tpu,
        flash_attention_tpu_causal,
        flash_attention_tpu_segments,
        flash_attention_tpu_bias,
        flash_attention_tpu_blocks,
        flash_attention_tpu_grad,
    )
    for k in (group if isinstance(group, tuple) else (group,))
)
UNKNOWN = (gmm_tpu, paged_attention_tpu, ragged_paged_attention_tpu)
KERNELS = PROVED + UNKNOWN
