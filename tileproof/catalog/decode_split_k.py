"""Spec of `decode_split_k`: split-K paged decode, fp16, page 64, page-table prefetch (docs/catalog.md §5).

From the gfx950 Gluon decode kernel (tokenspeed PR #313, `_mha_decode_fp16` and
`_mha_decode_reduce_fp16`). Program (b, head block, split) takes 16 query rows of one
KV head (GQA groups of ``cdiv(Hq/Hkv, 16)`` blocks) and the split's
``cdiv(num_pages, num_splits)`` pages, bounded by the sequence length; an empty split
stores nothing. The page loop peels the first page-table load and, inside the loop,
prefetches the next entry at ``start + 64`` masked with ``start + 64 < split_end``
(PR #313's `load_page`). K/V rows are read at ``((page*64 + t)*Hkv + h)*64 + d`` of the
``[pages, 64, Hkv, 64]`` caches. PR #313 keeps `global_load_to_shared` for them because
"paged KV offsets may exceed [buffer_load's] 32-bit range", but computes the offsets
from the int32 page id in int32 (the ``decode_offsets_int32`` defect); the correct spec
computes them in 64 bits (``index_bits=64`` on the caches).

The reduce kernel (grid ``(B, Hq)``) merges the splits by log-sum-exp, skipping empty
ones. Both launches are one grid here, separated by ``tp.barrier("launch")``: the end of
the decode launch and the start of the reduce launch, so everything the decode kernel
wrote is visible to the reduce kernel, while no program waits at it (the two launches
are ordered by the stream, not by a barrier inside one launch: no residency or
uniformity obligation applies, and no machine model is needed). Axis ``hb`` has
``Hq = Hkv*GS`` programs (the decode launch uses the first ``Hkv*cdiv(GS, 16)``: its
program ``hb = kvh*cdiv(GS, 16) + g`` takes rows ``GS*kvh + 16*g ..`` of KV head
``kvh``, masked to ``16*g + c < GS``), axis ``split`` has ``max(NS, 1)`` (the decode
launch uses ``NS``, the reduce launch runs on split 0).

``NS`` (num_splits) is chosen on the host from the maximum sequence length ``MAXLEN``:
``min(cdiv(2*256, B*Hkv*G), max(n_pages // 8, min(8, n_pages)))`` with 256 the gfx950
CU count and ``n_pages = cdiv(MAXLEN, 64)``; the domain states it as an equation, with
``NS >= 0`` so that ``NS >= 1`` is derived from ``MAXLEN >= 1``, not assumed. Sequences
are non-empty: the reduce of an empty one is NaN (every split empty, as on hardware),
and admitting length 0 is the ``decode_zero_splits`` defect.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp

from .references import decode_split_k as _decode_split_k

__all__ = ["SPECS", "decode_split_k", "make_decode_split_k"]

PAGE = 64  # PAGE_SIZE == BLOCK_N
D = 64  # HEAD_DIM
BLOCK_M = 16  # query rows per program
SM_COUNT = 256  # _GFX950_SM_COUNT
SM_SCALE = 1.0 / math.sqrt(D)
_SC = SM_SCALE / math.log(2.0)  # the kernel's sm_scale * 1/ln 2, for exp2
# The kernel's -inf, made finite: a vectorised execution also evaluates masked-off loop
# iterations, where -inf - -inf would put NaN into their (discarded) gradients.
_NEG = -1e30
_HI = lax.Precision.HIGHEST
_F32 = jnp.float32

NUM_SPLITS = (
    "NS == min(cdiv(2*256, B*Hkv*cdiv(GS, 16)), "
    "max(cdiv(MAXLEN, 64) // 8, min(8, cdiv(MAXLEN, 64))))"
)


def _reference(q, k_cache, v_cache, page_table, cache_seqlens):
    return {"out": _decode_split_k(q, k_cache, v_cache, page_table, cache_seqlens, scale=SM_SCALE)}


def _safe(x):
    """Where an empty split's l is 0 its row is not stored; keep 0/0 out of gradients."""
    return jnp.where(x > 0, x, 1.0)


