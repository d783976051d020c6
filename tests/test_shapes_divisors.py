"""Division by zero in ``tileproof.shapes``: divisors are taken as written, before any folding.

The normal form folds ``x // x`` to ``1``, ``(a*b) // b`` to ``a``, ``e*0`` to
``0``, ``e % 1`` to ``0``, ``... and False`` to ``False``, and bound-based
simplification folds ``y // x >= 0`` to ``True`` for ``y >= 0``: identities
only where every divisor is non-zero.  The contract:

* ``prove``: a query whose evaluation divides by zero at an admissible point
  is ``refuted`` there (reason ``division by zero: ...``); the counterexample
  binds every symbol of the query and the assumptions, and Python's own
  evaluation of the text raises ``ZeroDivisionError`` (or gives False) there;
* an assumption is false wherever it would divide by zero;
* ``bounds``: over the admissible points where the expression, as written, is
  defined.

Every buggy spelling has a correct twin that must stay ``proved``.  A
hypothesis test compares both decisions with brute force on strings whose
divisors may be zero.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tileproof import shapes
from tileproof.shapes import ShapeError, bounds, prove
from tileproof.shapes._parse import written


def _cdiv(a, b):
    return -((-a) // b)


_FUNCS = {
    "min": min,
    "max": max,
    "abs": abs,
    "cdiv": _cdiv,
    "floordiv": lambda a, b: a // b,
    "mod": lambda a, b: a % b,
}


def py(text: str, env: dict):
    """Python's own evaluation of a (where-free) shape text: the independent oracle."""
    return eval(text, {"__builtins__": {}}, {**_FUNCS, **env})


def _outcome(text: str, env: dict) -> str:
    try:
        return "true" if py(text, env) else "false"
    except ZeroDivisionError:
        return "zero"


# (buggy query, assumptions) -> refuted by a zero divisor;  the twin assumes it non-zero
FOLDED = [
    ("x // x == 1", ["x >= 0"]),  # quotient of equal polynomials
    ("(a*b)//b == a", ["b >= 0"]),  # monomial quotient
    ("floordiv(x*y, x) == y", ["x >= 0"]),  # JAX spelling
    ("cdiv(a*b, b) == a", ["b >= 0"]),
    ("mod(a*b, b) == 0", ["b >= 0"]),
    ("(y // x)*0 == 0", ["x >= 0"]),  # multiplied by 0
    ("(y // x) % 1 == 0", ["x >= 0"]),  # modulo 1
    ("(2*(y // x)) % 2 == 0", ["x >= 0"]),  # coefficient multiple of the modulus
    ("y // x - y // x == 0", ["x >= 0"]),  # cancellation
    ("(y // x)**0 == 1", ["x >= 0"]),  # zeroth power
    ("y // x == y // x", ["x >= 0"]),  # comparison of equal sides
    ("y // x >= 0 or True", ["x >= 0"]),  # `or True` after the division
    ("not (y // x >= 0 and False)", ["x >= 0"]),  # `and False` after the division
    ("y // x >= 0", ["x >= 0", "y >= 0"]),  # bound-based simplification
    ("max(y // x, -1) >= -1", ["x >= 0", "y >= 0"]),  # bound-based: max dominated
    ("abs(y % x) >= 0", ["x >= 0"]),
    ("min(y, y // x) <= y", ["x >= 0", "y >= 0"]),
    ("0 <= x <= y // x + x", ["x >= 0", "y >= 0"]),  # chained comparison reaches y // x
    ("y // x >= 0 or x == 0", ["x >= 0", "y >= 0"]),  # the guard comes too late
    ("x in {y // x, x}", ["x >= 0"]),  # a set literal is built whole
]


def _nonzero(assume: list[str]) -> list[str]:
    """The twin's assumptions: every `NAME >= 0` becomes `NAME >= 1`."""
    return [a.replace(">= 0", ">= 1") if a in ("x >= 0", "b >= 0") else a for a in assume]


@pytest.mark.parametrize(("query", "assume"), FOLDED)
def test_a_folded_away_divisor_is_still_refuted(query, assume):
    d = prove(query, assume)
    assert d.verdict == "refuted", d
    assert d.reason.startswith("division by zero"), d
    cex = d.counterexample
    names = written(query).names.union(*(written(a).names for a in assume))
    assert set(cex) == names, d  # every symbol bound, also those folding removed
    assert all(py(a, cex) for a in assume), d
    assert _outcome(query, cex) == "zero", d


@pytest.mark.parametrize(("query", "assume"), FOLDED)
def test_its_twin_with_a_non_zero_divisor_stays_proved(query, assume):
    assert prove(query, _nonzero(assume)).verdict == "proved"


