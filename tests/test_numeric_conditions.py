"""Numeric points chosen from the model's conditions, and the conditions a run covered."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.numeric import check_numeric
from tileproof.verify.numeric._conditions import condition_points, conditions, covered
from tileproof.verify.numeric._inputs import draw_inputs
from tileproof.verify.numeric._sizes import choose_sizes
from tileproof.verify.static._context import Analysis


def _rare_reference(x, code):
    return {"y": jnp.where(code[:, None] == 37, 2.0 * x, x)}


@tp.kernel(
    grid={"p": "cdiv(N, 8)", "r": 8},
    assume=["N <= 64"],
    defaults={"N": 16},
    tensors=dict(
        x=tp.Input(("N", 4)),
        code=tp.Input(("N",), "int32", values="0 <= v < 1000"),
        y=tp.Output(("N", 4)),
    ),
    reference=_rare_reference,
)
def rare(x, code, y):
    """Rows whose code is exactly 37 are doubled: random codes (0..999) almost never hit it."""
    row = tp.program_id(0) * 8 + tp.program_id(1)

    @tp.when(row < tp.size("N"))
    def _():
        c = tp.load(code, (row,))
        v = tp.load(x, (row, tp.ds(0, 4)))

        @tp.when(c == 37)
        def _():
            tp.store(y, (row, tp.ds(0, 4)), 2.0 * v)

        @tp.when(c != 37)
        def _():
            tp.store(y, (row, tp.ds(0, 4)), v)


def _rare_conds():
    an = Analysis(lower(rare))
    return an, conditions(an)


def test_conditions_name_their_source_line_and_text():
    _an, conds = _rare_conds()
    texts = [c.text for c in conds]
    assert any("== 37" in t for t in texts) and any("< N" in t for t in texts)
    assert all(c.site.loc.line > 0 and c.location.endswith(str(c.site.loc.line)) for c in conds)


def test_points_from_the_model_make_a_rare_condition_true_and_false():
    an, conds = _rare_conds()
    eq37 = [c for c in conds if "== 37" in c.text]
    got = condition_points(rare, lower(rare), [{"N": 16}], limit=3)
    assert got, "the solver finds a point where some code is 37"
    sides = set()
    for sizes, pins in got:
        assert any(v == 37 for v in pins.values()), pins
        seen = covered(an, conds, sizes, pins=pins)
        for c in eq37:
            sides |= seen[c.index]
    assert {"true"} <= sides


def test_pins_reach_the_inputs_and_stay_in_range():
    rng = np.random.default_rng(0)
    inp = draw_inputs(rare, {"N": 16}, rng, 0, pins={("code", (3,)): 37, ("code", (4,)): 5000})
    assert inp["code"][3] == 37
    assert inp["code"][4] != 5000  # outside the declared range: not pinned


def test_choose_sizes_hands_out_the_pins_of_condition_points():
    pins: dict = {}
    pts = choose_sizes(rare, pins=pins, budget=3)
    assert pts and pins
    assert all(key in {tuple(sorted(p.items())) for p in pts} for key in pins)
    # a counterexample's index values are pinned too
    pins2: dict = {}
    choose_sizes(rare, extra=[{"N": 9, "code[2]": 37}], pins=pins2, budget=1, condition_points=0)
    assert pins2 == {(("N", 9),): {("code", (2,)): 37}}


def test_numeric_report_lists_the_conditions_and_their_sides():
    res = check_numeric(rare, budget=2, gradients=False)
    assert res.status == "matched", res.message
    js = res.to_json()
    assert {"status", "sizes", "max_abs_err", "max_rel_err", "gradients"} <= set(js)
    rows = js["conditions"]
    assert rows and all(
        {"location", "condition", "true", "false", "boundary"} <= set(r) for r in rows
    )
    eq37 = [r for r in rows if "== 37" in r["condition"]]
    assert eq37 and all(r["true"] and r["false"] for r in eq37), eq37


def test_sides_no_admissible_point_reaches_are_told_apart():
    from jax import lax

    from tileproof.verify.numeric._conditions import impossible_sides

    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 8", "K <= 64"],
        tensors=dict(x=tp.Input(("P", "K")), y=tp.Output(("P",))),
    )
    def rows(x, y):
        p = tp.program_id(0)
        s = lax.fori_loop(0, tp.size("K"), lambda k, a: a + tp.load(x, (p, k)), jnp.float32(0))
        tp.store(y, (p,), s)

    an = Analysis(lower(rows))
    (loop,) = [c for c in conditions(an) if c.kind == "loop"]
    # K >= 1: the loop always runs (false is impossible), and K == 1 is its boundary
    assert impossible_sides(an, loop, ["true", "false", "boundary"]) == ["false"]


def _sum_rows(x):
    return {"y": x.sum(axis=1)}


@tp.kernel(
    grid={"p": "P"},
    assume=["P <= 8", "K <= 16"],
    defaults={"P": 2, "K": 3},
    tensors=dict(x=tp.Input(("P", "K")), y=tp.Output(("P",))),
    reference=_sum_rows,
)
def sum_rows(x, y):
    """``fori_loop(0, K)`` with ``K >= 1`` always runs; ``fori_loop(1, K)`` may not (K = 1)."""
    from jax import lax

    p = tp.program_id(0)
    first = tp.load(x, (p, 0))
    tp.store(y, (p,), lax.fori_loop(1, tp.size("K"), lambda k, a: a + tp.load(x, (p, k)), first))
    total = lax.fori_loop(0, tp.size("K"), lambda k, a: a + tp.load(x, (p, k)), jnp.float32(0))
    tp.store(y, (p,), total)


def test_an_unreachable_side_is_reported_unreachable_not_uncovered():
    res = check_numeric(sum_rows, budget=2, gradients=False)
    assert res.status == "matched", res.message
    rows = {r["condition"]: r for r in res.to_json()["conditions"] if r["kind"] == "loop"}
    always = rows["loop i runs: 0 < K"]
    assert always["true"] is True and always["false"] == "unreachable"
    assert always["boundary"] is True and always["impossible"] == ["false"]  # K == 1 is run
    # the twin: 1 < K is false at K = 1, a side a run reaches (and this one did)
    maybe = rows["loop i runs: 1 < K"]
    assert maybe["false"] is True and "impossible" not in maybe


def test_a_side_the_solver_cannot_decide_stays_uncovered():
    """Fail closed: only a proof makes a side unreachable; unknown and refuted leave it a gap."""
    from tileproof.verify.numeric._conditions import impossible_sides
    from tileproof.verify.static._decide import Answer

    an = Analysis(lower(sum_rows))
    loops = [c for c in conditions(an) if c.kind == "loop"]
    assert loops
    for status in ("unknown", "refuted"):
        an.decide = lambda q, a, status=status: Answer(status)
        for c in loops:
            assert impossible_sides(an, c, ["true", "false", "boundary"]) == []
            row = c.describe({"true"}, impossible_sides(an, c, ["false", "boundary"]))
            assert row["false"] is False and row["boundary"] is False and "impossible" not in row
    assert loops[0].describe(None)["false"] is None  # a run too large to replay: unknown
