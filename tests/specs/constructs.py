"""Small kernels, one per construct, whose lowered listings the tests pin down."""

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp


@tp.kernel(
    grid={"i": "cdiv(N, 64)"},
    assume=["N <= 2**20"],
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
)
def masked_copy(x, y):
    i = tp.program_id(0)
    n = tp.size("N")
    mask = i * 64 + jnp.arange(64) < n
    tile = tp.load(x, (tp.ds(i * 64, 64),), mask=mask)
    tp.store(y, (tp.ds(i * 64, 64),), tile * 2, mask=mask)


@tp.kernel(
    grid={"b": "B"},
    assume=["B <= 64", "K <= 16"],
    tensors=dict(
        x=tp.Input(("B", "K*32", 32)),
        o=tp.Output(("B", 32)),
    ),
)
def row_sum(x, o):
    b = tp.program_id(0)
    k = tp.size("K")

    def body(j, acc):
        return acc + tp.load(x, (b, tp.ds(j * 32, 32), slice(None))).sum(axis=0)

    acc = lax.fori_loop(0, k, body, jnp.zeros((32,)))
    acc2 = lax.fori_loop(0, 4, lambda j, a: a + 1.0, acc)
    tp.store(o, (b, slice(None)), acc2)


@tp.kernel(
    grid={"p": 4},
    tensors=dict(s=tp.Scratch((4, 16)), o=tp.Output((4, 16))),
)
def two_phases(s, o):
    p = tp.program_id(0)

    @tp.when(p == 0)
    def _():
        tp.store(s, (tp.ds(0, 4), slice(None)), jnp.ones((4, 16)))

    tp.barrier()
    tp.store(o, (p, slice(None)), tp.load(s, (p, slice(None))))


@tp.kernel(
    grid={"c": 2},
    tensors=dict(x=tp.Input((4, 16, 8)), o=tp.Output((4, 16, 8))),
)
def lanes_kernel(x, o):
    c = tp.program_id(0)
    with tp.lanes(2) as lane:
        w = 2 * c + lane
        tp.store(o, (w, slice(None), slice(None)), tp.load(x, (w, slice(None), slice(None))))
    tile = tp.load(x, (c, slice(None), slice(None)))
    with tp.lanes(2, halve=0) as lane:
        part = tp.lane_part(tile, axis=0)
        tp.store(o, (c + 2, tp.ds(lane * 8, 8), slice(None)), part)


@tp.kernel(
    grid={"e": 8},
    tensors=dict(x=tp.Input((8, 4)), o=tp.Output((8, 4))),
)
def early_exit(x, o):
    e = tp.program_id(0)
    tp.exit_if(e % 2 != 0)
    tp.store(o, (e, slice(None)), tp.load(x, (e, slice(None))))


@tp.kernel(
    grid={"one": 1},
    ranks=tp.Ranks(size="n", topology="mesh"),
    assume=["n <= 64"],
    tensors=dict(k=tp.Input(("n", 8), sharded=True), o=tp.Output(("n", 8))),
)
def ring_east(k, o):
    r, n = tp.rank_id(), tp.num_ranks()
    chunk = tp.load(k, (r, slice(None)))
    acc = tp.fold(chunk)

    def step(s, carry):
        east, acc = carry
        east = tp.sendrecv(east, to=r + 1, frm=r - 1, send=r + 1 < n, recv=r - 1 >= 0)
        acc = acc + tp.fold(east, when=r - s >= 0)
        return east, acc

    _, acc = lax.fori_loop(1, n, step, (chunk, acc))
    tp.store(o, (r, slice(None)), acc)


@tp.kernel(
    grid={"b": "B"},
    assume=["B <= 8", "P <= 1024"],
    tensors=dict(
        table=tp.Input(("B",), "int32", values="0 <= v < P"),
        pages=tp.Input(("P*16", 8)),
        o=tp.Output(("B*16", 8)),
    ),
)
def gather_page(table, pages, o):
    b = tp.program_id(0)
    page = tp.load(table, (b,))
    tp.store(
        o, (tp.ds(b * 16, 16), slice(None)), tp.load(pages, (tp.ds(page * 16, 16), slice(None)))
    )


@tp.kernel(
    grid={"b": "B"},
    tensors=dict(x=tp.Input(("B", 8)), o=tp.Output(("B", 8))),
)
def float_index(x, o):
    b = tp.program_id(0)
    t = tp.load(x, (b, slice(None)))
    j = jnp.argmax(t).astype(jnp.int32)
    tp.store(o, (j % 1 + b, slice(None)), t)