GUARDED = [  # the division is only reached where its divisor is non-zero: proved
    ("x == 0 or y // x >= 0", ["x >= 0", "y >= 0"]),
    ("x != 0 and y // x >= 0 or x == 0", ["x >= 0", "y >= 0"]),
    ("where(x > 0, y // x, 0) >= 0", ["x >= 0", "y >= 0"]),
    ("where(x > 5, y // (x - x), 0) == 0", ["x <= 5"]),  # a constant-zero divisor, unreached
    ("x == 0 or 0 < x <= y // x + x", ["x >= 0", "y >= 0"]),
    ("0 < x <= y // x + x or x == 0", ["x >= 0", "y >= 0"]),  # 0 < x stops the chain
]


@pytest.mark.parametrize(("query", "assume"), GUARDED)
def test_a_guarded_division_is_proved(query, assume):
    assert prove(query, assume).verdict == "proved"


def test_a_divisor_that_is_always_zero_refutes_at_any_admissible_point():
    d = prove("y // (x - x) == 0", ["x >= 4"])
    assert d.verdict == "refuted" and d.reason == "division by zero: x - x is 0"
    assert d.counterexample == {"x": 4, "y": 1}
    assert prove("where(x > 5, y // 0, 0) == 0", ["x <= 6"]).verdict == "refuted"
    assert prove("where(x > 5, y // 0, 0) == 0", ["x <= 5"]).verdict == "proved"


def test_a_constant_false_query_binds_every_symbol():
    d = prove("x - x == 1")
    assert d.verdict == "refuted" and d.counterexample == {"x": 1}
    d = prove("x*0 + y == y + 1", ["z >= 3"])
    assert d.counterexample == {"x": 1, "y": 1, "z": 3}
    d = prove("x < 0 and False", ["x >= -2"])
    assert d.counterexample == {"x": -2}


def test_an_assumption_is_false_where_it_divides_by_zero():
    # x // x == 1 cannot be evaluated at x = 0, so it excludes that point
    assert prove("x >= 1", ["x >= 0", "x // x == 1"]).verdict == "proved"
    assert prove("x >= 1", ["x >= 0", "x - x == 0"]).verdict == "refuted"
    assert prove("x >= 1", ["x == 0", "(y // x)*0 == 0"]).verdict == "inconsistent"


def test_expression_objects_keep_their_structural_divisors():
    x, y = shapes.symbols("x y")
    d = prove(shapes.ge(shapes.floordiv(y, x), 0), ["x >= 0", "y >= 0"])
    assert d.verdict == "refuted" and d.counterexample["x"] == 0
    assert prove(shapes.ge(shapes.floordiv(y, x), 0), ["x >= 1", "y >= 0"]).verdict == "proved"


def test_bounds_are_over_the_points_where_the_text_is_defined():
    assert bounds("(y // (x - 1))*0 + x", ["x <= 3"]) == (2, 3)  # x == 1 divides by zero
    assert bounds("x", ["x <= 3"]) == (1, 3)
    assert bounds("x // x + x", ["x >= 0", "x <= 10"]) == (2, 11)
    assert bounds("where(x > 2, 5 // (x*0), x)", ["x >= 0", "x <= 10"]) == (0, 2)
    assert bounds("(y % x) - (y % x) + y", ["x >= 0", "x <= 2", "y <= 4"]) == (1, 4)
    with pytest.raises(ShapeError, match="no admissible value where it is defined"):
        bounds("y // (x - x)")
    with pytest.raises(ShapeError, match="no admissible value where it is defined"):
        bounds("(y // x) * 0", ["x >= 0", "x <= 0"])


def test_unknown_names_the_budget_that_ran_out():
    d = prove("x*x*x + y*y*y != z*z*z")  # Fermat, n = 3: beyond z3's nonlinear reasoning
    assert d.verdict == "unknown"
    assert "resource limit" in d.reason and "rlimit" in d.reason, d.reason


# -------------------------------------------------------------------- against brute force

NAMES = ("x", "y", "z")


