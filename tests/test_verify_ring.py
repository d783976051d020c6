"""Static ``ring``: every rank folds every chunk once, sends meet receives, no edge is crossed."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from specs.kernels import closed_ring

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _ring_obs(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "ring")) if o.kind == "ring"]


def _bad(obs):
    return [o for o in obs if o.status != "proved"]


def _mesh(*, short=False, guard_edges=True, gate=False):
    """An open bidirectional mesh: the chunk of rank i reaches rank j at step |i - j|."""

    grid = {"pe": 4} if gate else {"prog": 1}
    tensors = dict(k=tp.Input(("n", 16, 64), sharded=True), out=tp.Output(("n", 16, 64)))

    @tp.kernel(
        grid=grid, assume=["n <= 64"], ranks=tp.Ranks("n", "mesh", name="r"), tensors=tensors
    )
    def mesh(k, out):
        if gate:  # the defect: gating on the rank instead of the element id
            tp.exit_if(tp.rank_id() != 0)
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(k, (r, slice(None), slice(None)))
        acc = tp.fold(own)

        def step(i, carry):
            east, west, acc = carry
            from_w = (r - 1 >= 0) & (r - i >= 0)
            from_e = (r + 1 < n) & (r + i < n)
            send_e = (r + 1 < n) & (r - i + 1 >= 0) if guard_edges else (r - i + 1 >= 0)
            east = tp.sendrecv(east, to=r + 1, frm=r - 1, send=send_e, recv=from_w)
            west = tp.sendrecv(
                west, to=r - 1, frm=r + 1, send=(r - 1 >= 0) & (r + i - 1 < n), recv=from_e
            )
            acc = acc + jnp.where(from_w, tp.fold(east, when=from_w), 0.0)
            acc = acc + jnp.where(from_e, tp.fold(west, when=from_e), 0.0)
            return east, west, acc

        steps = n - 2 if short else n - 1
        _, _, acc = lax.fori_loop(1, 1 + steps, step, (own, own, acc))
        tp.store(out, (r, slice(None), slice(None)), acc)

    return mesh


def test_closed_ring_is_proved_for_every_rank_count():
    obs = _ring_obs(closed_ring())
    assert obs and not _bad(obs), [(o.message, o.reason) for o in _bad(obs)]
    assert any("folds every chunk" in o.message for o in obs)


def test_closed_ring_a_step_short_misses_a_chunk():
    obs = _ring_obs(closed_ring(steps_short=1))
    (miss,) = [o for o in obs if "never folds" in o.message]
    assert miss.status == "violated"
    cx = miss.counterexample
    n, r, c = cx["n"], cx["r"], cx["chunk"]
    # with n - 2 steps rank r folds chunks (r - s) mod n for s in [0, n - 2]
    assert c not in {(r - s) % n for s in range(n - 1)}


def test_open_mesh_is_proved_for_every_rank_count():
    obs = _ring_obs(_mesh())
    assert obs and not _bad(obs), [(o.message, o.reason) for o in _bad(obs)]
    assert any("stay on the open mesh" in o.message for o in obs)


def test_open_mesh_a_step_short_never_meets_the_far_end():
    obs = _ring_obs(_mesh(short=True))
    (miss,) = [o for o in obs if "never folds" in o.message]
    cx = miss.counterexample
    assert abs(cx["r"] - cx["chunk"]) == cx["n"] - 1  # the far ends


def test_open_mesh_send_off_the_edge():
    obs = _ring_obs(_mesh(guard_edges=False))
    (edge,) = [o for o in obs if o.status == "violated" and "past the open edge" in o.message]
    cx = edge.counterexample
    assert cx["peer"] == cx["n"] and cx["r"] == cx["n"] - 1  # the last rank sends east


def test_gated_rank_is_nobodys_partner():
    obs = _ring_obs(_mesh(gate=True))
    bad = [o for o in obs if o.status == "violated"]
    left = [o for o in bad if "left early" in o.message]
    # the gated rank sends nothing, so what its partner folds from it is poison too
    assert left and all(
        "left early" in o.message or "never folds" in o.message or "poison" in o.message
        for o in bad
    ), [o.message for o in bad]
    cx = left[0].counterexample
    assert cx["r"] == 0 and cx["partner"] == 1


# --------------------------------------- ring steps inside lanes: lane l meets lane l


def _in_lanes(gate: str | None):
    """A closed ring run by both lanes of every rank (each lane its own accumulator and rows).

    The exchange pairs lane l of one rank with lane l of the other (the executor vmaps the
    lanes around it).  ``gate="send"``: lane 1 never sends, yet every lane receives;
    ``gate="recv"``: lane 1 never receives, yet every lane sends."""

    @tp.kernel(
        grid={"r": "n"},
        assume=["n <= 64"],
        ranks=tp.Ranks("n", "ring", name="r"),
        tensors=dict(k=tp.Input(("n*16", 64), sharded=True), out=tp.Output(("n*32", 64))),
    )
    def ring(k, out):
        r, n = tp.program_id(0), tp.num_ranks()
        with tp.lanes(2) as lane:
            x = tp.load(k, (tp.ds(r * 16, 16), slice(None)))
            acc = tp.fold(x, when=lane == 0)

            def step(s, carry):
                cur, acc = carry
                cur = tp.sendrecv(
                    cur,
                    to=(r + 1) % n,
                    frm=(r - 1) % n,
                    send=lane == 0 if gate == "send" else True,
                    recv=lane == 0 if gate == "recv" else True,
                )
                return cur, acc + tp.fold(cur, when=lane == 0)

            _, acc = lax.fori_loop(1, n, step, (x, acc))
            tp.store(out, (tp.ds(r * 32 + lane * 16, 16), slice(None)), acc)

    return ring


def test_a_ring_inside_lanes_matches_each_lane_with_the_same_lane():
    """The partner is the same lane of the other rank: it exists and it receives (a free
    partner lane was read out of range: "rank 1 does not exist" at n = 2)."""
    obs = _ring_obs(_in_lanes(None))
    assert any("matching receive" in o.message for o in obs)
    assert not _bad(obs), [(o.status, o.message) for o in _bad(obs)]


def test_a_lane_that_does_not_send_leaves_its_receiver_unmatched():
    obs = _ring_obs(_in_lanes("send"))
    assert [o.message.split(" at ")[0] for o in _bad(obs)] == ["rank 0 expects a chunk from rank 1"]
    assert "does not send there" in _bad(obs)[0].message
    assert _bad(obs)[0].status == "violated"


def test_a_lane_that_does_not_receive_leaves_its_sender_unmatched():
    obs = _ring_obs(_in_lanes("recv"))
    assert [o.message.split(" at ")[0] for o in _bad(obs)] == ["rank 0 sends to rank 1"]
    assert "does not receive there" in _bad(obs)[0].message
    assert _bad(obs)[0].status == "violated"
