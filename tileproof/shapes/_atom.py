"""The leaves of the algebra: atoms (symbols and opaque operations), and the memo tables.

An *atom* is a factor the polynomial layer (:mod:`._expr`) treats as opaque: a
symbol, or an operation it cannot see through (``//``, ``%``, ``cdiv``,
``min``, ``max``, ``abs``, ``where``).  Atoms compare and hash by structure.

This module sits below both :mod:`._expr` (expressions) and :mod:`._formula`
(conditions), which share its memo tables; it imports only :mod:`._print`, a
leaf, so the algebra has no import cycle.
"""

from __future__ import annotations

from ..errors import TileproofError
from ._print import _atom_str

__all__ = ["Atom", "Monomial", "Op", "ShapeError", "Sym", "clear_memo"]


class ShapeError(TileproofError, ValueError):
    """A malformed shape expression or an operation outside the algebra (a ``ValueError``
    too, as it always was)."""


# --------------------------------------------------------------------------- atoms


class Atom:
    """A factor the polynomial layer treats as opaque."""

    __slots__ = ("_hash", "_key")
    _key: tuple
    _hash: int

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Atom) and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: Atom) -> bool:
        return self._key < other._key


class Sym(Atom):
    """A named integer: a size, a program/lane/rank id, a loop index or a data value."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name
        self._key = (0, name)
        self._hash = hash(self._key)

    def __repr__(self) -> str:
        return self.name


_OP_KINDS = ("floordiv", "mod", "cdiv", "min", "max", "abs", "where")


class Op(Atom):
    """An opaque operation on expressions; ``where`` has a Formula first."""

    __slots__ = ("args", "kind")

    def __init__(self, kind: str, args: tuple):
        assert kind in _OP_KINDS, kind
        self.kind = kind
        self.args = args
        self._key = (1, _OP_KINDS.index(kind), tuple(a._key for a in args))
        self._hash = hash(self._key)

    def __repr__(self) -> str:
        return _atom_str(self)


Monomial = tuple  # tuple[tuple[Atom, int], ...] sorted by atom; () is the constant


# --------------------------------------------------------------------- memo tables
# Memoised by structure: the decision procedure asks for the same facts about the same
# immutable expressions and conditions many times over.

_MONO_KEYS: dict = {}
_CONSTS: dict = {}
_ATOMS: dict = {}  # Expr -> frozenset of its atoms (see Expr._atoms)
_FREE: dict = {}  # Expr or Formula -> frozenset of its symbol names
_SUBS: dict = {}  # (Expr, replacements of its symbols) -> Expr.subs result
_MEMO_SIZE = 1 << 15


def clear_memo() -> None:
    """Forget every memoised key, constant, atom set, symbol set and substitution."""
    for table in (_MONO_KEYS, _CONSTS, _ATOMS, _FREE, _SUBS):
        table.clear()