def _texts(names):
    """Pairs (shapes text, Python text): the same expression; `where` as Python's `if`."""
    leaf = st.one_of(
        st.integers(-3, 3).map(lambda v: (str(v), str(v)) if v >= 0 else (f"({v})", f"({v})")),
        st.sampled_from(names).map(lambda s: (s, s)),
    )

    def bin_(op):
        return lambda t: (f"({t[0][0]} {op} {t[1][0]})", f"({t[0][1]} {op} {t[1][1]})")

    def call(fn):
        return lambda t: (f"{fn}({t[0][0]}, {t[1][0]})", f"{fn}({t[0][1]}, {t[1][1]})")

    def extend(kids):
        pair = st.tuples(kids, kids)
        return st.one_of(
            pair.map(bin_("+")),
            pair.map(bin_("-")),
            pair.map(bin_("*")),
            pair.map(bin_("//")),
            pair.map(bin_("//")),
            pair.map(bin_("%")),
            pair.map(call("cdiv")),
            pair.map(call("min")),
            pair.map(call("max")),
            pair.map(call("floordiv")),
            pair.map(call("mod")),
            kids.map(lambda t: (f"({t[0]})*0", f"({t[1]})*0")),
            kids.map(lambda t: (f"({t[0]}) % 1", f"({t[1]}) % 1")),
            kids.map(lambda t: (f"({t[0]}) - ({t[0]})", f"({t[1]}) - ({t[1]})")),
            kids.map(lambda t: (f"({t[0]}) // ({t[0]})", f"({t[1]}) // ({t[1]})")),
            st.tuples(kids, kids, kids).map(
                lambda t: (
                    f"where({t[0][0]} > 0, {t[1][0]}, {t[2][0]})",
                    f"(({t[1][1]}) if ({t[0][1]}) > 0 else ({t[2][1]}))",
                )
            ),
        )

    return st.recursive(leaf, extend, max_leaves=5)


def _conditions(names):
    ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
    cmp_ = st.builds(
        lambda a, op, b: (f"{a[0]} {op} {b[0]}", f"{a[1]} {op} {b[1]}"),
        _texts(names),
        ops,
        _texts(names),
    )

    def join(word):
        return lambda t: (f"({t[0][0]}) {word} ({t[1][0]})", f"({t[0][1]}) {word} ({t[1][1]})")

    return st.one_of(
        cmp_,
        cmp_,
        st.tuples(cmp_, cmp_).map(join("and")),
        st.tuples(cmp_, cmp_).map(join("or")),
        cmp_.map(lambda t: (f"not ({t[0]})", f"not ({t[1]})")),
        cmp_.map(lambda t: (f"({t[0]}) and False", f"({t[1]}) and False")),
        cmp_.map(lambda t: (f"({t[0]}) or True", f"({t[1]}) or True")),
    )


@st.composite
def _domains(draw):
    """Symbols with lower bound 0 (possibly-zero divisors) or -1 or 1, each bounded above."""
    names = NAMES[: draw(st.integers(2, 3))]
    pairs, ranges = [], {}
    for s in names:
        lo = draw(st.sampled_from([0, 0, -1, 1]))
        hi = lo + draw(st.integers(1, 4))
        pairs += [(f"{s} >= {lo}", f"{s} >= {lo}"), (f"{s} <= {hi}", f"{s} <= {hi}")]
        ranges[s] = range(lo, hi + 1)
    if draw(st.integers(0, 3)) == 0:
        pairs.append(draw(_conditions(names)))
    return names, ranges, pairs


def _grid(names, ranges, pairs):
    """The admissible points: every assumption true, by Python's evaluation."""
    out = []
    for vals in itertools.product(*(ranges[s] for s in names)):
        env = dict(zip(names, vals, strict=True))
        if all(_outcome(p, env) == "true" for _a, p in pairs):
            out.append(env)
    return out


SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@settings(max_examples=200, **SETTINGS)
@given(st.data())
def test_prove_agrees_with_brute_force_on_possibly_zero_divisors(data):
    names, ranges, pairs = data.draw(_domains())
    assume = [a for a, _p in pairs]
    text, pytext = data.draw(_conditions(names))
    d = prove(text, assume)
    grid = _grid(names, ranges, pairs)
    outcomes = [_outcome(pytext, env) for env in grid]
    note = f"{text!r} under {assume}: {d}"
    assert d.verdict != "unknown", note
    if not grid:
        assert d.verdict == "inconsistent", note
    elif all(o == "true" for o in outcomes):
        assert d.verdict == "proved", note  # nothing admissible falsifies it or divides by 0
    else:
        assert d.verdict == "refuted", note
        cex = d.counterexample
        assert set(cex) >= set(written(text).names), note  # every symbol of the query bound
        assert all(_outcome(p, cex) == "true" for _a, p in pairs), note
        got = _outcome(pytext, cex)
        assert got in ("false", "zero"), note
        assert (got == "zero") == d.reason.startswith("division by zero"), note


@settings(max_examples=120, **SETTINGS)
@given(st.data())
def test_bounds_agree_with_brute_force_on_possibly_zero_divisors(data):
    names, ranges, pairs = data.draw(_domains())
    assume = [a for a, _p in pairs]
    text, pytext = data.draw(_texts(names))
    values = []
    for env in _grid(names, ranges, pairs):
        try:
            values.append(py(pytext, env))
        except ZeroDivisionError:
            pass  # not a point where the text is defined
    if not values:
        with pytest.raises(ShapeError):
            bounds(text, assume)
        return
    assert bounds(text, assume) == (min(values), max(values)), f"{text!r} under {assume}"
