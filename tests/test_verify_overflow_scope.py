"""``overflow`` covers arithmetic on the way to an index, offset, size or condition only
(issue 10, class 13): an int32 sum of data stored back is the kernel's arithmetic, not an
offset, and gets no obligation; the same sum used as an index (directly, in a mask, a loop
bound, or stored into an integer tensor the kernel reads back) keeps it."""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _kernel(use: str):
    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 4096"],
        tensors=dict(
            a=tp.Input(("P*8",), "int32"),
            t=tp.Input(("P*8 + 8",)),
            y=tp.Output(("P*8",), "int32"),
            z=tp.Output(("P*8",)),
            w=tp.Scratch(("P*8",), "int32"),
        ),
    )
    def kernel(a, t, y, z, w):
        p = tp.program_id(0)
        tile = tp.ds(p * 8, 8)
        v = tp.load(a, (tile,))
        tp.store(y, (tile,), v + v * 3)  # data: may wrap, reaches no index
        j = tp.load(a, (p * 8,))
        s = j * 4 + 1
        if use == "index":
            tp.store(z, (tile,), tp.load(t, (tp.ds(s, 8),)))
        elif use == "mask":
            tp.store(z, (tile,), tp.load(t, (tile,), mask=jnp.arange(8) < s))
        elif use == "bound":
            lax.fori_loop(0, s, lambda i, c: c, 0)
            tp.store(z, (tile,), tp.load(t, (tile,)))
        elif use == "stored_then_index":
            tp.store(w, (tp.ds(p * 8, 1),), jnp.full((1,), s, jnp.int32))
            k = tp.load(w, (p * 8,))
            tp.store(z, (tile,), tp.load(t, (tp.ds(k, 8),)))
        else:
            tp.store(z, (tile,), tp.load(t, (tile,)))

    return kernel


def _arith(kernel) -> list:
    return [
        o
        for o in check_static(lower(kernel), kinds=("shape", "overflow"))
        if o.kind == "overflow" and "arithmetic" in o.message
    ]


def test_data_arithmetic_gets_no_overflow_obligation():
    obs = _arith(_kernel("data"))
    assert all("a[" not in o.message for o in obs), [(o.status, o.message) for o in obs]
    assert {o.status for o in obs} == {"proved"}


@pytest.mark.parametrize("use", ["index", "mask", "bound", "stored_then_index"])
def test_arithmetic_that_reaches_an_index_keeps_its_obligation(use):
    obs = _arith(_kernel(use))
    bad = [o for o in obs if o.status == "violated"]
    assert any("4*a[" in o.message for o in bad), [(o.status, o.message) for o in obs]
