"""Defect variants of `fused_decode` (docs/catalog.md §1, pypto-lib PR #656), one real mistake each.

- ``fused_decode_odd_split``: phase 2 under the row-halving split of phase 1 (what a
  function-level ``pl.split`` does): its [5, 128] reduction tile cannot be halved
  -> ``split``.
- ``fused_decode_wave_launch``: programs start in waves while zero-fill tasks with no
  dependency edge hold cores, so the 24 participants of a grid barrier need not be
  co-resident (a hang on hardware; PR #656 review) -> ``barrier``.
- ``fused_decode_kv_offset_int32``: element offsets into the 40-layer stacked K/V cache
  (up to 40*512*8*128*128 = 2.68e9) computed in 32 bits -> ``overflow``.
- ``fused_decode_empty_seq``: phase 2 seeds its online softmax from page 0's partials
  unconditionally; for a sequence of length 0 no work entry wrote them -> ``coverage``
  (read of unwritten scratch).
"""

from __future__ import annotations

from ..fused_decode import make_fused_decode

__all__ = [
    "VARIANTS",
    "fused_decode_empty_seq",
    "fused_decode_kv_offset_int32",
    "fused_decode_odd_split",
    "fused_decode_wave_launch",
]

fused_decode_odd_split = make_fused_decode(odd_split=True, name="fused_decode_odd_split")
fused_decode_wave_launch = make_fused_decode(wave_launch=True, name="fused_decode_wave_launch")
fused_decode_kv_offset_int32 = make_fused_decode(
    kv_offset_int32=True, name="fused_decode_kv_offset_int32"
)
fused_decode_empty_seq = make_fused_decode(empty_seq=True, name="fused_decode_empty_seq")

VARIANTS = (
    fused_decode_odd_split,
    fused_decode_wave_launch,
    fused_decode_kv_offset_int32,
    fused_decode_empty_seq,
)
