"""An output is read only where it was written before (issue 10, class 10).

Outputs start undefined like scratch: a kernel that accumulates into an output it never
initialised reads garbage.  A tensor the kernel reads back before writing must be declared
an ``updated`` input (written in place), whose loads read its initial values.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _reads(kernel) -> list:
    return [
        o
        for o in check_static(lower(kernel), kinds=("shape", "coverage"))
        if o.kind == "coverage"
        and (o.message.startswith("load") or "never written before" in o.message)
    ]


def _accumulate(*, init: bool, updated: bool = False):
    """y[p] += x[p] over M rounds; ``init``: the first round writes instead of adding."""
    y = tp.Input(("P*8",), updated=True) if updated else tp.Output(("P*8",))

    @tp.kernel(
        grid={"p": "P"}, assume=["P <= 4096", "M <= 64"], tensors=dict(x=tp.Input(("P*8",)), y=y)
    )
    def accumulate(x, y):
        p, M = tp.program_id(0), tp.size("M")
        tile = tp.ds(p * 8, 8)
        start = 0
        if init:
            tp.store(y, (tile,), tp.load(x, (tile,)))
            start = 1

        def round_(j, c):
            tp.store(y, (tile,), tp.load(y, (tile,)) + tp.load(x, (tile,)))
            return c

        lax.fori_loop(start, M, round_, 0)

    return accumulate


def _halves(*, swapped: bool):
    """The second half of y is computed from the first; ``swapped``: read before writing."""

    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 4096"],
        tensors=dict(x=tp.Input(("P*8",)), y=tp.Output(("P*16",))),
    )
    def halves(x, y):
        p = tp.program_id(0)
        first, second = tp.ds(p * 16, 8), tp.ds(p * 16 + 8, 8)
        if swapped:
            tp.store(y, (second,), tp.load(y, (first,)) * 2.0)
            tp.store(y, (first,), tp.load(x, (tp.ds(p * 8, 8),)))
        else:
            tp.store(y, (first,), tp.load(x, (tp.ds(p * 8, 8),)))
            tp.store(y, (second,), tp.load(y, (first,)) * jnp.float32(2))

    return halves


def test_accumulating_into_an_uninitialised_output_is_a_violation():
    obs = _reads(_accumulate(init=False))
    assert obs and obs[0].status == "violated", [(o.status, o.message) for o in obs]
    assert "never written before" in obs[0].message


def test_an_updated_input_may_be_read_before_it_is_written():
    assert _reads(_accumulate(init=False, updated=True)) == []


def test_reading_back_what_the_program_wrote_is_proved():
    obs = _reads(_halves(swapped=False))
    assert obs and {o.status for o in obs} == {"proved"}, [(o.status, o.reason) for o in obs]


def test_reading_an_output_before_writing_it_is_a_violation():
    obs = _reads(_halves(swapped=True))
    assert [o.status for o in obs] == ["violated"], [(o.status, o.message) for o in obs]
