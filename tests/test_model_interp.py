"""The model's one concrete interpreter (:mod:`tileproof.model`): the pictures' run, the static
layer's confirmation and the tests' brute force are the same walk, and every data source it
reads index values from honours every declaration (a confirmation that ignored ``distinct``
once reported a false violation)."""

from __future__ import annotations

import numpy as np
import pytest

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
