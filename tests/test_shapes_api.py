"""The public face of tileproof.shapes: parsing, printing, conditions, decisions, JAX interop."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import pytest

from tileproof import shapes
from tileproof.shapes import ShapeError, bounds, prove, sym, symbols


def _check_refuted(d, query, assume=()):
    assert d.verdict == "refuted", d
    env = d.counterexample
    assert all(shapes.coerce_formula(a).evaluate(env) for a in assume)
    assert not shapes.coerce_formula(query).evaluate(env)


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("a / b", ["'/' is true division", "'a / b'", "column 1"]),
        ("B * foo(S)", ["unknown function", "'foo'", "column 5"]),
        ("a + $b", ["syntax error", "'$'", "column 5"]),
        ("a.b + 1", ["unsupported syntax", "'a.b'", "column 1"]),
        ("H ** n", ["exponents must be non-negative integer literals", "'n'", "column 6"]),
        ("x + 1.5", ["only integer literals", "'1.5'", "column 5"]),
    ],
)
def test_parse_errors_name_token_and_column(text, fragments):
    with pytest.raises(ShapeError) as err:
        shapes.parse(text)
    for f in fragments:
        assert f in str(err.value)


def test_decisions_reject_malformed_input():
    with pytest.raises(ShapeError, match="column"):
        prove("a >= ", ["a > 0"])
    with pytest.raises(ShapeError, match="unknown function"):
        bounds("__import__('os')")


@pytest.mark.parametrize(
    "text",
    [
        "cdiv(B*S, 64)",
        "B*S // 64",
        "(B*S) % 64 + 3",
        "max(a, b - 1) + min(c, 4)",
        "abs(a - b) * 2",
        "-(a // 2) + 3*a*b",
        "(a + 1) // (b - 2)",
        "where(a < b, a, b) + 1",
        "floordiv(a, 4) - mod(b, 3)",
    ],
)
def test_printing_round_trips(text):
    e = shapes.parse_expr(text)
    again = shapes.parse_expr(str(e))
    assert again == e
    for a, b, c in itertools.product([1, 2, 5, 10], [1, 3, 7], [1, 4]):
        env = {"a": a, "b": b, "c": c, "B": a, "S": b}
        if text == "(a + 1) // (b - 2)" and b == 2:
            continue
        assert again.evaluate(env) == e.evaluate(env)


def test_printing_is_readable():
    B, S = symbols("B S")
    assert str(shapes.cdiv(B * S, 64)) == "cdiv(B*S, 64)"
    assert str(B * S // 64 * 64) == "64*(B*S // 64)"
    assert str(shapes.parse_formula("H % 16 == 0 and q < cdiv(H, 16)")) == (
        "H % 16 == 0 and q < cdiv(H, 16)"
    )


# -------------------------------------------------------------------------- conditions


def test_equality_is_structural_and_eq_builds_a_condition():
    a, b = symbols("a b")
    assert (a + 3 - a) == 3
    assert a + b == b + a
    assert (a + 1 == a) is False
    cond = shapes.eq(a, b)
    assert isinstance(cond, shapes.Formula)
    assert prove(cond).verdict == "refuted"
    assert prove(shapes.eq(a + b, b + a)).verdict == "proved"
    assert len({a + b, b + a}) == 1  # hashing follows structure


def test_bool_of_symbolic_condition_raises():
    a, b = symbols("a b")
    with pytest.raises(ShapeError, match="prove"):
        bool(a < b)
    with pytest.raises(ShapeError):
        if shapes.eq(a, b):
            pass
    with pytest.raises(ShapeError, match="verdict"):
        bool(prove("a >= 1"))


# ---------------------------------------------------------------------------- decisions


def test_decision_carries_what_was_asked():
    d = prove("i >= 1", ["i >= 0", "i < n"])
    assert d.verdict == "refuted"
    assert d.counterexample == {"i": 0, "n": 1}
    assert d.query == "i >= 1"
    assert d.assume == ("i >= 0", "i < n")
    assert d.proved is False
    d.counterexample["i"] = 99  # callers get their own copy of a cached answer
    assert prove("i >= 1", ["i >= 0", "i < n"]).counterexample["i"] == 0


@pytest.mark.parametrize("decl", ["i >= 0", "i > -1", "0 <= i", "-1 < i"])
def test_literal_lower_bound_declares_the_domain(decl):
    assert prove("i >= 0", [decl]).verdict == "proved"
    _check_refuted(prove("i >= 1", [decl]), "i >= 1", [decl])
    assert bounds("i", [decl, "i < 8"]) == (0, 7)


def test_symbols_default_to_at_least_one():
    assert prove("n >= 1").verdict == "proved"
    assert prove("n >= 1", ["2*n >= 0"]).verdict == "proved"  # not a literal declaration
    assert prove("n >= 1", ["n == 0"]).verdict == "inconsistent"
    assert bounds("n") == (1, None)


def test_division_by_zero_is_reported():
    d = prove("x // (y - 2) >= 0")
    assert d.verdict == "refuted"
    assert d.reason == "division by zero: y - 2 can be 0"
    assert d.counterexample["y"] == 2
    assert prove("x // (y - 2) >= 0", ["y >= 3"]).verdict == "proved"
    # a guarded division is only reported where evaluation reaches it
    assert prove("where(y > 2, x // (y - 2), 0) >= 0").verdict == "proved"
    assert prove("y <= 2 or x // (y - 2) >= 0").verdict == "proved"
    # bounds are taken over the points where the expression is defined
    assert bounds("a // (a - 3)") == (-2, 4)


def test_inconsistent_assumptions():
    assert prove("a >= b", ["a <= 0"]).verdict == "inconsistent"
    assert (
        prove("a1 >= a2", ["a1 >= a3 + 1", "a3 >= a2 + 4", "a1 <= a4 + 2", "a4 <= a2 + 2"]).verdict
        == "inconsistent"
    )
    with pytest.raises(ShapeError, match="admit no values"):
        bounds("a", ["a < 1"])


KERNEL = ["H % 16 == 0", "b <= B - 1", "q <= cdiv(H, 16) - 1", "b >= 0", "q >= 0"]


def test_tail_tile_offset_proved_with_divisibility():
    assert prove("b*H + q*16 + 16 <= B*H", KERNEL).verdict == "proved"


def test_tail_tile_offset_refuted_without_divisibility():
    assume = KERNEL[1:]
    d = prove("b*H + q*16 + 16 <= B*H", assume)
    _check_refuted(d, "b*H + q*16 + 16 <= B*H", assume)
    # the documented bug: num_heads = 20, the second tile spills into the next batch
    assert prove("b*H + q*16 + 16 <= B*H", [*assume, "H >= 17"]).counterexample["H"] in range(
        17, 32
    )


def test_kernel_shaped_queries():
    _check_refuted(prove("(B*S // 64) * 64 == B*S"), "(B*S // 64) * 64 == B*S")
    assert prove("(B*S // 64) * 64 == B*S", ["(B*S) % 64 == 0"]).verdict == "proved"
    assert prove("cdiv(N, 64)*64 >= N").verdict == "proved"
    assert prove("e // 64 < cdiv(N, 64)", ["e >= 0", "e < N"]).verdict == "proved"
    offs = ["page >= 0", "page <= 2**20", "h >= 0", "h < 8", "d >= 0", "d < 128"]
    q = "page*128*8*128 + h*128 + d < 2**31"
    d = prove(q, offs)
    _check_refuted(d, q, offs)
    assert d.counterexample["page"] == 2**14  # the smallest overflowing page
    assert prove(q, [*offs[:1], "page <= 2**14 - 1", *offs[2:]]).verdict == "proved"
    assert prove("i*128 + 127 < n", ["i <= floordiv(n, 128) - 1", "n >= 128"]).verdict == "proved"
    assert prove("min(a, 128) * ((a + 127) // 128) >= a").verdict == "proved"


def test_bounds_are_exact():
    assert bounds("page*128*8*128", ["page >= 0", "page <= 2**20"]) == (0, 2**37)
    assert bounds("a - min(a, b)") == (0, None)
    assert bounds("x*x - 3*x", ["x >= -5", "x <= 5"]) == (-2, 40)
    assert bounds(sym("a") % 5 + (5 - sym("a"))) == (None, 5)
    assert bounds("a + b - a*b + a*b*a") == (2, None)


def test_solver_limit_answers_unknown_quickly():
    # Fermat for cubes: true on this box, but beyond z3's nonlinear arithmetic.
    t0 = time.perf_counter()
    d = prove("a**3 + b**3 != c**3", ["a <= 10**6", "b <= 10**6", "c <= 10**6"])
    elapsed = time.perf_counter() - t0
    assert d.verdict == "unknown"
    assert "z3" in d.reason
    assert elapsed < 5


# --------------------------------------------------------------------------- isolation


def test_import_needs_neither_jax_nor_z3():
    code = (
        "import sys\n"
        "import tileproof.shapes as s\n"
        "assert 'jax' not in sys.modules and 'z3' not in sys.modules, sorted(sys.modules)\n"
        "assert s.prove('a >= 1').verdict == 'proved'\n"
        "assert s.bounds('a % 5') == (0, 4)\n"
        "assert 'z3' not in sys.modules  # the fast path decided without the solver\n"
        "assert s.prove('a*a >= a + 5 or a <= 2').verdict == 'proved'\n"
        "assert 'z3' in sys.modules and 'jax' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -------------------------------------------------------------------------------- JAX


@pytest.mark.parametrize(
    "text",
    [
        "floordiv(a*b, 4) + 3",
        "a % 5 - b",
        "(a*b) % (a + 1)",
        "max(a, b) + min(a, 3)",
        "cdiv(a, 64)",
        "abs(a - b)",
        "-a // 3 + 2*a*a",
    ],
)
def test_jax_round_trip(text):
    e = shapes.parse_expr(text)
    back = shapes.from_jax(shapes.to_jax(e))
    assert prove(shapes.eq(back, e)).verdict == "proved"
    for a, b in itertools.product([1, 2, 5, 10, 63, 64, 65], [1, 3, 7]):
        assert back.evaluate({"a": a, "b": b}) == e.evaluate({"a": a, "b": b})


def test_jax_round_trip_is_structural_where_jax_keeps_the_form():
    for text in ["floordiv(a*b, 4) + 3", "a % 5 - b", "max(a, b) + 2*c"]:
        e = shapes.parse_expr(text)
        assert shapes.from_jax(shapes.to_jax(e)) == e


def test_jax_scope_and_constants():
    import jax.export

    scope = jax.export.SymbolicScope(["a >= 4"])
    (a,) = jax.export.symbolic_shape("a", scope=scope)
    got = shapes.to_jax("a + 1", scope=scope)
    assert got - a == 1 and got >= 5  # same scope: JAX compares them, with its constraints
    assert shapes.to_jax("3 + 4") == 7
    assert shapes.from_jax(12) == 12
    assert shapes.from_jax(jax.export.symbolic_shape("floordiv(b, 2) * c")[0]) == (
        shapes.parse_expr("(b // 2) * c")
    )
    with pytest.raises(ShapeError, match="where"):
        shapes.to_jax("where(a < b, a, b)")
