"""Spec of `compressor_pool`: DeepSeek-V4 KV compressor, ratio 128, one decode step (docs/catalog.md §3).

From pypto-lib PR #359 (`decode_compressor_ratio128.py`, its four `pl.spmd` sites):

1. ``kv_score_proj``: the KV and score projections of the ``B*S`` tokens into the scratch
   tensors ``[B*S, 512]``, ``cdiv(B*S, 64)`` programs of 64 rows (the last one masked),
   each looping over the output column chunks of 64 and the ``DM // 512`` K chunks.
   Then (``score_ape_state_scatter``, one task per column chunk) the tokens that fall in
   the current window, ``s < min(S, 128 - start_pos % 128)``, are scattered into their
   slots ``(start_pos % 128 + s) % 128`` of the window state, the score plus `ape`.
2. ``softmax_pool``, when the window completes (``start_pos % 128 + S >= 128``): per
   (batch chunk of 16, head block) an online softmax over the 128 slots, seeded from
   slot 127, or from the scratch row of the token that filled it when fewer than S
   tokens precede; head blocks are 64 wide when ``B*S >= 64``, else 128 (the kernel's
   `HEAD_CHUNK`).
3. ``kv_write`` (not rotating): the pooled row of sequence b into cache row
   ``b*32 + start_pos // 128``, in ``512 // 64`` programs of one column chunk.
4. ``state_scatter_next``: tokens ``s in [pre_tokens, S)`` start the next window.

The launches are phases of one grid of ``max(cdiv(B*S, 64), 8*B // 16, 8)`` programs
separated by ``tp.barrier("launch")``, which stands for the dependency edge between two
``spmd`` launches: what one stage wrote is visible to the next, and, no program waiting
inside a launch, there is no residency or uniformity obligation (nor a machine model
to declare); a program whose index is past a stage's count skips it. The authors' dispatch
``spmd(B*S // 64)`` is :data:`tileproof.catalog.bugs` ``compressor_floor_div``.

Sizes: B sequences (a multiple of the 16-row batch chunk), S tokens per step, DM the
model dim (a multiple of the 512 K chunk); head dim 512, window 128 and 32 cache rows per
sequence (so 4096 positions) are the kernel's constants. ``start_pos`` is the host
scalar, passed as a one-element tensor so that the reference sees it; its declared range
``0 <= start_pos < 4096`` is the kernel's precondition (``compressor_cache_row`` drops
it). The window states and the cache are inputs updated in place (``updated=True``):
only the slots and rows of this step are written. RMSNorm, RoPE and the Hadamard
rotation of the pooled row are left out, as in the catalog reference.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp

from .references import compressor_pool as _compressor_pool

__all__ = ["SPECS", "compressor_pool", "make_compressor_pool"]

OUT_DIM = 512  # head_dim
RATIO = 128  # COMPRESS_RATIO == STATE_LEN
IDX_KV_LEN = 32  # cache rows per sequence
K_CHUNK = 512
OUT_CHUNK = 64
OUT_BLOCKS = OUT_DIM // OUT_CHUNK  # 8 programs of stages 3 and 4
BATCH_CHUNK_0 = 64  # rows of a projection program
BATCH_CHUNK_1 = 16  # sequences of a pooling program
_HI = lax.Precision.HIGHEST
_F32 = jnp.float32


def _reference(x, wkv, wgate, ape, kv_state, score_state, kv_cache, start_pos):
    """The catalog reference on the kernel's layouts (x as the flat [B*S, DM] rows)."""
    b = kv_state.shape[0]
    cache, st_kv, st_sc = _compressor_pool(
        x.reshape(b, -1, x.shape[1]),
        wkv,
        wgate,
        kv_state,
        score_state,
        kv_cache,
        start_pos[0],
        ape=ape,
    )
    return {"kv_state": st_kv, "score_state": st_sc, "kv_cache": cache}


