"""Static ``race``: programs of one phase never write what another writes or reads."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _race(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "race")) if o.kind == "race"]


def _tiles(stride: int):
    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 4096"],
        tensors=dict(x=tp.Input(("P*64 + 64",)), y=tp.Output(("P*64 + 64",))),
    )
    def tiles(x, y):
        p = tp.program_id(0)
        tp.store(y, (tp.ds(p * stride, 64),), tp.load(x, (tp.ds(p * stride, 64),)))

    return tiles


def _neighbour(barrier: bool):
    """Each program writes its scratch tile, then reads its neighbour's."""

    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 4096"],
        launch=tp.Launch(cores=4096, start="together"),
        tensors=dict(x=tp.Input(("P*8",)), s=tp.Scratch(("P*8",)), y=tp.Output(("P*8",))),
    )
    def neighbour(x, s, y):
        p = tp.program_id(0)
        tp.store(s, (tp.ds(p * 8, 8),), tp.load(x, (tp.ds(p * 8, 8),)))
        if barrier:
            tp.barrier("grid")
        nxt = (p + 1) % tp.num_programs(0)
        tp.store(y, (tp.ds(p * 8, 8),), tp.load(s, (tp.ds(nxt * 8, 8),)))

    return neighbour


@tp.kernel(
    grid={"b": "B", "h": "H"},
    assume=["B <= 64", "H <= 64", "M <= 128"],
    tensors=dict(y=tp.Output(("B*H*M", 16))),
)
def mixed_radix(y):
    """Rows (b*H + h)*M + j: disjoint for distinct (b, h) only through place values."""
    b, h = tp.program_id(0), tp.program_id(1)
    H, M = tp.size("H"), tp.size("M")

    def body(j, c):
        tp.store(y, (tp.ds((b * H + h) * M + j, 1), slice(None)), jnp.zeros((1, 16)))
        return c

    lax.fori_loop(0, M, body, 0)


def test_disjoint_tiles_are_race_free():
    obs = _race(_tiles(64))
    assert [o.status for o in obs] == ["proved"]


def test_overlapping_tiles_race():
    (ob,) = _race(_tiles(32))
    assert ob.status == "violated"
    cx = ob.counterexample
    p1, p2, e = cx["p"], cx["p'"], cx["element[0]"]
    assert p1 != p2 and p1 * 32 <= e < p1 * 32 + 64 and p2 * 32 <= e < p2 * 32 + 64
    assert "writes element" in ob.message and "phase 0" in ob.message


def test_reading_a_neighbours_tile_in_the_same_phase_races():
    obs = _race(_neighbour(barrier=False))
    bad = [o for o in obs if o.status == "violated"]
    assert bad and "reads it" in bad[0].message
    cx = bad[0].counterexample
    assert cx["p"] != cx["p'"]
    # p writes [8p, 8p+8); p' reads [8*((p'+1) % P), +8): the element lies in both
    e, n = cx["element[0]"], cx["P"]
    assert cx["p"] * 8 <= e < cx["p"] * 8 + 8 and ((cx["p'"] + 1) % n) * 8 <= e


def test_a_grid_barrier_separates_the_phases():
    obs = _race(_neighbour(barrier=True))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]


def test_mixed_radix_rows_are_proved_disjoint():
    obs = _race(mixed_radix)
    assert [o.status for o in obs] == ["proved"], [(o.message, o.reason) for o in obs]
