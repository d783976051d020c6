"""A query, an expression or an assumption as the caller passed it, with what folding forgets.

The normal form is an identity only where every divisor is non-zero:
``x // x`` *is* ``1`` and ``(y // x) * 0`` *is* ``0`` as objects.  The
decisions must nevertheless see every divisor the caller wrote, and re-check
every counterexample on what the caller wrote.  So an input keeps

* ``obj``: the normalised :class:`Expr` / :class:`Formula` the decision works on;
* ``divisors``: ``(guard, divisor, text)`` for every division whose divisor is
  not a non-zero constant, with the condition under which evaluation reaches
  it — for a string taken from its syntax tree before any folding
  (:class:`._parse.Written`), for an object from its structure (what the
  normal form kept: an object *is* its normal form);
* ``names``: every symbol named, including those folding removed, so that a
  counterexample binds all of them;
* :meth:`outcome`: ``"true"``, ``"false"`` or ``"zero"`` (division by zero) at
  a point, evaluating the text itself when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._expr import TRUE, Expr, Formula, ShapeError, as_expr, disj, ne, negate
from ._normal import divisors
from ._parse import Written, coerce_formula, written

__all__ = ["Input", "expr_input", "formula_input"]


class Input:
    __slots__ = ("divisors", "key", "names", "obj", "text")

    def __init__(self, obj: Expr | Formula, w: Written | None):
        self.obj = obj
        self.text = w
        divs: dict = {}
        if w is not None:
            for g, d, t in w.divisors:
                divs.setdefault((g, d), t)
        for g, d in divisors(obj):
            divs.setdefault((g, d), str(d))
        self.divisors: tuple[tuple[Formula, Expr, str], ...] = tuple(
            (g, d, t) for (g, d), t in divs.items()
        )
        names = set(obj.free_symbols())
        if w is not None:
            names |= w.names
        for g, d, _t in self.divisors:
            names |= g.free_symbols() | d.free_symbols()
        self.names = frozenset(names)
        # what the decision depends on: the object, its divisors and its names
        self.key = (obj, tuple((g, d) for g, d, _t in self.divisors), self.names)

    def value(self, env: Mapping[str, int]):
        """The value at ``env``; ``ZeroDivisionError`` where evaluation divides by zero."""
        if self.text is not None:
            return self.text.evaluate(env)
        return self.obj.evaluate(env)

    def outcome(self, env: Mapping[str, int]) -> str:
        try:
            return "true" if self.value(env) else "false"
        except ZeroDivisionError:
            return "zero"

    def side_conditions(self) -> list[Formula]:
        """``guard -> divisor != 0`` for every divisor (the input is false where one is 0)."""
        return [
            disj(negate(g), ne(d, 0)) if g is not TRUE else ne(d, 0) for g, d, _t in self.divisors
        ]


_MEMO: dict = {}  # (kind, text or object) -> Input: the verifier passes the same inputs often
_MEMO_SIZE = 1 << 14


def _memo(key, build) -> Input:
    got = _MEMO.get(key)
    if got is None:
        got = build()
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[key] = got
    return got


def _formula(x: object) -> Input:
    if isinstance(x, str):
        w = written(x, "formula")
        return Input(w.value, w)
    return Input(coerce_formula(x), None)


def _expr(x: object) -> Input:
    if isinstance(x, str):
        w = written(x, "expr")
        return Input(w.value, w)
    if isinstance(x, Formula):
        raise ShapeError(f"bounds takes an integer expression, got the condition {x}")
    return Input(as_expr(x), None)


def formula_input(x: object) -> Input:
    """A condition (string, :class:`Formula` or bool) as an :class:`Input`."""
    if isinstance(x, (str, Formula)):
        return _memo(("f", type(x) is str, x), lambda: _formula(x))
    return _formula(x)


def expr_input(x: object) -> Input:
    """An integer expression (string, :class:`Expr`, int) as an :class:`Input`."""
    if isinstance(x, (str, Expr)):
        return _memo(("e", type(x) is str, x), lambda: _expr(x))
    return _expr(x)


def clear_memo() -> None:
    _MEMO.clear()
