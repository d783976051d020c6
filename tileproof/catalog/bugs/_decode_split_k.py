"""Defect variants of `decode_split_k` (docs/catalog.md §5, gfx950 decode PR #313), one real mistake each.

- ``decode_unmasked_prefetch``: the next page-table entry is prefetched at ``start + 64``
  without the mask ``start + 64 < split_end``: the last iteration of a split that ends
  the sequence reads one past the row's end -> ``bounds``.
- ``decode_offsets_int32``: K/V element offsets ``((page*64 + t)*Hkv + h)*64 + d`` in
  32 bits: from page 65536 with 8 KV heads they exceed int32 -> ``overflow``.
- ``decode_zero_splits``: a maximum sequence length of 0 is admitted; the host formula
  then picks 0 splits and the reduce divides by zero (``cdiv(num_pages, 0)``) and
  writes NaN -> ``shape``.
- ``decode_split_k_floor_pages``: pages per split ``num_pages // num_splits`` (floor): the
  tail pages of a sequence whose page count is no multiple of the split count are never
  folded, though every output element is written -> ``reads``.
"""

from __future__ import annotations

from ..decode_split_k import make_decode_split_k

__all__ = [
    "VARIANTS",
    "decode_offsets_int32",
    "decode_split_k_floor_pages",
    "decode_unmasked_prefetch",
    "decode_zero_splits",
]

decode_unmasked_prefetch = make_decode_split_k(
    unmasked_prefetch=True, name="decode_unmasked_prefetch"
)
decode_offsets_int32 = make_decode_split_k(offsets_int32=True, name="decode_offsets_int32")
decode_zero_splits = make_decode_split_k(zero_splits=True, name="decode_zero_splits")
decode_split_k_floor_pages = make_decode_split_k(
    floor_pages=True, name="decode_split_k_floor_pages"
)

VARIANTS = (
    decode_unmasked_prefetch,
    decode_offsets_int32,
    decode_zero_splits,
    decode_split_k_floor_pages,
)
