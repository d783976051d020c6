"""Reference of `paged_attention` (docs/catalog.md §4), and the paged-decode core it shares."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

# A finite "minus infinity": exp(_NEG - m) underflows to 0, and a fully masked row gives
# _NEG - _NEG = 0 instead of the inf - inf = NaN that -inf would.
_NEG = -1e30
_HI = lax.Precision.HIGHEST
_F32 = jnp.float32


def _softmax_scale(scale: float | None, head_dim: int) -> float:
    return 1.0 / math.sqrt(head_dim) if scale is None else scale


def _masked_probs(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis where `mask` holds; 0 where it does not.

    Double where: masked logits become a finite constant before `exp`, and their
    probabilities are zeroed after it, so a fully masked row gives zeros with zero (not NaN)
    gradients. The max is a constant of the softmax, so it is taken out of the gradient.
    """
    logits = jnp.where(mask, logits, _NEG)
    m = lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    p = jnp.where(mask, jnp.exp(logits - m), 0.0)
    denom = jnp.sum(p, axis=-1, keepdims=True)
    return p / jnp.where(denom > 0, denom, 1.0)


def _gather_pages(cache: jax.Array, block_table: jax.Array) -> jax.Array:
    """[P, page, Hkv, D] cache, [B, n] table -> [B, n*page, Hkv, D] logical token rows.

    Table entries past a row's last page may hold anything: they are clipped into the pool
    here and masked by the caller, never trusted.
    """
    pages = jnp.take(cache, block_table, axis=0, mode="clip")
    b, n, page = pages.shape[:3]
    return pages.reshape(b, n * page, *cache.shape[2:])


def _paged_decode(
    q: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    block_table: jax.Array,
    seq_lens: jax.Array,
    scale: float | None,
) -> jax.Array:
    """GQA paged decode attention; q [B, Hq, D], caches [P, page, Hkv, D]; float32 result."""
    q, k_cache, v_cache, block_table, seq_lens = map(
        jnp.asarray, (q, k_cache, v_cache, block_table, seq_lens)
    )
    b, hq, d = q.shape
    if k_cache.ndim != 4 or k_cache.shape != v_cache.shape or k_cache.shape[3] != d:
        raise ValueError(
            f"k_cache/v_cache must both be [pages, page, Hkv, {d}]; "
            f"got {k_cache.shape} and {v_cache.shape}"
        )
    hkv = k_cache.shape[2]
    if hq % hkv:
        raise ValueError(f"query heads Hq={hq} must be a multiple of KV heads Hkv={hkv}")
    if block_table.ndim != 2 or block_table.shape[0] != b or seq_lens.shape != (b,):
        raise ValueError(
            f"block_table must be [B={b}, max_pages] and seq_lens [B={b}]; "
            f"got {block_table.shape} and {seq_lens.shape}"
        )
    k = _gather_pages(k_cache, block_table).astype(_F32)
    v = _gather_pages(v_cache, block_table).astype(_F32)
    valid = jnp.arange(k.shape[1])[None, :] < seq_lens[:, None]  # [B, T]
    # Unwritten slots may hold NaN (tileproof poisons buffers): 0 * NaN would leak into PV.
    k = jnp.where(valid[:, :, None, None], k, 0.0)
    v = jnp.where(valid[:, :, None, None], v, 0.0)
    qg = q.astype(_F32).reshape(b, hkv, hq // hkv, d)
    logits = jnp.einsum("bhgd,bthd->bhgt", qg, k, precision=_HI) * _softmax_scale(scale, d)
    p = _masked_probs(logits, valid[:, None, None, :])
    out = jnp.einsum("bhgt,bthd->bhgd", p, v, precision=_HI)
    return out.reshape(b, hq, d)


def paged_attention(
    q: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    block_table: jax.Array,
    seq_lens: jax.Array,
    *,
    scale: float | None = None,
) -> jax.Array:
    """Decode attention of one query per sequence over a paged KV cache.

    Mirrors `paged_attention` (docs/catalog.md §4: B=64, H=16, D=128, page 128, context up to
    8192); its pair/single-page tiers and 16-head query tiles are schedule, not math, so
    this is the single-pass result every tier must reproduce.

    Args:
      q: [B, H, D] float, the queries of the current token.
      k_cache, v_cache: [num_pages, page, Hkv, D] with H % Hkv == 0 (grouped heads), or
        [num_pages, page, D] for one KV head shared by all H heads, as in the authors'
        kernel, whose flat row `block_table[b, j] * page + t` is `k_cache[block, t]`.
        The page size is taken from the shape.
      block_table: [B, max_pages] int, logical page j of sequence b -> physical page.
        Entries past `ceil(seq_lens[b] / page)` are never read (clipped and masked).
      seq_lens: [B] int, 0 <= seq_lens[b] <= max_pages * page.
      scale: softmax scale, default 1/sqrt(D).

    Returns:
      [B, H, D] in q's dtype (accumulated in float32). Positions t >= seq_lens[b] take no
      part (whatever the cache holds there, NaN included), in particular all columns of a
      partial last page past the length; a sequence of length 0 gives zeros.
    """
    if k_cache.ndim == 3:
        k_cache, v_cache = k_cache[:, :, None, :], v_cache[:, :, None, :]
    out = _paged_decode(q, k_cache, v_cache, block_table, seq_lens, scale)
    return out.astype(q.dtype)
