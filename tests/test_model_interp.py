"""The model's one concrete interpreter (:mod:`tileproof.model`): the pictures' run, the static
layer's confirmation and the tests' brute force are the same walk, and every data source it
reads index values from honours every declaration (a confirmation that ignored ``distinct``
once reported a false violation)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof import model as M
from tileproof import shapes as S
from tileproof.lowering import lower
from tileproof.model._eval import evaluate
from tileproof.verify.static import check_static

ROWS = dict(x=tp.Input(("N", 4)), y=tp.Output(("N", 4)))


def _scatter(distinct: bool):
    """Row p of x goes to row perm[p] of y: an exact cover only when perm is a permutation."""

    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 64", "N >= 4"],
        tensors=dict(
            perm=tp.Input(("N",), "int32", values="0 <= v < N", distinct=distinct), **ROWS
        ),
    )
    def scatter(perm, x, y):
        p = tp.program_id(0)
        tp.store(y, (tp.load(perm, (p,)), slice(None)), tp.load(x, (p, slice(None))))

    return scatter


def _stored_rows(evs) -> list[int]:
    return [
        el[0]
        for ev in evs
        if isinstance(ev.node, M.Access) and ev.node.kind == "store"
        for el in M.touched(ev.node, ev.env)
    ][::4]


def test_events_honour_distinct_even_against_clashing_proposals():
    model = lower(_scatter(True))
    (sym,) = model.data
    clash = {("perm", (p,)): 0 for p in range(8)}  # a counterexample proposing 0 everywhere
    for kw in ({}, {"data": {sym: 0}}, {"cells": clash}):
        rows = _stored_rows(M.events(model, {"N": 8}, **kw))
        assert sorted(rows) == list(range(8)), (kw, rows)


def test_events_take_admissible_proposals_where_no_declaration_forbids_them():
    model = lower(_scatter(False))
    (sym,) = model.data
    assert _stored_rows(M.events(model, {"N": 8}, data={sym: 5})) == [5] * 8
    assert _stored_rows(M.events(model, {"N": 8}, data={sym: 99})) == [0] * 8  # out of range


def test_pictures_and_confirmation_see_the_same_run_on_the_same_data():
    """``run`` (pictures, int64, whole tables) and ``events`` (confirmation, Python ints, lazy
    oracle) are one walk: on the same index values they touch the same elements."""
    model = lower(_scatter(True))
    sched = M.run(model, {"N": 8}, seed=3)
    perm = sched.data["perm"]
    assert sorted(perm.tolist()) == list(range(8))  # the sampled table honours distinct
    cells = {("perm", (p,)): int(v) for p, v in enumerate(perm)}
    counts, outside = sched.writes("y")
    assert outside == 0 and counts.tolist() == [[1] * 4] * 8
    assert _stored_rows(M.events(model, {"N": 8}, cells=cells)) == perm.tolist()


@pytest.mark.parametrize("distinct", [True, False])
def test_the_static_verdict_follows_the_declaration(distinct):
    """Through a permutation nothing is written twice (proved) and no row is reported
    unwritten (its confirmation runs on distinct values); through a table that may repeat,
    both are refuted."""
    got = {
        ("twice" in o.message): o.status
        for o in check_static(lower(_scatter(distinct)), kinds=("shape", "coverage"))
        if o.kind == "coverage"
    }
    if distinct:
        assert got[True] == "proved" and got[False] != "violated", got
    else:
        assert got == {True: "violated", False: "violated"}, got


def test_events_are_exact_beyond_int64():
    """Confirmation runs on Python ints: an index past 2**63 is the true value, not a wrap."""
    big = S.sym("p") * 2**62 + S.sym("N") * S.sym("N")
    acc = M.Access("store", "y", (M.Dim(big, 1, True),), None, None)
    model = M.Model("k", "k.py", ["N"], [], [("p", S.sym("N"))], {}, [acc])
    evs = M.events(model, {"N": 3})
    assert [next(M.touched(ev.node, ev.env)) for ev in evs] == [(p * 2**62 + 9,) for p in range(3)]
    n = np.array([2**40, -(2**40)], dtype=object)
    assert evaluate(S.sym("n") * S.sym("n") // 3, {"n": n}).tolist() == [2**80 // 3] * 2
    assert evaluate(S.cdiv(S.sym("n") * S.sym("n"), 7), {"n": 2**40}) == -(-(2**80) // 7)


def test_program_order_and_phases_of_events():
    """Events come per program in program order (``seq``), with grid barriers counted."""
    i = S.sym("i")
    st = M.Access("store", "y", (M.Dim(i, 1, True),), None, None)
    bar = M.Barrier("grid", None)
    ld = M.Access("load", "y", (M.Dim(i, 1, True),), None, None)
    loop = M.Loop("i", S.as_expr(0), S.as_expr(2), [st, bar, ld], None)
    model = M.Model("k", "k.py", ["N"], [], [("p", S.sym("N"))], {}, [loop])
    got = [
        (e.program[0], e.seq, type(e.node).__name__, e.env["i"], e.phase)
        for e in M.events(model, {"N": 2})
    ]
    assert got == [
        (p, 3 * k + j, name, k, k + (j == 2))
        for p in range(2)
        for k in range(2)
        for j, name in enumerate(("Access", "Barrier", "Access"))
    ]


# ------------------------------------------- pictures compute in int64: refuse, never wrap


def _far_store(offset):
    """Program p of 5 stores one element at ``offset(p, S)`` of an 8-element output."""

    @tp.kernel(grid={"p": 5, "q": 2}, assume=["S <= 2**62"], tensors=dict(y=tp.Output(("8",))))
    def far_store(y):
        p, q, s = tp.program_id(0), tp.program_id(1), tp.size("S")
        tp.store(y, (tp.ds(offset(p, q, s), 1),), jnp.zeros((1,)))

    return far_store


WIDE = [  # each reaches 2**62 at S = 2**62 (the product wraps: p = 4 lands on element 0)
    ("product", lambda p, q, s: p * s),
    ("sum of rows", lambda p, q, s: p * (s // 8) + q * (s // 4) + s // 4),
    ("square", lambda p, q, s: (p + s // 65536) * (p + s // 65536) * 4),
    ("a size expression", lambda p, q, s: s * 2 - s // 2 + p),
]


@pytest.mark.parametrize("offset", [w[1] for w in WIDE], ids=[w[0] for w in WIDE])
def test_a_picture_past_int64_is_refused_and_names_the_line(offset):
    model = lower(_far_store(offset))
    with pytest.raises(M.RunError, match=r"test_model_interp\.py:\d+: error: .* reaches 2\*\*62"):
        M.run(model, {"S": 2**62})


@pytest.mark.parametrize("offset", [w[1] for w in WIDE], ids=[w[0] for w in WIDE])
def test_the_same_stores_below_the_limit_are_drawn_exactly(offset):
    """The twin: at S = 2**40 the elements are the exact offsets, out of bounds where they are."""
    model = lower(_far_store(offset))
    s = 2**40
    sched = M.run(model, {"S": s})
    want = sorted(offset(p, q, s) for p in range(5) for q in range(2))
    (ev,) = [a for a in sched.accesses if a.node.tensor == "y"]
    assert sorted(ev.element[0].tolist()) == want
    assert ev.in_bounds.tolist() == [0 <= e < 8 for e in ev.element[0].tolist()]
    assert sched.writes("y")[1] == sum(not 0 <= e < 8 for e in want)


def test_loop_bounds_past_int64_are_refused():
    @tp.kernel(grid={"p": 2}, assume=["S <= 2**62"], tensors=dict(y=tp.Output(("8",))))
    def long_loop(y):
        p, s = tp.program_id(0), tp.size("S")

        def body(i, c):
            tp.store(y, (tp.ds(0, 1),), jnp.zeros((1,)))
            return c

        lax.fori_loop(p * s * 4, p * s * 4 + 1, body, 0)

    model = lower(long_loop)
    with pytest.raises(M.RunError, match="reaches 2\\*\\*62"):
        M.run(model, {"S": 2**62})
    assert M.run(model, {"S": 2**40}).writes("y")[0].tolist()[0] == 2
