"""Static ``ring``: a folded chunk's origin is exact — nothing received is no chunk, and a
value that combines chunks of different origins is not one chunk (issue 10, class 7)."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static

SHARDS = dict(k=tp.Input(("n*16", 64), sharded=True), out=tp.Output(("n*16", 64)))


def _ring(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "ring")) if o.kind == "ring"]


def _statuses(kernel) -> set[str]:
    return {o.status for o in _ring(kernel)}


def _closed(*, fold: str = "received", recv_gate: bool = False, send_gate: bool = False):
    """A closed ring passing every chunk once around; ``fold`` picks what each step folds:
    ``received`` (correct), ``sum`` (the carried own chunk plus the received one; also
    ``sum_received_first``),
    ``where`` (the received chunk where it arrived, zeros elsewhere: correct),
    ``cond`` (the same through ``lax.cond``: correct).  ``recv_gate``: rank 0 receives
    nothing (and rank n-1 sends it nothing) yet folds what it "received".  ``send_gate``:
    rank 0 sends nothing while rank 1 still receives from it."""

    @tp.kernel(grid={"r": "n"}, assume=["n <= 64"], ranks=tp.Ranks("n", "ring", name="r"),
               tensors=SHARDS)
    def ring(k, out):
        r, n = tp.program_id(0), tp.num_ranks()
        x = tp.load(k, (tp.ds(r * 16, 16), slice(None)))
        acc = tp.fold(x)

        def step(s, carry):
            cur, acc = carry
            send = (r != n - 1) if recv_gate else (r != 0) if send_gate else True
            recv = (r != 0) if recv_gate else True
            cur = tp.sendrecv(cur, to=(r + 1) % n, frm=(r - 1) % n, send=send, recv=recv)
            if fold == "sum":
                return cur, acc + tp.fold(x + cur)
            if fold == "sum_received_first":
                return cur, acc + tp.fold(cur + x)
            if fold == "where":
                got = tp.fold(jnp.where(r >= 0, cur, 0.0))
                return cur, acc + got
            if fold == "cond":
                got = lax.cond(r >= 0, lambda: cur, lambda: jnp.zeros_like(cur))
                return cur, acc + tp.fold(got)
            return cur, acc + tp.fold(cur)

        _, acc = lax.fori_loop(1, n, step, (x, acc))
        tp.store(out, (tp.ds(r * 16, 16), slice(None)), acc)

    return ring


def test_a_correct_closed_ring_stays_proved():
    assert _statuses(_closed()) == {"proved"}


@pytest.mark.parametrize("fold", ["sum", "sum_received_first"])
def test_a_fold_of_a_sum_of_two_origins_is_not_one_chunk(fold):
    obs = _ring(_closed(fold=fold))
    assert "proved" not in {o.status for o in obs if "every chunk" in o.message
                            or "twice" in o.message}, [(o.status, o.message) for o in obs]
    assert any(o.status in ("unknown", "violated") for o in obs)


def test_choosing_the_received_chunk_or_nothing_keeps_its_origin():
    assert _statuses(_closed(fold="where")) == {"proved"}
    assert _statuses(_closed(fold="cond")) == {"proved"}


def test_folding_what_was_never_received_is_no_chunk():
    obs = _ring(_closed(recv_gate=True))
    bad = [o for o in obs if o.status == "violated"]
    assert any("rank 0 never folds the chunk" in o.message for o in bad), [o.message for o in obs]


def test_a_receive_whose_sender_does_not_send_is_a_violation():
    bad = [o for o in _ring(_closed(send_gate=True)) if o.status == "violated"]
    assert bad


# ------------------------------------------- fuzz findings 2 and 3 (tests/fuzz_findings.md)


def _unsent(topology: str, send, recv, frm_wraps: bool, fold_always: bool = False):
    @tp.kernel(grid={"one": 1}, ranks=tp.Ranks(size="n", topology=topology, name="r"),
               assume=["n <= 6"],
               tensors=dict(x=tp.Input(("n", 4), sharded=True), y=tp.Output(("n", 4))))
    def unsent(x, y):
        r, n = tp.rank_id(), tp.num_ranks()
        own = tp.load(x, (r, slice(None)))
        acc = tp.fold(own)

        def step(i, carry):
            cur, acc = carry
            cur = tp.sendrecv(cur, to=(r - 1) % n, frm=(r + 1) % n if frm_wraps else r + 1,
                              send=send(r, n), recv=recv(r, n))
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
