"""Reference of `fused_decode` (docs/catalog.md §1): Qwen3 QK-norm + RoPE + cache write + attention."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._paged_attention import _F32, _paged_decode


def _rms_norm(x: jax.Array, w: jax.Array, eps: float) -> jax.Array:
    var = jnp.mean(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(var + eps) * w.astype(_F32)


def _rope_half(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Qwen3 / HF `rotate_half` RoPE: pair i with i + D/2; x [B, H, D], cos/sin [B, D/2]."""
    x1, x2 = jnp.split(x, 2, axis=-1)
    c = cos.astype(_F32)[:, None, :]
    s = sin.astype(_F32)[:, None, :]
    return jnp.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def fused_decode(
    q: jax.Array,
    k_new: jax.Array,
    v_new: jax.Array,
    q_norm_w: jax.Array,
    k_norm_w: jax.Array,
    cos: jax.Array,
    sin: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    block_table: jax.Array,
    seq_lens: jax.Array,
    *,
    scale: float | None = None,
    eps: float = 1e-6,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One Qwen3 attention decode step: what the three phases of the fused kernel compute.

    Mirrors `fused_decode` (docs/catalog.md §1: batch 16, Hkv=8, 5 query heads per KV head,
    D=128, page 128, 32 pages per sequence). Phase 0 is the per-head RMS QK-norm followed
    by RoPE (Qwen3's order: norm, then rotate) and the write of the new k/v at position
    seq_lens[b] - 1; phases 1-2 are paged attention over the updated cache, whose page split
    and cross-page online softmax are schedule.

    Args:
      q: [B, Hq, D] float, the projected queries of the new token (before norm and RoPE);
        Hq a multiple of Hkv, query head h reads KV head h // (Hq // Hkv).
      k_new, v_new: [B, Hkv, D] float, the new token's projected key (before norm and RoPE)
        and value.
      q_norm_w, k_norm_w: [D], the learned RMSNorm weights, shared by all heads.
      cos, sin: [B, D // 2], the RoPE angles of position seq_lens[b] - 1 (the caller
        gathers the table rows); dimension i is rotated with i + D // 2.
      k_cache, v_cache: [num_pages, page, Hkv, D], one layer's cache; page from the shape.
      block_table: [B, max_pages] int; entries past `ceil(seq_lens[b] / page)` are never
        read. Distinct sequences must not map their new token to the same cache slot.
      seq_lens: [B] int, lengths including the new token, 0 <= seq_lens[b] <= max_pages *
        page; a row of length 0 writes nothing and attends to nothing.
      scale: softmax scale, default 1/sqrt(D). eps: the RMSNorm epsilon.

    Returns:
      (out [B, Hq, D] in q's dtype, k_cache, v_cache updated, in their own dtypes). Math is
      float32 throughout (the kernel rounds q and k to bf16 between phases); attention
      reads the new k/v back from the cache, so it sees them in the cache's dtype.
      Positions t >= seq_lens[b] take no part.
    """
    q, k_new, v_new, cos, sin, k_cache, v_cache, block_table, seq_lens = map(
        jnp.asarray, (q, k_new, v_new, cos, sin, k_cache, v_cache, block_table, seq_lens)
    )
    b, _, d = q.shape
    if k_new.shape != v_new.shape or k_new.shape[0] != b or k_new.shape[2] != d:
        raise ValueError(f"k_new/v_new must both be [B={b}, Hkv, D={d}]; got {k_new.shape}")
    if d % 2 or cos.shape != (b, d // 2) or sin.shape != (b, d // 2):
        raise ValueError(f"cos/sin must be [B={b}, D/2={d // 2}] with D even; got {cos.shape}")
    if k_cache.ndim != 4 or k_cache.shape[2:] != k_new.shape[1:]:
        raise ValueError(f"k_cache must be [pages, page, Hkv, D]; got {k_cache.shape}")
    q_rot = _rope_half(_rms_norm(q.astype(_F32), q_norm_w, eps), cos, sin)
    k_rot = _rope_half(_rms_norm(k_new.astype(_F32), k_norm_w, eps), cos, sin)

    num_pages, page = k_cache.shape[:2]
    pos = seq_lens - 1
    logical = jnp.clip(pos // page, 0, block_table.shape[1] - 1)
    physical = jnp.take_along_axis(block_table, logical[:, None], axis=1)[:, 0]
    physical = jnp.where(seq_lens > 0, physical, num_pages)  # out of range: dropped
    slot = jnp.maximum(pos, 0) % page
    k_cache = k_cache.at[physical, slot].set(k_rot.astype(k_cache.dtype), mode="drop")
    v_cache = v_cache.at[physical, slot].set(v_new.astype(v_cache.dtype), mode="drop")

    out = _paged_decode(q_rot, k_cache, v_cache, block_table, seq_lens, scale)
    return out.astype(q.dtype), k_cache, v_cache
