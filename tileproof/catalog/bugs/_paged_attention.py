"""Defect variants of `paged_attention` (docs/catalog.md §4, pypto PR #470), one real mistake each.

- ``paged_pair_contiguous``: the two-page tier slices ``2*128`` contiguous rows from page
  ``block_table[b, j]`` (the authors' `assume_contiguous_blocks`), as if page j+1 were
  the next physical page: out of bounds when it is the last page of the pool
  -> ``bounds``; wrong numbers with a shuffled table (numeric).
- ``paged_heads_tail``: the domain no longer requires ``H % 16 == 0``; the kernel has no
  head mask, so the last query tile reads and writes the next sequence's rows
  -> ``bounds`` / ``coverage``.
- ``paged_unmasked_partial``: the softmax takes all 128 columns of a partial page (the
  authors' test used whole pages only) -> numeric mismatch when ``seq_len % 128 != 0``;
  its schedule model is the correct one's.
"""

from __future__ import annotations

from ..paged_attention import make_paged_attention

__all__ = [
    "VARIANTS",
    "paged_heads_tail",
    "paged_pair_contiguous",
    "paged_unmasked_partial",
]

paged_pair_contiguous = make_paged_attention(pair_contiguous=True, name="paged_pair_contiguous")
paged_heads_tail = make_paged_attention(heads_tail=True, name="paged_heads_tail")
paged_unmasked_partial = make_paged_attention(unmasked_partial=True, name="paged_unmasked_partial")

VARIANTS = (paged_pair_contiguous, paged_heads_tail, paged_unmasked_partial)