def make_decode_split_k(
    *,
    unmasked_prefetch: bool = False,
    offsets_int32: bool = False,
    zero_splits: bool = False,
    floor_pages: bool = False,
    name: str | None = None,
) -> tp.Kernel:
    """The spec, or one of its docs/catalog.md §5 defects.

    ``unmasked_prefetch``: the next page-table entry is loaded without its mask.
    ``offsets_int32``: the K/V element offsets are computed in 32 bits.
    ``zero_splits``: the domain admits a maximum sequence length of 0 (then every
    sequence is empty), for which the host formula picks 0 splits.
    """
    min_len = 0 if zero_splits else 1
    domain = [
        f"MAXLEN >= {min_len}",
        "MAXLEN <= 64*M",
        "M <= 2**14",
        "B <= 1024",
        "Hkv in {1, 2, 4, 8}",
        "GS <= 64",
        "NP <= 2**20",
        NUM_SPLITS,
        "NS >= 0",  # computed by the formula above: not assumed positive
    ]
    cache_bits = None if offsets_int32 else 64

    @tp.kernel(
        name=name or "decode_split_k",
        grid={"b": "B", "hb": "Hkv*GS", "split": "max(NS, 1)"},
        assume=domain,
        defaults=dict(B=16, Hkv=8, GS=8, NP=1024, M=64, MAXLEN=4096, NS=4),
        tensors=dict(
            q=tp.Input(("B", "Hkv*GS", D), "float16"),
            k_cache=tp.Input(("NP", PAGE, "Hkv", D), "float16", index_bits=cache_bits),
            v_cache=tp.Input(("NP", PAGE, "Hkv", D), "float16", index_bits=cache_bits),
            # the reduction folds every page of a sequence: entries [0, cdiv(len, 64)) of
            # its page-table row are all read (the `reads` obligation)
            page_table=tp.Input(
                ("B", "M"),
                "int32",
                values="0 <= v < NP",
                reduced=tp.Region("i1 < cdiv(n, 64)", n=("cache_seqlens", "i0")),
            ),
            cache_seqlens=tp.Input(("B",), "int32", values=f"{min_len} <= v <= MAXLEN"),
            mid_o=tp.Scratch(("B", "Hkv*GS", "NS", D), "float32"),
            mid_lse=tp.Scratch(("B", "Hkv*GS", "NS"), "float32"),
            out=tp.Output(("B", "Hkv*GS", D), "float16"),
        ),
        reference=_reference,
    )
    def decode_split_k(q, k_cache, v_cache, page_table, cache_seqlens, mid_o, mid_lse, out):
        """Phase 1: the split-K decode launch; phase 2: the reduce launch."""
        batch, head_block, split_id = tp.program_id(0), tp.program_id(1), tp.program_id(2)
        Hkv, GS, NS = tp.size("Hkv"), tp.size("GS"), tp.size("NS")
        num_groups = (GS + BLOCK_M - 1) // BLOCK_M

        def split_bounds(cache_len, split):
            """AttentionProgram.create: the split's token range [split_start, split_end)."""
            end_page = (cache_len + PAGE - 1) // PAGE
            num_pages = end_page
            pages_per_split = num_pages // NS if floor_pages else (num_pages + NS - 1) // NS
            split_start_page = split * pages_per_split
            split_end_page = jnp.minimum(split_start_page + pages_per_split, end_page)
            return split_start_page * PAGE, jnp.minimum(split_end_page * PAGE, cache_len)

        @tp.when((head_block < Hkv * num_groups) & (split_id < NS))
        def _decode():
            kv_head = head_block // num_groups
            group_start = (head_block - kv_head * num_groups) * BLOCK_M
            cache_len = jnp.maximum(tp.load(cache_seqlens, (batch,)), 0)
            split_start, split_end = split_bounds(cache_len, split_id)
            row_ok = (group_start + jnp.arange(BLOCK_M)) < GS
            heads = tp.ds(kv_head * GS + group_start, BLOCK_M)
            qt = tp.load(q, (batch, heads, tp.ds(0, D)), mask=row_ok[:, None]).astype(_F32)

            def load_page(start_n, masked=True):
                return tp.load(
                    page_table,
                    (batch, start_n // PAGE),
                    mask=start_n < split_end if masked else None,
                )

            def page_step(i, carry):
                physical_page, m_i, l_i, acc = carry
                start_n = split_start + i * PAGE
                k = tp.load(k_cache, (physical_page, tp.ds(0, PAGE), kv_head, tp.ds(0, D)))
                v = tp.load(v_cache, (physical_page, tp.ds(0, PAGE), kv_head, tp.ds(0, D)))
                physical_page = load_page(start_n + PAGE, masked=not unmasked_prefetch)
                qk = jnp.dot(qt, k.astype(_F32).T, precision=_HI)
                tokens = start_n + jnp.arange(PAGE)[None, :]
                qk = jnp.where((tokens >= 0) & (tokens < split_end), qk, _NEG)
                m_new = jnp.maximum(m_i, jnp.max(qk, axis=1))
                p = jnp.exp2(qk * _SC - (m_new * _SC)[:, None])
                alpha = jnp.exp2(m_i * _SC - m_new * _SC)
                l_i = l_i * alpha + jnp.sum(p, axis=1)
                acc = acc * alpha[:, None] + jnp.dot(p, v.astype(_F32), precision=_HI)
                return physical_page, m_new, l_i, acc

            init = (
                load_page(split_start),
                jnp.full((BLOCK_M,), _NEG, _F32),
                jnp.zeros((BLOCK_M,), _F32),
                jnp.zeros((BLOCK_M, D), _F32),
            )
            n_iter = (split_end - split_start + PAGE - 1) // PAGE
            _page, m_i, l_i, acc = lax.fori_loop(0, n_iter, page_step, init)
            valid = row_ok & (split_start < split_end)
            tp.store(
                mid_o,
                (batch, heads, split_id, tp.ds(0, D)),
                acc / _safe(l_i)[:, None],
                mask=valid[:, None],
            )
            tp.store(
                mid_lse, (batch, heads, split_id), m_i * _SC + jnp.log2(_safe(l_i)), mask=valid
            )

        tp.barrier("launch")  # the decode launch ends; the reduce launch starts

        @tp.when(split_id == 0)
        def _reduce():
            q_head = head_block
            cache_len = jnp.maximum(tp.load(cache_seqlens, (batch,)), 0)

            # The kernel loads all splits as one tile of SPLIT_TILE >= 1 lanes (NS padded to a
            # power of 2), masking empty splits and the padding: here max(NS, 1) lanes.
            split_tile = jnp.maximum(NS, 1)

            def split_valid(s):
                start, end = split_bounds(cache_len, s)
                return (start < end) & (s < NS)

            def lse_max(s, m):
                ok = split_valid(s)
                lse = tp.load(mid_lse, (batch, q_head, s), mask=ok)
                return jnp.maximum(m, jnp.where(ok, lse, _NEG))

            m_i = lax.fori_loop(0, split_tile, lse_max, jnp.float32(_NEG))

            def weigh(s, carry):
                l_i, acc = carry
                ok = split_valid(s)
                lse = tp.load(mid_lse, (batch, q_head, s), mask=ok)
                part_o = tp.load(mid_o, (batch, q_head, s, tp.ds(0, D)), mask=ok)
                beta = jnp.where(ok, jnp.exp2(jnp.where(ok, lse, m_i) - m_i), 0.0)
                return l_i + beta, acc + jnp.where(ok, part_o, 0.0) * beta

            l_i, acc = lax.fori_loop(0, split_tile, weigh, (jnp.float32(0), jnp.zeros((D,), _F32)))
            tp.store(out, (batch, q_head, tp.ds(0, D)), acc * (1.0 / l_i))

    return decode_split_k


decode_split_k = make_decode_split_k()

SPECS = (decode_split_k,)
