"""Reference of `mesh_ring_attention` (docs/catalog.md §2), and its step-by-step second golden."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ._paged_attention import _F32, _HI, _NEG, _masked_probs, _softmax_scale


def _check(q: jax.Array, k: jax.Array, v: jax.Array, causal: bool) -> None:
    n, sq, h, d = q.shape
    if k.shape != v.shape or k.ndim != 4 or k.shape[0] != n or k.shape[2:] != (h, d):
        raise ValueError(f"k/v must both be [n={n}, Skv, H={h}, D={d}]; got {k.shape}, {v.shape}")
    if causal and k.shape[1] != sq:
        raise ValueError(f"causal needs Sq == Skv (one global sequence); got {sq} and {k.shape[1]}")


def _causal_mask(q_rank: jax.Array, kv_rank: jax.Array, s: int) -> jax.Array:
    """[n, 1, S, S]: key c*S + j is visible to query r*S + i iff it is not later."""
    qpos = q_rank[:, None] * s + jnp.arange(s)[None, :]  # [n, S]
    kpos = kv_rank[:, None] * s + jnp.arange(s)[None, :]
    return (kpos[:, None, :] <= qpos[:, :, None])[:, None]


def mesh_ring_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    causal: bool = False,
    scale: float | None = None,
) -> jax.Array:
    """What ring attention computes: each rank's queries over the whole K/V sequence.

    Mirrors `mesh_ring_attention` (docs/catalog.md §2: n=8 along processing elements or n=4
    along cubes; S_q = 1 decode, 16 prefill). The ring only moves K/V chunks; with every
    chunk folded exactly once the result is full attention over their concatenation, so no
    ring appears here (see `ring_attention_steps` for the step order).

    Args:
      q: [n, Sq, H, D] float, rank r's queries (n ranks, sequence-sharded).
      k, v: [n, Skv, H, D] float, rank c holds tokens c*Skv .. c*Skv + Skv - 1.
      causal: (static) query r*Sq + i sees keys at global positions <= its own; needs
        Sq == Skv.
      scale: softmax scale, default 1/sqrt(D).

    Returns:
      [n, Sq, H, D] in q's dtype, accumulated in float32. Nothing is masked unless causal.
    """
    q, k, v = jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)
    _check(q, k, v, causal)
    n, sq, h, d = q.shape
    kk = k.astype(_F32).reshape(1, n * k.shape[1], h, d)
    vv = v.astype(_F32).reshape(1, n * k.shape[1], h, d)
    logits = jnp.einsum("nqhd,xkhd->nhqk", q.astype(_F32), kk, precision=_HI)
    logits = logits * _softmax_scale(scale, d)
    if causal:
        qpos = jnp.arange(n * sq).reshape(n, 1, sq, 1)  # global positions, Sq == Skv
        mask = jnp.arange(n * sq).reshape(1, 1, 1, n * sq) <= qpos
    else:
        mask = jnp.ones((1, 1, 1, 1), bool)
    p = _masked_probs(logits, mask)
    out = jnp.einsum("nhqk,xkhd->nqhd", p, vv, precision=_HI)
    return out.astype(q.dtype)


def ring_attention_steps(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    causal: bool = False,
    scale: float | None = None,
) -> jax.Array:
    """`mesh_ring_attention` computed in the open-mesh bidirectional ring's step order.

    A second golden for the schedule: step 0 folds each rank's own chunk into a running
    (m, l, o); step s = 1..n-1 folds the chunks of ranks r - s (arriving from the west) and
    r + s (from the east) where those ranks exist. Vectorised over ranks: each step gathers
    the source chunk per rank and masks off-edge sources. Same arguments and result as
    `mesh_ring_attention`; differentiable (the step loop has a static trip count).
    """
    q, k, v = jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)
    _check(q, k, v, causal)
    n, sq, h, d = q.shape
    qf = q.astype(_F32)
    kf, vf = k.astype(_F32), v.astype(_F32)
    scl = _softmax_scale(scale, d)
    ranks = jnp.arange(n)

    def fold(carry, src, exists):
        m, l, o = carry  # [n, H, Sq], [n, H, Sq], [n, H, Sq, D]
        kc = jnp.take(kf, src, axis=0, mode="clip")
        vc = jnp.take(vf, src, axis=0, mode="clip")
        logits = jnp.einsum("nqhd,nkhd->nhqk", qf, kc, precision=_HI) * scl
        mask = exists[:, None, None, None]
        if causal:
            mask = mask & _causal_mask(ranks, src, sq)
        logits = jnp.where(mask, logits, _NEG)
        m_new = jnp.maximum(m, jnp.max(logits, axis=-1))
        alpha = jnp.exp(m - m_new)
        p = jnp.where(mask, jnp.exp(logits - m_new[..., None]), 0.0)
        l = alpha * l + jnp.sum(p, axis=-1)
        o = alpha[..., None] * o + jnp.einsum("nhqk,nkhd->nhqd", p, vc, precision=_HI)
        return m_new, l, o

    init = (
        jnp.full((n, h, sq), _NEG, _F32),
        jnp.zeros((n, h, sq), _F32),
        jnp.zeros((n, h, sq, d), _F32),
    )
    carry = fold(init, ranks, jnp.ones((n,), bool))

    def step(s, carry):
        carry = fold(carry, ranks - s, ranks - s >= 0)
        return fold(carry, ranks + s, ranks + s < n)

    _, l, o = lax.fori_loop(1, n, step, carry)
    out = o / jnp.where(l > 0, l, 1.0)[..., None]
    return jnp.transpose(out, (0, 2, 1, 3)).astype(q.dtype)
