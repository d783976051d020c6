"""Static ``split``: halved tiles divide evenly across lanes; no reduction over a split axis."""

from __future__ import annotations

import jax.numpy as jnp

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _split(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape", "split")) if o.kind == "split"]


def _halve(rows: int, reduce_split_axis: bool = False):
    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 64"],
        tensors=dict(x=tp.Input(("P*16", 128)), y=tp.Output(("P*16", 128))),
    )
    def halve(x, y):
        p = tp.program_id(0)
        t = tp.load(x, (tp.ds(p * 16, rows), slice(None)))
        with tp.lanes(2, halve=0) as lane:
            part = tp.lane_part(t, axis=0)
            if reduce_split_axis:  # a column sum over the halved rows sees half of them
                part = part + jnp.sum(part, axis=0, keepdims=True)
            half = rows // 2
            tp.store(y, (tp.ds(p * 16 + lane * half, half), slice(None)), part)

    return halve


def test_even_split_is_proved():
    obs = _split(_halve(16))
    assert [o.status for o in obs] == ["proved", "proved"]  # lane_part, the store of 8 rows
    assert "[16, 128] tile" in obs[0].message


def test_five_rows_cannot_be_halved():
    obs = [o for o in _split(_halve(5)) if o.message.startswith("lane_part")]
    assert [o.status for o in obs] == ["violated"]
    assert "5 is not divisible by 2" in obs[0].message
    cx = obs[0].counterexample
    assert cx["extent"] % cx["lanes"] != 0
    assert obs[0].location.line > 0


def test_reduction_over_the_split_axis_is_refuted():
    obs = _split(_halve(16, reduce_split_axis=True))
    red = [o for o in obs if "reduce" in o.message]
    assert red and red[0].status == "violated"
    assert "split across lanes" in red[0].message
