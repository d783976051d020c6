"""The real defects of the catalog kernels, each a spec differing from the correct one by the mistake.

``tileproof check tileproof.catalog.bugs`` reports each under its docs/catalog.md name.
"""

from . import (
    _compressor_pool,
    _decode_split_k,
    _fused_decode,
    _mesh_ring_attention,
    _paged_attention,
)

VARIANTS: tuple = (
    *_fused_decode.VARIANTS,
    *_mesh_ring_attention.VARIANTS,
    *_compressor_pool.VARIANTS,
    *_paged_attention.VARIANTS,
    *_decode_split_k.VARIANTS,
)
