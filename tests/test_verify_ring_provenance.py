"""Static ``ring``: a folded chunk's origin is exact — nothing received is no chunk, and a
value that combines chunks of different origins is not one chunk (issue 10, class 7); a
carried tile holds a chunk only where it arrived at the step before, its sender's value
included (validity across loop iterations, ``tests/fuzz_findings.md`` section 5)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax
from specs.kernels import closed_ring

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _ring(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "ring")) if o.kind == "ring"]


def _statuses(kernel) -> set[str]:
    return {o.status for o in _ring(kernel)}


def test_a_correct_closed_ring_stays_proved():
    assert _statuses(closed_ring()) == {"proved"}


@pytest.mark.parametrize("fold", ["sum", "sum_received_first"])
def test_a_fold_of_a_sum_of_two_origins_is_not_one_chunk(fold):
    obs = _ring(closed_ring(fold=fold))
    assert "proved" not in {
        o.status for o in obs if "every chunk" in o.message or "twice" in o.message
    }, [(o.status, o.message) for o in obs]
    assert any(o.status in ("unknown", "violated") for o in obs)


def test_choosing_the_received_chunk_or_nothing_keeps_its_origin():
    assert _statuses(closed_ring(fold="where")) == {"proved"}
    assert _statuses(closed_ring(fold="cond")) == {"proved"}


def test_folding_what_was_never_received_is_no_chunk():
    obs = _ring(closed_ring(recv_gate=True))
    bad = [o for o in obs if o.status == "violated"]
    assert any("rank 0 never folds the chunk" in o.message for o in bad), [o.message for o in obs]


def test_a_receive_whose_sender_does_not_send_is_a_violation():
    bad = [o for o in _ring(closed_ring(send_gate=True)) if o.status == "violated"]
    assert bad


# ------------------------------------------- fuzz findings 2 and 3 (tests/fuzz_findings.md)


def _unsent(topology: str, send, recv, frm_wraps: bool, fold_always: bool = False):
    @tp.kernel(
        grid={"one": 1},
        ranks=tp.Ranks(size="n", topology=topology, name="r"),
        assume=["n <= 6"],
        tensors=dict(x=tp.Input(("n", 4), sharded=True), y=tp.Output(("n", 4))),
    )
    def unsent(x, y):
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(x, (r, slice(None)))
        acc = tp.fold(own)

        def step(i, carry):
            cur, acc = carry
            cur = tp.sendrecv(
                cur,
                to=(r - 1) % n,
                frm=(r + 1) % n if frm_wraps else r + 1,
                send=send(r, n),
                recv=recv(r, n),
            )
            return cur, acc + tp.fold(cur, when=True if fold_always else recv(r, n))

        _, acc = lax.fori_loop(1, n, step, (own, acc))
        tp.store(y, (r, slice(None)), acc)

    return unsent


def _ring_status(k):
    return [(o.status, o.message) for o in check_static(lower(k)) if o.kind == "ring"]


def test_a_chunk_the_source_never_sends_is_not_credited():
    """Ring: rank n-1 does not send, so rank n-2 folds poison and misses chunk n-1."""
    k = _unsent("ring", lambda r, n: r < n - 1, lambda r, n: r >= 0, True)
    obs = _ring_status(k)
    assert any(s == "violated" and "never folds the chunk" in m for s, m in obs), obs
    assert any(s == "violated" and "never sent to this rank" in m for s, m in obs), obs


def test_a_fold_of_nothing_received_is_refuted_on_the_open_mesh():
    k = _unsent("mesh", lambda r, n: r > 0, lambda r, n: r < n - 1, True, fold_always=True)
    obs = _ring_status(k)
    assert any(s == "violated" and "never sent to this rank" in m for s, m in obs), obs


def test_matched_closed_ring_twin_stays_proved():
    k = _unsent("ring", lambda r, n: r >= 0, lambda r, n: r >= 0, True)
    obs = _ring_status(k)
    assert obs and all(s == "proved" for s, _ in obs), obs


# ------------------------------- validity across loop iterations (tests/fuzz_findings.md, end)
#
# A carried tile holds a chunk at step i only where it arrived at step i - 1, and what its
# sender forwarded had itself arrived the step before.  A rank that forwards (or folds) a
# carry it never received passes poison on.


def _pipe(
    topology: str, *, to, frm, send, recv, when, lo=1, hi=None, raw=False, own=True, hold=False
):
    """One carried tile moved by one ``sendrecv`` per step; ``raw``: fold the carry before
    the step (what arrived at the step before); ``hold``: a rank keeps its carry where it
    does not receive (``lax.cond`` around the step) instead of taking the received value."""

    @tp.kernel(
        grid={"one": 1},
        ranks=tp.Ranks(size="n", topology=topology, name="r"),
        assume=["n <= 6", "n >= 2"],
        tensors=dict(x=tp.Input(("n", 4), sharded=True), y=tp.Output(("n", 4))),
    )
    def pipe(x, y):
        r, n = tp.rank_id(), tp.num_ranks()
        cur = tp.load(x, (r, slice(None)))
        acc = tp.fold(cur) if own else jnp.zeros(4)

        def step(i, carry):
            cur, acc = carry
            if raw:
                acc = acc + tp.fold(cur, when=when(r, n, i))

            def move(c):
                return tp.sendrecv(
                    c, to=to(r, n), frm=frm(r, n), send=send(r, n, i), recv=recv(r, n, i)
                )

            cur = lax.cond(recv(r, n, i), move, lambda c: c, cur) if hold else move(cur)
            if not raw:
                acc = acc + tp.fold(cur, when=when(r, n, i))
            return cur, acc

        _, acc = lax.fori_loop(lo, n if hi is None else hi(n), step, (cur, acc))
        tp.store(y, (r, slice(None)), acc)

    return pipe


def _by(obs, text):
    return [(o.status, o.message, o.reason) for o in obs if text in o.message]


def _east(**kw):
    """Chunk r - i arrives from the west at step i; rank r forwards what it has."""
    return _pipe(
        "mesh",
        to=lambda r, n: r + 1,
        frm=lambda r, n: r - 1,
        send=lambda r, n, i: (r + 1 < n) & (r - i + 1 >= 0),
        recv=lambda r, n, i: (r - 1 >= 0) & (r - i >= 0),
        **kw,
    )


def test_forwarding_a_carry_that_never_arrived_is_refuted():
    """The soak's case: rank 0 never receives, yet forwards its carry at step 2, and rank 1
    folds that poison (``recv=r > 0`` alone does not make what rank 0 sent a chunk)."""
    k = _pipe(
        "mesh",
        to=lambda r, n: r + 1,
        frm=lambda r, n: (r - 1) % n,
        send=lambda r, n, i: r < n - 1,
        recv=lambda r, n, i: r > 0,
        when=lambda r, n, i: r > 0,
    )
    obs = _ring(k)
    folds = [o for o in obs if o.message.startswith("the fold at")]
    inner = [o for o in folds if o.location.line == max(x.location.line for x in folds)]
    assert inner and all(o.status == "violated" for o in inner), _by(obs, "")
    cex = inner[0].counterexample
    assert cex["r"] >= 1 and cex["n"] >= 3 and "poison" in inner[0].message, inner[0].message
    assert not [o for o in obs if "carried by the loop" in o.message and o.status == "proved"]


def test_forwarding_only_what_arrived_stays_proved():
    """The twin (the catalog's eastbound wave): the induction step and the folds are proved
    (one direction on an open mesh never brings the chunks from the east: that is refuted)."""
    obs = _ring(_east(when=lambda r, n, i: (r - 1 >= 0) & (r - i >= 0)))
    steps = _by(obs, "carried by the loop")
    assert steps and all(s == "proved" for s, _, _ in steps), steps
    assert all(s == "proved" for s, _, _ in _by(obs, "folds only chunks")), _by(obs, "")
    assert all(s == "proved" for s, _, _ in _by(obs, "twice")), _by(obs, "")


def test_folding_the_raw_carry_where_it_never_arrived_is_not_proved():
    """``fold(cur)`` before the step folds what arrived at the step before: rank 0 of this
    pipeline never receives, so from step 2 on it folds poison, and rank 1 folds the poison
    rank 0 forwarded.  The first is refuted at once; nothing about the folds is proved."""
    k = _pipe(
        "mesh",
        to=lambda r, n: r + 1,
        frm=lambda r, n: r - 1,
        lo=0,
        own=False,
        send=lambda r, n, i: r < n - 1,
        recv=lambda r, n, i: r > 0,
        when=lambda r, n, i: True,
        raw=True,
    )
    obs = _ring(k)
    assert any(s == "violated" and "poison" in m for s, m, _ in _by(obs, "fold at")), obs
    assert not [
        o
        for o in obs
        if o.status == "proved" and ("folds only" in o.message or "carried" in o.message)
    ]


def test_a_poisoned_carry_folded_one_hop_later_is_unknown_not_proved():
    """Closed ring: rank 0 never receives and never folds; it forwards its empty carry at
    step 1, and rank 1 folds it raw at step 2.  A one-step view says rank 1's carry arrived
    (rank 0 did send it); only the induction step shows it is poison: not proved."""
    k = _pipe(
        "ring",
        to=lambda r, n: (r + 1) % n,
        frm=lambda r, n: (r - 1) % n,
        lo=0,
        own=False,
        send=lambda r, n, i: r >= 0,
        recv=lambda r, n, i: r > 0,
        when=lambda r, n, i: r > 0,
        raw=True,
    )
    obs = _ring(k)
    fold = _by(obs, "folds only chunks that arrived")
    assert fold and all(s != "proved" for s, _, _ in fold), obs
    step = _by(obs, "carried by the loop")
    assert step and step[0][0] == "unknown" and "rank 1" in step[0][2], step


def test_folding_the_raw_carry_where_it_arrived_stays_proved():
    """The twin: each rank folds its carry only where it holds a chunk (r - (i - 1) >= 0)."""
    obs = _ring(
        _east(lo=1, hi=lambda n: n + 1, raw=True, own=False, when=lambda r, n, i: r - i + 1 >= 0)
    )
    assert all(s == "proved" for s, _, _ in _by(obs, "carried by the loop")), obs
    assert all(s == "proved" for s, _, _ in _by(obs, "folds only chunks")), obs
    assert all(s == "proved" for s, _, _ in _by(obs, "twice")), obs


def test_skipping_a_receive_for_one_step_poisons_the_next_forward():
    """Closed ring where rank 1 skips its receive at step 1 (and rank 0 its send): rank 1
    holds poison, forwards it at step 2, and rank 2 folds it."""
    k = _pipe(
        "ring",
        to=lambda r, n: (r + 1) % n,
        frm=lambda r, n: (r - 1) % n,
        send=lambda r, n, i: ((r + 1) % n != 1) | (i != 1),
        recv=lambda r, n, i: (r != 1) | (i != 1),
        when=lambda r, n, i: (r != 1) | (i != 1),
    )
    obs = _ring(k)
    folds = [o for o in obs if o.message.startswith("the fold at")]
    assert any(o.status == "violated" and "poison" in o.message for o in folds), obs


def test_a_receive_skipped_where_the_poison_is_never_forwarded_stays_proved():
    """The twin: rank i skips its receive at step i, and at step i + 1 it is rank i + 1
    that skips, so the poison is never taken in; every fold folds a chunk."""
    k = _pipe(
        "ring",
        to=lambda r, n: (r + 1) % n,
        frm=lambda r, n: (r - 1) % n,
        send=lambda r, n, i: (r + 1) % n != i,
        recv=lambda r, n, i: r != i,
        when=lambda r, n, i: r != i,
    )
    obs = _ring(k)
    assert all(
        o.status == "proved"
        for o in obs
        if o.message.startswith("the fold at")
        or "carried by the loop" in o.message
        or "twice" in o.message
    ), obs


def test_a_carry_kept_where_nothing_arrived_is_not_one_chunk():
    """Received, kept for a step (``lax.cond`` returns the old carry where this rank does
    not receive), then forwarded again: the carry's origin differs from step to step, so
    the fold is unsupported and nothing about it is proved (fail closed)."""
    k = _pipe(
        "ring",
        to=lambda r, n: (r + 1) % n,
        frm=lambda r, n: (r - 1) % n,
        hold=True,
        send=lambda r, n, i: (r + 1) % n != i,
        recv=lambda r, n, i: r != i,
        when=lambda r, n, i: r >= 0,
    )
    obs = _ring(k)
    assert not [
        o
        for o in obs
        if o.status == "proved" and ("every chunk" in o.message or "twice" in o.message)
    ], obs


def test_a_swap_of_two_carries_is_not_mistaken_for_a_shift():
    """``(a, b) -> (recv(b), a)``: b holds at step s what a held at s - 1, not its own
    origin; each carry's first-pass origin is tagged, so b is no shift (fold unsupported)."""

    @tp.kernel(
        grid={"one": 1},
        ranks=tp.Ranks(size="n", topology="ring", name="r"),
        assume=["n <= 6"],
        tensors=dict(x=tp.Input(("n", 4), sharded=True), y=tp.Output(("n", 4))),
    )
    def swap(x, y):
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(x, (r, slice(None)))

        def step(i, carry):
            a, b, acc = carry
            return tp.sendrecv(b, to=(r + 1) % n, frm=(r - 1) % n), a, acc + tp.fold(b)

        _, _, acc = lax.fori_loop(0, n, step, (own, own, jnp.zeros(4)))
        tp.store(y, (r, slice(None)), acc)

    obs = _ring(swap)
    assert not [
        o
        for o in obs
        if o.status == "proved" and ("every chunk" in o.message or "twice" in o.message)
    ], obs


def test_validity_carried_from_one_loop_into_the_next():
    """A first loop moves the tile one step east; a second forwards it on.  Rank 0 never
    received in the first loop, so what it forwards in the second is poison."""

    @tp.kernel(
        grid={"one": 1},
        ranks=tp.Ranks(size="n", topology="mesh", name="r"),
        assume=["n <= 6", "n >= 3"],
        tensors=dict(x=tp.Input(("n", 4), sharded=True), y=tp.Output(("n", 4))),
    )
    def two(x, y):
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(x, (r, slice(None)))

        def first(i, cur):
            return tp.sendrecv(cur, to=r + 1, frm=r - 1, send=r < n - 1, recv=r > 0)

        def second(i, carry):
            cur, acc = carry
            cur = tp.sendrecv(cur, to=r + 1, frm=r - 1, send=r < n - 1, recv=r > 0)
            return cur, acc + tp.fold(cur, when=r > 0)

        cur = lax.fori_loop(0, 1, first, own)
        _, acc = lax.fori_loop(0, 1, second, (cur, tp.fold(own)))
        tp.store(y, (r, slice(None)), acc)

    obs = _ring(two)
    assert any(s == "violated" and "poison" in m for s, m, _ in _by(obs, "fold at")), obs


def _after_exit(gate: str):
    """A closed ring after ``exit_if``: ``gate="rank"`` makes rank n - 1 leave (it sends
    nothing, yet rank 0 would receive from it); ``gate="none"`` is the twin."""

    @tp.kernel(
        grid={"one": 1},
        ranks=tp.Ranks(size="n", topology="ring", name="r"),
        assume=["n <= 6"],
        tensors=dict(x=tp.Input(("n", 4), sharded=True), y=tp.Output(("n", 4))),
    )
    def gated(x, y):
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(x, (r, slice(None)))
        tp.store(y, (r, slice(None)), own)
        tp.exit_if((r == n - 1) & (n > 1) if gate == "rank" else tp.program_id(0) != 0)
        acc = tp.fold(own)

        def step(i, carry):
            cur, acc = carry
            cur = tp.sendrecv(cur, to=(r + 1) % n, frm=(r - 1) % n)
            return cur, acc + tp.fold(cur)

        _, acc = lax.fori_loop(1, n, step, (own, acc))
        tp.store(y, (r, slice(None)), acc)

    return gated


def test_a_chunk_from_a_rank_that_has_left_is_not_credited():
    """The sender must reach the step too: a rank that left early sends nothing, so the
    fold of what its neighbour "received" is poison and its chunk is never folded."""
    obs = _ring(_after_exit("rank"))
    assert any(o.status == "violated" and "never folds the chunk" in o.message for o in obs)
    assert not [o for o in obs if o.status == "proved" and "every chunk" in o.message]


def test_an_exit_every_rank_takes_alike_keeps_the_ring_proved():
    obs = _ring(_after_exit("none"))
    assert obs and all(o.status == "proved" for o in obs), [(o.status, o.message) for o in obs]


def test_arrival_decided_by_data_read_in_the_step_failsclosed_ring():
    """Whether the tile arrives depends on a table entry the step reads: the carry's
    validity across steps has no exact model, so the fold is unsupported, never proved."""

    @tp.kernel(
        grid={"one": 1},
        ranks=tp.Ranks(size="n", topology="ring", name="r"),
        assume=["n <= 6"],
        tensors=dict(
            x=tp.Input(("n", 4), sharded=True),
            y=tp.Output(("n", 4)),
            on=tp.Input(("n",), "int32", values="0 <= v <= 1"),
        ),
    )
    def table(x, y, on):
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(x, (r, slice(None)))

        def step(i, carry):
            cur, acc = carry
            go = tp.load(on, (i,)) > 0
            cur = tp.sendrecv(cur, to=(r + 1) % n, frm=(r - 1) % n, send=go, recv=go)
            return cur, acc + tp.fold(cur)

        _, acc = lax.fori_loop(1, n, step, (own, tp.fold(own)))
        tp.store(y, (r, slice(None)), acc)

    obs = check_static(lower(table), kinds=("shape", "ring"))
    assert not [
        o
        for o in obs
        if o.kind == "ring"
        and o.status == "proved"
        and ("every chunk" in o.message or "folds only" in o.message)
    ], obs
    assert any(o.status == "unknown" and "not modelled" in o.message for o in obs), obs


def test_a_send_condition_on_the_senders_own_table_entry_failsclosed_ring():
    """``send=recv=on[r] > 0``: whether rank r - 1 sends depends on *its* entry
    ``on[r - 1]``, which renaming the rank in this rank's read ``on[r]`` would not give (a
    rank with ``on[r] = 1`` whose sender has ``on[r - 1] = 0`` folds poison): unsupported."""

    @tp.kernel(
        grid={"one": 1},
        ranks=tp.Ranks(size="n", topology="ring", name="r"),
        assume=["n <= 6"],
        tensors=dict(
            x=tp.Input(("n", 4), sharded=True),
            y=tp.Output(("n", 4)),
            on=tp.Input(("n",), "int32", values="0 <= v <= 1"),
        ),
    )
    def own_entry(x, y, on):
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(x, (r, slice(None)))
        go = tp.load(on, (r,)) > 0

        def step(i, carry):
            cur, acc = carry
            cur = tp.sendrecv(cur, to=(r + 1) % n, frm=(r - 1) % n, send=go, recv=go)
            return cur, acc + tp.fold(cur, when=go)

        _, acc = lax.fori_loop(1, n, step, (own, tp.fold(own)))
        tp.store(y, (r, slice(None)), acc)

    obs = check_static(lower(own_entry), kinds=("shape", "ring"))
    assert not [
        o
        for o in obs
        if o.kind == "ring"
        and o.status == "proved"
        and ("every chunk" in o.message or "folds only" in o.message)
    ], obs


def test_a_double_fold_seen_only_through_poison_is_not_reported():
    """Rank 0 never receives, so from step 2 on rank 1's carry is poison.  A one-step view
    has rank 1 fold its own chunk again at step n; really it folds poison there (refuted as
    such), not chunk 1 twice: with the induction step open, "twice" is not refuted."""
    k = _pipe(
        "ring",
        to=lambda r, n: (r + 1) % n,
        frm=lambda r, n: (r - 1) % n,
        lo=0,
        hi=lambda n: n + 1,
        own=False,
        send=lambda r, n, i: r >= 0,
        recv=lambda r, n, i: r != 0,
        when=lambda r, n, i: r >= 0,
        raw=True,
    )
    obs = _ring(k)
    assert [s for s, _, _ in _by(obs, "carried by the loop")] == ["unknown"], obs
    assert not [o for o in obs if o.status == "violated" and "twice" in o.message], obs
    assert any(o.status == "violated" and "poison" in o.message for o in obs), obs