def make_compressor_pool(
    *,
    floor_div: bool = False,
    cache_row: bool = False,
    name: str | None = None,
) -> tp.Kernel:
    """The spec, or one of its docs/catalog.md §3 defects.

    ``floor_div``: the projection is dispatched as ``spmd(B*S // 64)``.
    ``cache_row``: ``start_pos`` may be any position of a 1M-token context, past the
    4096 positions the cache's 32 rows per sequence hold.
    """
    positions = "0 <= v < 2**20" if cache_row else f"0 <= v < {IDX_KV_LEN * RATIO}"

    @tp.kernel(
        name=name or "compressor_pool",
        grid={"p": "max(cdiv(B*S, 64), 8*(B // 16), 8)"},
        assume=[
            "B % 16 == 0",
            "B <= 1024",
            "S <= 128",
            "B*S <= 65536",
            "DM % 512 == 0",
            "DM <= 8192",
        ],
        defaults=dict(B=64, S=2, DM=4096),
        tensors=dict(
            x=tp.Input(("B*S", "DM"), "bfloat16"),
            wkv=tp.Input(("DM", OUT_DIM), "bfloat16"),
            wgate=tp.Input(("DM", OUT_DIM), "bfloat16"),
            ape=tp.Input((RATIO, OUT_DIM), "float32"),
            kv_state=tp.Input(("B", RATIO, OUT_DIM), "float32", updated=True),
            score_state=tp.Input(("B", RATIO, OUT_DIM), "float32", updated=True),
            kv_cache=tp.Input((f"B*{IDX_KV_LEN}", OUT_DIM), "bfloat16", updated=True),
            start_pos=tp.Input((1,), "int32", values=positions),
            kv_proj=tp.Scratch(("B*S", OUT_DIM), "float32"),
            score_proj=tp.Scratch(("B*S", OUT_DIM), "float32"),
            pooled_kv=tp.Scratch(("B", OUT_DIM), "float32"),
        ),
        reference=_reference,
    )
    def compressor_pool(
        x,
        wkv,
        wgate,
        ape,
        kv_state,
        score_state,
        kv_cache,
        start_pos,
        kv_proj,
        score_proj,
        pooled_kv,
    ):
        """Projection | window fill | softmax pool | cache write and next-window scatter."""
        p = tp.program_id(0)
        B, S, DM = tp.size("B"), tp.size("S"), tp.size("DM")
        pos = tp.load(start_pos, (0,))
        ape_row = pos % RATIO
        pre_tokens = RATIO - ape_row
        scatter_stop = jnp.minimum(S, pre_tokens)
        compress = ape_row + S >= RATIO

        def scatter(s, o0):
            """score_ape_state_scatter / state_scatter_next: token s of every sequence."""
            token_ape_row = (ape_row + s) % RATIO
            ape_tile = tp.load(ape, (token_ape_row, tp.ds(o0, OUT_CHUNK)))

            def row(b, _):
                cols = tp.ds(o0, OUT_CHUNK)
                kv_tile = tp.load(kv_proj, (b * S + s, cols))
                score_tile = tp.load(score_proj, (b * S + s, cols)) + ape_tile
                tp.store(kv_state, (b, token_ape_row, cols), kv_tile)
                tp.store(score_state, (b, token_ape_row, cols), score_tile)

            lax.fori_loop(0, B, row, None)

        # ---- stage 1: kv_score_proj
        n_proj = (
            B * S // BATCH_CHUNK_0 if floor_div else (B * S + BATCH_CHUNK_0 - 1) // BATCH_CHUNK_0
        )

        @tp.when(p < n_proj)
        def _kv_score_proj():
            b_idx = p * BATCH_CHUNK_0
            rows = tp.ds(b_idx, BATCH_CHUNK_0)
            live = (b_idx + jnp.arange(BATCH_CHUNK_0))[:, None] < B * S

            def out_chunk(ob, _):
                o0 = ob * OUT_CHUNK

                def k_block(kb, acc):
                    k0 = kb * K_CHUNK
                    x_tile = tp.load(x, (rows, tp.ds(k0, K_CHUNK)), mask=live).astype(_F32)
                    wkv_tile = tp.load(wkv, (tp.ds(k0, K_CHUNK), tp.ds(o0, OUT_CHUNK)))
                    wgate_tile = tp.load(wgate, (tp.ds(k0, K_CHUNK), tp.ds(o0, OUT_CHUNK)))
                    return (
                        acc[0] + jnp.dot(x_tile, wkv_tile.astype(_F32), precision=_HI),
                        acc[1] + jnp.dot(x_tile, wgate_tile.astype(_F32), precision=_HI),
                    )

                zero = jnp.zeros((BATCH_CHUNK_0, OUT_CHUNK), _F32)
                kv_acc, score_acc = lax.fori_loop(0, DM // K_CHUNK, k_block, (zero, zero))
                tp.store(kv_proj, (rows, tp.ds(o0, OUT_CHUNK)), kv_acc, mask=live)
                tp.store(score_proj, (rows, tp.ds(o0, OUT_CHUNK)), score_acc, mask=live)

            lax.fori_loop(0, OUT_BLOCKS, out_chunk, None)

        tp.barrier("launch")

        # ---- stage 1 (cont.): the window's tokens into their slots, one program per chunk
        @tp.when(p < OUT_BLOCKS)
        def _score_ape_state_scatter():
            lax.fori_loop(0, scatter_stop, lambda s, c: scatter(s, p * OUT_CHUNK), None)

        tp.barrier("launch")

        # ---- stage 2: softmax_pool over the 128 slots, when the window completes
        def softmax_pool(head_chunk: int):
            head_blocks = OUT_DIM // head_chunk

            @tp.when(compress & (p < (B // BATCH_CHUNK_1) * head_blocks))
            def _softmax_pool():
                b_idx = (p // head_blocks) * BATCH_CHUNK_1
                h0 = (p % head_blocks) * head_chunk
                rows, cols = tp.ds(b_idx, BATCH_CHUNK_1), tp.ds(h0, head_chunk)
                # initialize m/o from the last slot ...
                mi = tp.load(score_state, (rows, RATIO - 1, cols))
                oi = tp.load(kv_state, (rows, RATIO - 1, cols))

                def seed_from_scratch(_):
                    # ... or from the scratch row of the token that filled it
                    pre_s = pre_tokens - 1
                    token_ape_row = (ape_row + pre_s) % RATIO

                    def seed_row(i, seeds):
                        scratch_row = (b_idx + i) * S + pre_s
                        m_row = tp.load(score_proj, (scratch_row, cols))
                        o_row = tp.load(kv_proj, (scratch_row, cols))
                        return seeds[0].at[i].set(m_row), seeds[1].at[i].set(o_row)

                    zero = jnp.zeros((BATCH_CHUNK_1, head_chunk), _F32)
                    mi_seed, oi_seed = lax.fori_loop(0, BATCH_CHUNK_1, seed_row, (zero, zero))
                    pool_ape = tp.load(ape, (token_ape_row, cols))
                    return mi_seed + pool_ape[None, :], oi_seed

                mi, oi = lax.cond(pre_tokens < S, seed_from_scratch, lambda _: (mi, oi), None)
                li = jnp.exp(mi - mi)

                def slot(s, carry):
                    mi, li, oi = carry
                    slot_score = tp.load(score_state, (rows, s, cols))
                    slot_kv = tp.load(kv_state, (rows, s, cols))
                    mi_next = jnp.maximum(mi, slot_score)
                    alpha, beta = jnp.exp(mi - mi_next), jnp.exp(slot_score - mi_next)
                    return mi_next, alpha * li + beta, oi * alpha + slot_kv * beta

                _, li, oi = lax.fori_loop(0, RATIO - 1, slot, (mi, li, oi))
                tp.store(pooled_kv, (rows, cols), oi / li)

        tp.when(B * S >= BATCH_CHUNK_0)(lambda: softmax_pool(64))
        tp.when(B * S < BATCH_CHUNK_0)(lambda: softmax_pool(128))

        tp.barrier("launch")

        # ---- stage 3: kv_write, the pooled row into cache row b*32 + start_pos // 128
        cache_col = pos // RATIO

        @tp.when(compress & (p < OUT_BLOCKS))
        def _kv_write():
            cols = tp.ds(p * OUT_CHUNK, OUT_CHUNK)

            def row(b, _):
                cache_row = b * IDX_KV_LEN + cache_col
                tp.store(kv_cache, (cache_row, cols), tp.load(pooled_kv, (b, cols)))

            lax.fori_loop(0, B, row, None)

        # ---- stage 4: state_scatter_next, tokens [pre_tokens, S) open the next window
        @tp.when((pre_tokens < S) & (p < OUT_BLOCKS))
        def _state_scatter_next():
            lax.fori_loop(pre_tokens, S, lambda s, c: scatter(s, p * OUT_CHUNK), None)

    return compressor_pool


compressor_pool = make_compressor_pool()

SPECS = (compressor_pool,)
