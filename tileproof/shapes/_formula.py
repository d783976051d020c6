"""Conditions over expressions: comparisons, ``and``/``or``/``not``, constants.

A :class:`Formula` keeps the comparison as the user wrote it (``<=`` stays
``<=``) so that messages can quote it.  :func:`conj`, :func:`disj` and
:func:`negate` flatten and fold constants, nothing more: no assumption is
baked into a condition.

This module sits between :mod:`._atom` and :mod:`._expr`: a comparison holds
two expressions but only calls their methods (``evaluate``, ``subs``, ``-``),
so it needs the expression class for its type hints alone, and :mod:`._expr`
builds comparisons from it without an import cycle.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

from ._atom import _FREE, _MEMO_SIZE, Atom, ShapeError, Sym

if TYPE_CHECKING:  # type hints only: expressions import this module, not the reverse
    from ._expr import Expr

__all__ = [
    "FALSE",
    "TRUE",
    "BoolConst",
    "BoolOp",
    "Cmp",
    "Formula",
    "compare",
    "conj",
    "disj",
    "negate",
]

ExprLike = Union["Expr", int]


class Formula:
    """A boolean condition over expressions."""

    __slots__ = ()
    _key: tuple

    def __and__(self, other: Formula | bool) -> Formula:
        return conj(self, other)

    def __rand__(self, other: Formula | bool) -> Formula:
        return conj(other, self)

    def __or__(self, other: Formula | bool) -> Formula:
        return disj(self, other)

    def __ror__(self, other: Formula | bool) -> Formula:
        return disj(other, self)

    def __invert__(self) -> Formula:
        return negate(self)

    def __bool__(self) -> bool:
        raise ShapeError(
            f"the truth of the symbolic condition {self} is not known here; "
            "decide it with shapes.prove(...), or in a kernel use `when`/`jnp.where` instead of `if`"
        )

    def evaluate(self, env: Mapping[str, int]) -> bool:
        raise NotImplementedError

    def atoms(self) -> set[Atom]:
        raise NotImplementedError

    def free_symbols(self) -> set[str]:
        got = _FREE.get(self)  # memoised by structure, as for Expr
        if got is None:
            if len(_FREE) >= _MEMO_SIZE:
                _FREE.clear()
            got = _FREE[self] = frozenset(a.name for a in self.atoms() if isinstance(a, Sym))
        return set(got)

    def subs(self, mapping: Mapping[str, ExprLike]) -> Formula:
        raise NotImplementedError


_CMP_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_CMP_NEG = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_HOLDS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Cmp(Formula):
    """``lhs OP rhs`` as written; OP in ``== != < <= > >=``."""

    __slots__ = ("_hash", "_key", "lhs", "op", "rhs")

    def __init__(self, op: str, lhs: Expr, rhs: Expr):
        assert op in _CMP_FLIP, op
        self.op, self.lhs, self.rhs = op, lhs, rhs
        self._key = ("cmp", op, lhs._key, rhs._key)
        self._hash = hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cmp) and (self.op, self.lhs, self.rhs) == (
            other.op,
            other.lhs,
            other.rhs,
        )

    def __hash__(self) -> int:
        return self._hash

    def evaluate(self, env: Mapping[str, int]) -> bool:
        return _HOLDS[self.op](self.lhs.evaluate(env), self.rhs.evaluate(env))

    def atoms(self) -> set[Atom]:
        return set(self.lhs._atoms() | self.rhs._atoms())

    def subs(self, mapping: Mapping[str, ExprLike]) -> Formula:
        return compare(self.op, self.lhs.subs(mapping), self.rhs.subs(mapping))

    def difference(self) -> Expr:
        """``lhs - rhs``: the condition is ``difference() OP 0``."""
        return self.lhs - self.rhs

    def __str__(self) -> str:
        return f"{self.lhs} {self.op} {self.rhs}"

    def __repr__(self) -> str:
        return f"Cmp({self})"


class BoolConst(Formula):
    __slots__ = ("_key", "value")

    def __init__(self, value: bool):
        self.value = bool(value)
        self._key = ("const", self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoolConst) and other.value == self.value

    def __hash__(self) -> int:
        return hash(("boolconst", self.value))

    def evaluate(self, env: Mapping[str, int]) -> bool:
        return self.value

    def atoms(self) -> set[Atom]:
        return set()

    def subs(self, mapping: Mapping[str, ExprLike]) -> Formula:
        return self

    def __str__(self) -> str:
        return "True" if self.value else "False"

    __repr__ = __str__


TRUE, FALSE = BoolConst(True), BoolConst(False)


class BoolOp(Formula):
    """``and`` / ``or`` over two or more conditions, or ``not`` of one."""

    __slots__ = ("_hash", "_key", "args", "kind")

    def __init__(self, kind: str, args: tuple[Formula, ...]):
        assert kind in ("and", "or", "not")
        self.kind, self.args = kind, args
        self._key = (kind, tuple(a._key for a in args))
        self._hash = hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoolOp) and (self.kind, self.args) == (other.kind, other.args)

    def __hash__(self) -> int:
        return self._hash

    def evaluate(self, env: Mapping[str, int]) -> bool:
        if self.kind == "not":
            return not self.args[0].evaluate(env)
        if self.kind == "and":
            return all(a.evaluate(env) for a in self.args)
        return any(a.evaluate(env) for a in self.args)

    def atoms(self) -> set[Atom]:
        out: set[Atom] = set()
        for a in self.args:
            out |= a.atoms()
        return out

    def subs(self, mapping: Mapping[str, ExprLike]) -> Formula:
        args = [a.subs(mapping) for a in self.args]
        if self.kind == "not":
            return negate(args[0])
        return conj(*args) if self.kind == "and" else disj(*args)

    def __str__(self) -> str:
        if self.kind == "not":
            return f"not ({self.args[0]})"
        sep = f" {self.kind} "
        return sep.join(f"({a})" if isinstance(a, BoolOp) else str(a) for a in self.args)

    def __repr__(self) -> str:
        return f"BoolOp({self})"


def _as_formula(x: Formula | bool) -> Formula:
    if isinstance(x, Formula):
        return x
    if isinstance(x, bool):
        return TRUE if x else FALSE
    if isinstance(x, str):
        from ._parse import parse_formula

        return parse_formula(x)
    raise ShapeError(f"expected a condition, got {type(x).__name__} {x!r}")


def compare(op: str, lhs: Expr, rhs: Expr) -> Formula:
    """``lhs OP rhs``, decided at once when the difference is a constant.

    Both sides are expressions already (:func:`._expr.eq` and its kin coerce
    integers and strings first).
    """
    d = lhs - rhs
    if d.is_const:
        return BoolConst(_HOLDS[op](d.const_value, 0))
    return Cmp(op, lhs, rhs)


def _junction(kind: str, args) -> Formula:
    """``and`` (``kind == "and"``) or ``or`` of ``args``: nested ones of the same kind
    flattened, repeats dropped, the neutral constant skipped, the absorbing one returned."""
    absorbing = kind == "or"  # True absorbs an or, False an and
    flat: list[Formula] = []
    for a in map(_as_formula, args):
        if isinstance(a, BoolConst):
            if a.value == absorbing:
                return TRUE if absorbing else FALSE
            continue
        if isinstance(a, BoolOp) and a.kind == kind:
            flat.extend(a.args)
        elif a not in flat:
            flat.append(a)
    if not flat:
        return FALSE if absorbing else TRUE
    return flat[0] if len(flat) == 1 else BoolOp(kind, tuple(flat))


def conj(*args: Formula | bool) -> Formula:
    return _junction("and", args)


def disj(*args: Formula | bool) -> Formula:
    return _junction("or", args)


def negate(a: Formula | bool) -> Formula:
    a = _as_formula(a)
    if isinstance(a, BoolConst):
        return BoolConst(not a.value)
    if isinstance(a, Cmp):
        return Cmp(_CMP_NEG[a.op], a.lhs, a.rhs)
    if isinstance(a, BoolOp) and a.kind == "not":
        return a.args[0]
    return BoolOp("not", (a,))
