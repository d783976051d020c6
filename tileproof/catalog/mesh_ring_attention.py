"""Spec of `mesh_ring_attention` (docs/catalog.md §2; seed PR 222815d374, ADR-0059).

Bidirectional ring K/V attention on an *open* mesh: n ranks in a line, no
wrap-around link.  Rank r holds its queries and the r-th of n sequence chunks
of K and V.  Step 0 attends to its own chunk and starts a running (m, l, o);
steps 1..n-1 move chunks both ways — each rank forwards what it received the
step before, so the chunk of rank i reaches rank j at step |i - j| — and fold
whatever arrived.  Edge ranks have no neighbour on one side; after n-1 steps
every rank has folded every chunk exactly once, with no final merge.

Why each piece is written the way it is:

- K and V of a chunk travel together, so the spec stacks them into one
  ``[2, S, H, D]`` chunk: one ``sendrecv`` per direction per step and one
  ``fold`` per chunk.  The ring obligation then reads "rank r folds the chunk
  of rank c exactly once" off the ``Fold`` nodes' provenance (``r - i`` from
  the west, ``r + i`` from the east, solved through the loop carry).
- Sends and receives are guarded as in the seed: a rank sends a wave only
  while it holds one (``to_send is not None`` there: the held eastbound chunk
  ``r - (i - 1)`` exists) and receives only when its neighbour sends.
- Two placements (the seed's ``rank_axis``): ranks are the processing
  elements of one cube (``placement="pe"``, n = 8, one program per rank), or
  the cubes (``placement="cube"``, n = 4) where only element 0 of each cube
  takes part and the other 7 return at once (``tp.exit_if``).
- ``s_q`` is 1 (decode) or 16 (prefill).
- The per-chunk partial attention is a ``jax.custom_vjp`` whose backward
  recomputes the partial from a saved chunk, as a ring backward does.  The
  correct spec saves the chunk folded at that step; the defect
  ``mesh_ring_stale_backward`` saves the rank's own step-0 chunk.  The
  forward (values, schedule, listing) is identical: only the numeric gradient
  check can see it.  (No backward-spec API exists yet; this is the fallback
  the catalog issue allows.)

Tensors carry a leading rank axis (``q[r]`` is rank r's queries), the layout of
the reference :func:`tileproof.catalog.references.mesh_ring_attention`, which
serves unchanged as the reference.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp

from .references import mesh_ring_attention as _mesh_ring_attention

__all__ = [
    "SPECS",
    "make_mesh_ring_attention",
    "mesh_ring_attention",
    "mesh_ring_attention_cube",
    "mesh_ring_attention_cube_decode",
    "mesh_ring_attention_decode",
]

HEADS = 8  # query = KV heads per rank tile (the ring moves K/V only; no GQA here)
HEAD_DIM = 128
S_KV = 16  # tokens of K/V per rank (the sequence shard)
PES = 8  # processing elements per cube
_NEG = -1e30  # finite "minus infinity" (as the reference), so exp/where never make NaN
_ALL = slice(None)


def _attend(q, kv):
    """Partial attention of q [Sq, H, D] over one chunk kv [2, S, H, D]: (m, l, o) per head."""
    logits = jnp.einsum("qhd,khd->hqk", q, kv[0]) * (1.0 / math.sqrt(q.shape[-1]))
    m = jnp.max(logits, axis=-1)
    p = jnp.exp(logits - m[..., None])
    return m, jnp.sum(p, axis=-1), jnp.einsum("hqk,khd->hqd", p, kv[1])


def _partial_attention(stale: bool):
    """``_attend`` with a ring-style backward that recomputes from a saved chunk.

    ``own`` is the rank's step-0 chunk.  The correct backward recomputes with
    the chunk folded at this step; the stale one (the defect) with ``own``.
    """

    @jax.custom_vjp
    def partial(q, kv, own):
        return _attend(q, kv)

    def fwd(q, kv, own):
        return _attend(q, kv), (q, own if stale else kv, own)

    def bwd(res, g):
        q, kv_saved, own = res
        _, vjp = jax.vjp(_attend, q, kv_saved)
        dq, dkv = vjp(g)
        return dq, dkv, jnp.zeros_like(own)

    partial.defvjp(fwd, bwd)
    return partial


def _merge(acc, new, valid):
    """Online-softmax merge of (m, l, o) with a new partial, where ``valid``."""
    m, l, o = acc
    m_new, l_new, o_new = new
    mc = jnp.maximum(m, m_new)
    a, b = jnp.exp(m - mc), jnp.exp(m_new - mc)
    merged = (mc, l * a + l_new * b, o * a[..., None] + o_new * b[..., None])
    return tuple(jnp.where(valid, x, y) for x, y in zip(merged, acc))


def _reference(q, k, v):
    return {"out": _mesh_ring_attention(q, k, v)}


def make_mesh_ring_attention(
    *,
    placement: str = "pe",
    s_q: int = 16,
    s_kv: int = S_KV,
    short: bool = False,
    gated_partner: bool = False,
    stale_backward: bool = False,
    name: str | None = None,
) -> tp.Kernel:
    """The spec for one placement and query length; each flag adds one real defect.

    ``s_kv`` is the K/V sequence shard per rank (the authors' 16; the device
    benchmark also runs longer shards).

    - ``short``: the step loop runs n - 2 steps instead of n - 1, so the two far
      ends never meet (``mesh_ring_short`` -> ``ring``).
    - ``gated_partner`` (cube placement only): the early-return gate tests the
      rank axis (the cube id) instead of the element id — the ``rank_axis``
      mix-up the seed PR is about — so only cube 0 runs and its east partner
      cube 1 has returned (``mesh_ring_gated_partner`` -> ``ring``).
    - ``stale_backward``: the backward of each fold recomputes with the rank's
      step-0 K/V (``mesh_ring_stale_backward`` -> numeric gradient mismatch).
    """
    if placement not in ("pe", "cube"):
        raise ValueError(f"placement must be 'pe' or 'cube', not {placement!r}")
    if gated_partner and placement != "cube":
        raise ValueError("gated_partner is a defect of the cube placement")
    cube = placement == "cube"
    partial = _partial_attention(stale_backward)
    suffix = ("_cube" if cube else "") + ("_decode" if s_q == 1 else "")

    @tp.kernel(
        name=name or f"mesh_ring_attention{suffix}",
        # pe: each rank is one processing element running one program;
        # cube: each rank is a cube of PES elements, of which only element 0 runs the ring.
        grid={"pe": PES} if cube else {"prog": 1},
        ranks=tp.Ranks(size="n", topology="mesh", name="r"),
        assume=["n <= 8"],
        defaults={"n": 4 if cube else 8},
        tensors=dict(
            q=tp.Input(("n", s_q, HEADS, HEAD_DIM)),
            k=tp.Input(("n", s_kv, HEADS, HEAD_DIM), sharded=True),
            v=tp.Input(("n", s_kv, HEADS, HEAD_DIM), sharded=True),
            out=tp.Output(("n", s_q, HEADS, HEAD_DIM)),
        ),
        reference=_reference,
    )
    def body(q, k, v, out):
        """Open-mesh bidirectional ring K/V attention (docs/catalog.md §2)."""
        if cube:  # static: the placement, not a traced value
            # Only the element with an E/W link (element 0 of each cube) takes part.
            tp.exit_if((tp.rank_id() if gated_partner else tp.program_id(0)) != 0)
        r, n = tp.rank_id(), tp.num_ranks()
        qt = tp.load(q, (r, _ALL, _ALL, _ALL))
        own = jnp.stack([tp.load(k, (r, _ALL, _ALL, _ALL)), tp.load(v, (r, _ALL, _ALL, _ALL))])

        # Step 0: the rank's own chunk starts the running (m, l, o).
        acc = partial(qt, tp.fold(own), own)

        def step(i, carry):
            east, west, acc = carry
            # Eastbound wave: forward the chunk of rank r - (i - 1) (own at step 1) while it
            # exists; receive the chunk of rank r - i from the west when there is one.
            from_w = (r - 1 >= 0) & (r - i >= 0)
            east = tp.sendrecv(
                east, to=r + 1, frm=r - 1, send=(r + 1 < n) & (r - i + 1 >= 0), recv=from_w
            )
            # Westbound wave, the mirror image: chunk of rank r + i from the east.
            from_e = (r + 1 < n) & (r + i < n)
            west = tp.sendrecv(
                west, to=r - 1, frm=r + 1, send=(r - 1 >= 0) & (r + i - 1 < n), recv=from_e
            )
            # Fold what arrived; where nothing did, the received tile is poison: zero it first.
            chunk = jnp.where(from_w, tp.fold(east, when=from_w), 0.0)
            acc = _merge(acc, partial(qt, chunk, own), from_w)
            chunk = jnp.where(from_e, tp.fold(west, when=from_e), 0.0)
            acc = _merge(acc, partial(qt, chunk, own), from_e)
            return east, west, acc

        steps = n - 2 if short else n - 1
        _, _, (_, l, o) = lax.fori_loop(1, 1 + steps, step, (own, own, acc))
        tp.store(out, (r, _ALL, _ALL, _ALL), jnp.transpose(o / l[..., None], (1, 0, 2)))

    return body


# Correct specs: both placements, prefill (S_q = 16) and decode (S_q = 1).
mesh_ring_attention = make_mesh_ring_attention(placement="pe", s_q=16)
mesh_ring_attention_decode = make_mesh_ring_attention(placement="pe", s_q=1)
mesh_ring_attention_cube = make_mesh_ring_attention(placement="cube", s_q=16)
mesh_ring_attention_cube_decode = make_mesh_ring_attention(placement="cube", s_q=1)

SPECS = (
    mesh_ring_attention,
    mesh_ring_attention_decode,
    mesh_ring_attention_cube,
    mesh_ring_attention_cube_decode,
)
