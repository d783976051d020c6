"""Reference of `decode_split_k` (docs/catalog.md §5)."""

from __future__ import annotations

import jax

from ._paged_attention import _paged_decode


def decode_split_k(
    q: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    block_table: jax.Array,
    seq_lens: jax.Array,
    *,
    scale: float | None = None,
) -> jax.Array:
    """Grouped-query paged decode attention, as the split-K kernel must compute it.

    Mirrors `decode_split_k` (docs/catalog.md §5: fp16, head dim 64, page 64, K/V cache
    `[pages, 64, Hkv, 64]`). Splitting the pages over `num_splits` programs and merging
    them by log-sum-exp is schedule: the merged result is plain softmax attention over the
    first seq_lens[b] tokens, which is what this returns.

    Args:
      q: [B, Hq, D] float; query head h reads KV head h // (Hq // Hkv).
      k_cache, v_cache: [num_pages, page, Hkv, D]; the page size is taken from the shape.
        Token t of sequence b is `cache[block_table[b, t // page], t % page]`, i.e. the
        kernel's flat offset `((page_id * page + t % page) * Hkv + h) * D + d`.
      block_table: [B, max_pages] int; entries past `ceil(seq_lens[b] / page)` are never
        read (the kernel's unmasked prefetch would read one of them).
      seq_lens: [B] int, 0 <= seq_lens[b] <= max_pages * page.
      scale: softmax scale, default 1/sqrt(D).

    Returns:
      [B, Hq, D] in q's dtype (accumulated in float32). Tokens t >= seq_lens[b] take no
      part; a sequence of length 0 gives zeros, where the kernel's reduction skips every
      empty split (and `decode_zero_splits` divides by zero instead).
    """
    return _paged_decode(q, k_cache, v_cache, block_table, seq_lens, scale).astype(q.dtype)
