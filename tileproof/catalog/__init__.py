"""Reference kernels from the field, each with its spec; defect variants live in ``catalog.bugs``.

``KERNELS`` holds the correct specs that ``tileproof check`` verifies by default;
``tileproof.catalog.references`` holds the plain-JAX goldens other suites import.
"""

from . import compressor_pool as compressor_pool
from . import decode_split_k as decode_split_k
from . import fused_decode as fused_decode
from . import mesh_ring_attention as mesh_ring_attention
from . import paged_attention as paged_attention

KERNELS: tuple = (
    *paged_attention.SPECS,
    *decode_split_k.SPECS,
    *fused_decode.SPECS,
    *mesh_ring_attention.SPECS,
    *compressor_pool.SPECS,
)
