"""Defect variants of `compressor_pool` (docs/catalog.md §3, pypto-lib PR #359), one real mistake each.

- ``compressor_floor_div``: the projection is dispatched as ``spmd(B*S // 64)``; when
  ``B*S`` is not a multiple of 64 the tail rows of the scratch tensors are never written
  (``B*S = 48`` launches no program) and the window scatter and the pooling read them
  -> ``coverage`` (read of unwritten scratch); fixed by ``cdiv`` and a masked tail.
- ``compressor_cache_row``: ``start_pos`` ranges over a 1M-token context while the cache
  holds 32 rows (4096 positions) per sequence: ``start_pos >= 4096`` writes cache row
  ``b*32 + start_pos // 128`` past the sequence's rows (the next sequence's, or past the
  cache for the last one) -> ``bounds``.
"""

from __future__ import annotations

from ..compressor_pool import make_compressor_pool

__all__ = ["VARIANTS", "compressor_cache_row", "compressor_floor_div"]

compressor_floor_div = make_compressor_pool(floor_div=True, name="compressor_floor_div")
compressor_cache_row = make_compressor_pool(cache_row=True, name="compressor_cache_row")

VARIANTS = (compressor_floor_div, compressor_cache_row)
