"""Defect variants of `mesh_ring_attention` (docs/catalog.md §2), each one real mistake away.

- ``mesh_ring_short``: n - 2 ring steps, so the far ends never meet -> ``ring``
  (rank 0 never folds the chunk of rank n - 1, and vice versa).
- ``mesh_ring_gated_partner``: the cube placement whose early-return gate tests
  the rank axis instead of the element axis (the seed PR's ``rank_axis``
  mix-up): only cube 0 runs, and its partner cube 1 has returned -> ``ring``.
- ``mesh_ring_stale_backward``: the backward of each fold recomputes with the
  rank's step-0 K/V -> numeric gradient mismatch (the forward is unchanged).
"""

from __future__ import annotations

from ..mesh_ring_attention import make_mesh_ring_attention

__all__ = ["VARIANTS", "mesh_ring_gated_partner", "mesh_ring_short", "mesh_ring_stale_backward"]

mesh_ring_short = make_mesh_ring_attention(placement="pe", short=True, name="mesh_ring_short")
mesh_ring_gated_partner = make_mesh_ring_attention(
    placement="cube", gated_partner=True, name="mesh_ring_gated_partner"
)
mesh_ring_stale_backward = make_mesh_ring_attention(
    placement="pe", stale_backward=True, name="mesh_ring_stale_backward"
)

VARIANTS = (mesh_ring_short, mesh_ring_gated_partner, mesh_ring_stale_backward)
