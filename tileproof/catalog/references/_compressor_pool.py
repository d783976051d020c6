"""Reference of `compressor_pool` (docs/catalog.md §3): DeepSeek-V4 KV compressor, decode step."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._paged_attention import _F32, _HI


def compressor_pool(
    x: jax.Array,
    w_kv: jax.Array,
    w_score: jax.Array,
    state_kv: jax.Array,
    state_score: jax.Array,
    kv_cache: jax.Array,
    start_pos: jax.Array | int,
    *,
    ape: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One decode step of the ratio-R KV compressor: project, fill the window, pool it.

    Mirrors `compressor_pool` (docs/catalog.md §3: B=64, S=2, dim 4096, head_dim 512, R=128,
    L=32 compressed rows per sequence), following the torch golden of the authors' kernel
    (`decode_compressor_ratio128.py`, pypto-lib PR #359). The token at position p lands in
    window slot p % R; the step that fills slot R - 1 pools the window into cache row
    `b*L + start_pos // R`, and the tokens after it start the next window.

    Args:
      x: [B, S, dim] float, the new tokens' hidden states, positions start_pos + s.
      w_kv, w_score: [dim, head_dim], the KV and score (gate) projections.
      state_kv, state_score: [B, R, head_dim], the window state (R from the shape); slots
        hold the kv and the position-biased score of earlier tokens of the window.
      kv_cache: [B*L, head_dim], the compressed cache, L rows per sequence.
      start_pos: int scalar (traced), the position of token 0, the same for every row.
      ape: optional [R, head_dim], the learned per-slot score bias; default none.

    Returns:
      (kv_cache, state_kv, state_score), each in its input dtype; math in float32.
      Per row b and channel c the pooled value is sum_slot softmax_slot(score) * kv, a
      plain softmax over the R slots (the kernel's online softmax seeded from the last slot
      is schedule). Tokens 0 .. pre-1, pre = min(S, R - start_pos % R), fill the current
      window; the pool runs iff start_pos % R + S >= R; tokens pre .. S-1 then overwrite
      the first slots of the next window (stale slots of the old window stay: the layout
      does not overlap). Nothing is masked: every slot of a completed window is written.

    Simplified from the kernel: S <= R (the kernel's `min(S, R - start_pos % R)` assumes
    it); no RMSNorm/RoPE of the pooled row, no `kv` output and no bf16 rounding; the state
    and cache are dense per-batch arrays, not paged pools behind block tables. A pooled row
    whose column start_pos // R >= L is dropped, where `compressor_cache_row` writes past
    the cache.
    """
    x, w_kv, w_score, state_kv, state_score, kv_cache = map(
        jnp.asarray, (x, w_kv, w_score, state_kv, state_score, kv_cache)
    )
    b, s, dim = x.shape
    _, r, hd = state_kv.shape
    if state_kv.shape != (b, r, hd) or state_score.shape != state_kv.shape:
        raise ValueError(
            f"state_kv/state_score must both be [B={b}, R, head_dim]; "
            f"got {state_kv.shape}, {state_score.shape}"
        )
    if w_kv.shape != (dim, hd) or w_score.shape != (dim, hd):
        raise ValueError(f"w_kv/w_score must be [dim={dim}, head_dim={hd}]; got {w_kv.shape}")
    if kv_cache.ndim != 2 or kv_cache.shape[1] != hd or kv_cache.shape[0] % b:
        raise ValueError(f"kv_cache must be [B*L, head_dim={hd}] for B={b}; got {kv_cache.shape}")
    if s > r:
        raise ValueError(f"at most R={r} tokens per step (one window completes); got S={s}")
    if ape is not None and ape.shape != (r, hd):
        raise ValueError(f"ape must be [R={r}, head_dim={hd}]; got {ape.shape}")
    rows_per_seq = kv_cache.shape[0] // b

    xf = x.astype(_F32)
    kv = jnp.einsum("bsd,dh->bsh", xf, w_kv.astype(_F32), precision=_HI)
    score = jnp.einsum("bsd,dh->bsh", xf, w_score.astype(_F32), precision=_HI)

    start_pos = jnp.asarray(start_pos, jnp.int32)
    tok = jnp.arange(s)
    slot = (start_pos + tok) % r
    if ape is not None:
        score = score + jnp.take(ape.astype(_F32), slot, axis=0)[None]
    offset = start_pos % r
    in_window = tok < jnp.minimum(s, r - offset)  # tokens 0 .. pre-1
    compress = offset + s >= r

    # Index r is out of range: `mode="drop"` leaves those updates out.
    cur = jnp.where(in_window, slot, r)
    st_kv = state_kv.astype(_F32).at[:, cur].set(kv, mode="drop")
    st_sc = state_score.astype(_F32).at[:, cur].set(score, mode="drop")

    pooled = jnp.sum(jax.nn.softmax(st_sc, axis=1) * st_kv, axis=1)  # [B, head_dim]
    col = start_pos // r
    row = jnp.arange(b) * rows_per_seq + col
    row = jnp.where(compress & (col < rows_per_seq), row, b * rows_per_seq)
    kv_cache = kv_cache.at[row].set(pooled.astype(kv_cache.dtype), mode="drop")

    nxt = jnp.where(in_window, r, slot)
    st_kv = st_kv.at[:, nxt].set(kv, mode="drop")
    st_sc = st_sc.at[:, nxt].set(score, mode="drop")
    return kv_cache, st_kv.astype(state_kv.dtype), st_sc.astype(state_score.dtype)
