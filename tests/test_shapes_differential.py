"""tileproof.shapes against brute force on small, fully enumerable domains.

Hypothesis draws 2-3 symbols, each with a literal lower bound (or the default
``>= 1``) and an upper bound, sometimes a relation between them, and random
expressions over ``+ - * // % min max abs cdiv`` with constant (also negative)
and symbolic divisors.  Every verdict is then checked against evaluating every
point of the domain:

* ``proved``: no admissible point falsifies the query (or divides by zero);
* ``refuted``: the counterexample is admissible and falsifies the query (or
  divides by zero when the reason says so), and a falsifying point exists;
* ``inconsistent``: no point satisfies the assumptions;
* ``bounds``: exactly the brute-force minimum and maximum over the defined points.

The domains are finite, so the answer is decidable: ``unknown`` fails the test.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tileproof import shapes
from tileproof.shapes import Expr, ShapeError, sym

SYMS = ("a", "b", "c")
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _safe(fn):
    """A constructor that falls back to its first argument on a constant zero divisor."""

    def build(args):
        try:
            return fn(*args)
        except ShapeError:
            return args[0]

    return build


def exprs(names: tuple[str, ...]):
    leaf = st.one_of(st.integers(-5, 5).map(Expr.const), st.sampled_from(names).map(sym))
    const_div = st.sampled_from([-3, -2, 2, 3, 4, 16])

    def extend(kids):
        pair = st.tuples(kids, kids)
        by_const = st.tuples(kids, const_div)
        return st.one_of(
            pair.map(lambda t: t[0] + t[1]),
            pair.map(lambda t: t[0] - t[1]),
            pair.map(lambda t: t[0] * t[1]),
            by_const.map(_safe(shapes.floordiv)),
            by_const.map(_safe(shapes.mod)),
            by_const.map(_safe(shapes.cdiv)),
            pair.map(_safe(shapes.floordiv)),
            pair.map(_safe(shapes.mod)),
            pair.map(_safe(shapes.cdiv)),
            pair.map(lambda t: shapes.minimum(*t)),
            pair.map(lambda t: shapes.maximum(*t)),
            kids.map(abs),
        )

    return st.recursive(leaf, extend, max_leaves=6)


CMPS = (shapes.eq, shapes.ne, shapes.lt, shapes.le, shapes.gt, shapes.ge)


def comparisons(names):
    return st.builds(lambda op, x, y: op(x, y), st.sampled_from(CMPS), exprs(names), exprs(names))


def queries(names):
    c = comparisons(names)
    return st.one_of(
        c,
        c,
        c,
        st.tuples(c, c).map(lambda t: shapes.conj(*t)),
        st.tuples(c, c).map(lambda t: shapes.disj(*t)),
        c.map(shapes.negate),
    )


@st.composite
def domains(draw):
    """``(names, ranges, assumptions)``: every symbol bounded on both sides."""
    names = SYMS[: draw(st.integers(2, 3))]
    assume: list = []
    ranges = {}
    for s in names:
        lo = draw(st.sampled_from([None, -2, 0, 1, 2]))
        if lo is not None:
            assume.append(f"{s} >= {lo}")
        lo = 1 if lo is None else lo
        hi = lo + draw(st.integers(0, 5))
        assume.append(f"{s} <= {hi}")
        ranges[s] = range(lo, hi + 1)
    x, y = names[0], names[1]
    relation = draw(
        st.sampled_from(
            [
                None,
                None,
                f"{x} <= {y} + 1",
                f"{x} % 2 == 0",
                f"{x} + {y} >= 4",
                f"{y} == 2*{x} - 1",
                f"{x} % 3 == 1",
                f"max({x}, {y}) <= 3",
            ]
        )
    )
    if relation:
        assume.append(relation)
    if draw(st.integers(0, 4)) == 0:
        assume.append(draw(comparisons(names)))
    return names, ranges, assume


def _holds(fs, env) -> bool:
    try:
        return all(shapes.coerce_formula(f).evaluate(env) for f in fs)
    except ZeroDivisionError:
        return False


def _admissible(names, ranges, assume) -> list[dict]:
    out = []
    for vals in itertools.product(*(ranges[s] for s in names)):
        env = dict(zip(names, vals, strict=True))
        if _holds(assume, env):
            out.append(env)
    return out


def _outcome(q, env) -> str:
    try:
        return "true" if q.evaluate(env) else "false"
    except ZeroDivisionError:
        return "zero"


@settings(max_examples=220, **SETTINGS)
@given(st.data())
def test_prove_agrees_with_brute_force(data):
    names, ranges, assume = data.draw(domains())
    q = data.draw(queries(names))
    d = shapes.prove(q, assume)
    admissible = _admissible(names, ranges, assume)
    outcomes = [_outcome(q, env) for env in admissible]
    note = f"{q} under {assume}: {d}"
    assert d.verdict != "unknown", note
    if not admissible:
        assert d.verdict == "inconsistent", note
    elif all(o == "true" for o in outcomes):
        assert d.verdict == "proved", note
    else:
        assert d.verdict == "refuted", note
        env = d.counterexample
        assert _holds(assume, env), note
        want = "zero" if d.reason.startswith("division by zero") else "false"
        assert _outcome(q, {**{s: 1 for s in names}, **env}) == want, note


@settings(max_examples=140, **SETTINGS)
@given(st.data())
def test_bounds_agree_with_brute_force(data):
    names, ranges, assume = data.draw(domains())
    e = data.draw(exprs(names))
    values = []
    for env in _admissible(names, ranges, assume):
        try:
            values.append(e.evaluate(env))
        except ZeroDivisionError:
            pass
    if not values:
        try:
            got = shapes.bounds(e, assume)
        except ShapeError:
            return
        raise AssertionError(f"bounds({e}) under {assume} = {got}, but no admissible defined point")
    assert shapes.bounds(e, assume) == (min(values), max(values)), f"{e} under {assume}"
