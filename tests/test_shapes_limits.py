"""Resource limits of ``tileproof.shapes`` outside the solver.

Huge literals once crashed interval arithmetic (``OverflowError``), ``10**10**10``
and ``2**10000000`` expanded for ever, and 20,000-term sums or 3,000 nested
minuses hit ``RecursionError``.  Each now ends at once as a ``ShapeError``
that states the limit (and names the token and column where there is one);
``tileproof shapes prove|bounds`` exits 2 with one message and no traceback.
Inputs just inside the limits still decide.
"""

from __future__ import annotations

import pytest

from tileproof import shapes
from tileproof.cli import main
from tileproof.shapes import ShapeError, bounds, prove
from tileproof.shapes import _limits as L

TOO_LARGE = [  # (query, assumptions, what the message must say)
    ("x * 2**1100 >= 0", [], "2**256"),
    ("N >= 1", ["N <= 2**2000"], "2**256"),
    ("x <= 10**10**10", [], "2**256"),
    ("x <= 2**10000000", [], "2**256"),
    ("x <= " + "1" * 100, [], "literal beyond the limit of 2**256"),
    ("x <= 2**255 * 2**255", [], "beyond the limit of 2**256"),
    ("x**100 >= 0", [], "exponent 100 is beyond the limit of 64"),
    ("(a+b+c+d+e+f+g+h)**12 >= 0", [], "terms"),
    (" + ".join(f"x{i}" for i in range(20_000)) + " >= 0", [], "the limit is 10000"),
    ("x" + " + x" * 3000 + " >= 1", [], "limit"),
    ("-" * 3000 + "x <= 5", [], "limit"),
    ("min(" * 70 + "x" + ")" * 70 + " >= 1", [], f"deeper than {L.MAX_DEPTH}"),
    ("x >= 1", ["N <= 2**2000"], "2**256"),
]


@pytest.mark.parametrize(("query", "assume", "says"), TOO_LARGE, ids=range(len(TOO_LARGE)))
def test_too_large_input_is_a_shape_error_that_states_the_limit(query, assume, says):
    with pytest.raises(ShapeError, match="limit") as err:
        prove(query, assume)
    assert says in str(err.value)


@pytest.mark.parametrize(("query", "assume", "says"), TOO_LARGE, ids=range(len(TOO_LARGE)))
def test_the_cli_exits_2_with_one_message(capsys, query, assume, says):
    argv = ["shapes", "prove", query]
    for a in assume:
        argv += ["--assume", a]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("tileproof: error: ") and says in err
    assert "Traceback" not in err and "internal error" not in err


def test_bounds_of_too_large_input(capsys):
    with pytest.raises(ShapeError, match="2\\*\\*256"):
        bounds("N * 2**1100")
    assert main(["shapes", "bounds", "N", "--assume", "N <= 2**2000"]) == 2
    assert "2**256" in capsys.readouterr().err


def test_the_token_and_column_are_named():
    with pytest.raises(ShapeError) as err:
        prove("x * 2**1100 >= 0")
    assert "'2**1100' at column 5" in str(err.value)


def test_inputs_just_inside_the_limits_still_decide():
    assert prove("x * 2**255 >= 2**255").verdict == "proved"
    assert prove("x <= 2**200", ["x <= 2**200"]).verdict == "proved"
    assert prove("x >= 2**255 - 1", ["x >= 2**255 - 1"]).verdict == "proved"
    assert bounds("x", ["x <= 2**255 - 1"]) == (1, None)  # past 2**62 reads as unbounded
    assert prove("x**64 >= 1").verdict == "proved"
    assert prove(" + ".join(f"x{i}" for i in range(500)) + " >= 500").verdict == "proved"
    assert prove("-" * 40 + "x <= 5").verdict == "refuted"
    assert prove("min(" * 30 + "x" + ")" * 30 + " >= 1").verdict == "proved"


def test_expression_objects_with_huge_constants_do_not_crash():
    x, y = shapes.symbols("x y")
    assert prove(x * 2**1100 >= 0).verdict == "proved"  # no OverflowError against inf
    assert prove(x * x * x * x >= 0, [x <= 2**255]).verdict == "proved"
    assert bounds(x * y * 2**1000, [x <= 2**200, y <= 2**200]) == (2**1000, None)
    with pytest.raises(ShapeError, match="limited to 64"):
        x**100
    with pytest.raises(ShapeError, match="beyond the limit"):
        shapes.as_expr(10) ** (10**10)


def test_a_deeply_nested_object_is_unknown_or_a_shape_error_not_a_crash():
    x, y = shapes.symbols("x y")
    e = x
    for _ in range(3000):
        e = shapes.floordiv(e, y) + 1
    d = prove(shapes.ge(e, 0))
    assert d.verdict == "unknown" and "too large" in d.reason
    with pytest.raises(ShapeError, match="too large"):
        bounds(e)
