"""Small kernels that several test files and ``benchmarks/verify_time.py`` share: one
definition each (the tests prove or refute them; the benchmark times the same proofs)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp

# a ring's shards: rank r holds rows [16*r, 16*r + 16) of k and writes the same rows of out
SHARDS = dict(k=tp.Input(("n*16", 64), sharded=True), out=tp.Output(("n*16", 64)))


def paged(pages_max: str = "2**16"):
    """Paged attention's access pattern: a 16-head query tile per program, pages of 128
    rows named by a block table, the last page masked by the sequence length."""

    @tp.kernel(
        grid={"b": "B", "qt": "cdiv(H, 16)"},
        assume=["H % 16 == 0", "B <= 256", "H <= 128", f"P <= {pages_max}", "M <= 64"],
        tensors=dict(
            q=tp.Input(("B*H", 128)),
            k_cache=tp.Input(("P*128", 128)),
            block_table=tp.Input(("B", "M"), "int32", values="0 <= v < P"),
            seq_lens=tp.Input(("B",), "int32", values="1 <= v <= M*128"),
            out=tp.Output(("B*H", 128)),
        ),
    )
    def paged(q, k_cache, block_table, seq_lens, out):
        b, qt, H = tp.program_id(0), tp.program_id(1), tp.size("H")
        rows = tp.ds(b * H + qt * 16, 16)
        qtile = tp.load(q, (rows, slice(None)))
        seq = tp.load(seq_lens, (b,))

        def body(j, acc):
            page = tp.load(block_table, (b, j))
            valid = jnp.minimum(128, seq - j * 128)
            k = tp.load(
                k_cache,
                (tp.ds(page * 128, 128), slice(None)),
                mask=jnp.arange(128)[:, None] < valid,
            )
            return acc + jnp.sum(qtile @ k.T, axis=1, keepdims=True) * qtile

        acc = lax.fori_loop(0, (seq + 127) // 128, body, jnp.zeros((16, 128)))
        tp.store(out, (rows, slice(None)), acc)

    return paged


def tiles(grid: str = "cdiv(N, 64)", limit: str = "2**20"):
    """y = x in tiles of 64, the tail masked; ``grid="N // 64"`` drops the tail."""

    @tp.kernel(
        grid={"p": grid},
        assume=[f"N <= {limit}"],
        tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    )
    def tiles(x, y):
        p, n = tp.program_id(0), tp.size("N")
        mask = (p * 64 + jnp.arange(64)) < n
        tp.store(y, (tp.ds(p * 64, 64),), tp.load(x, (tp.ds(p * 64, 64),), mask=mask), mask=mask)

    return tiles


def closed_ring(
    steps_short: int = 0,
    *,
    fold: str = "received",
    recv_gate: bool = False,
    send_gate: bool = False,
):
    """A closed ring: at step s rank r holds the chunk of rank (r - s) mod n and folds it;
    ``steps_short`` steps fewer than n - 1 miss chunks.  ``fold`` picks what each step
    folds: ``received`` (correct), ``sum`` (the carried own chunk plus the received one;
    also ``sum_received_first``), ``where`` (the received chunk where it arrived, zeros
    elsewhere: correct), ``cond`` (the same through ``lax.cond``: correct).  ``recv_gate``:
    rank 0 receives nothing (and rank n-1 sends it nothing) yet folds what it "received".
    ``send_gate``: rank 0 sends nothing while rank 1 still receives from it."""

    @tp.kernel(
        grid={"r": "n"}, assume=["n <= 64"], ranks=tp.Ranks("n", "ring", name="r"), tensors=SHARDS
    )
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

        _, acc = lax.fori_loop(1, n - steps_short, step, (x, acc))
        tp.store(out, (tp.ds(r * 16, 16), slice(None)), acc)

    return ring
