"""Plain-JAX references of the catalog kernels: jit-able, differentiable goldens."""

from ._compressor_pool import compressor_pool as compressor_pool
from ._decode_split_k import decode_split_k as decode_split_k
from ._fused_decode import fused_decode as fused_decode
from ._mesh_ring_attention import mesh_ring_attention as mesh_ring_attention
from ._mesh_ring_attention import ring_attention_steps as ring_attention_steps
from ._paged_attention import paged_attention as paged_attention
