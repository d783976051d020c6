"""Symbolic integer expressions for shape arithmetic, kept in a normal form.

Three levels, as in JAX's symbolic shapes: an *atom* (a symbol, or an
operation the polynomial algebra cannot see through: ``//``, ``%``, ``cdiv``,
``min``, ``max``, ``abs``, ``where``), a *monomial* (a sorted product of atoms
with exponents) and an :class:`Expr` (a sorted sum of monomials with integer
coefficients plus a constant).  Normalising on construction makes
``a + 3 - a`` the constant ``3`` without a solver, and makes structurally
equal expressions compare and hash equal, which the decision cache relies on.

Division and modulo use Python's floor semantics throughout.  Simplification
rules are only those that hold for *every* integer value of the symbols, so
no assumption is baked into an expression.

The algebra is layered without import cycles: :mod:`._print` (text, a leaf)
<- :mod:`._atom` (atoms, memo tables) <- :mod:`._formula` (conditions) <- this
module (expressions, the opaque operations, comparisons).  Expressions and the
opaque operations stay together: ``Expr.__floordiv__`` and ``Expr.subs`` build
and re-normalise operations, and the operations build expressions.  This module
is the algebra's facade: it re-exports the atoms and conditions, so callers
import everything from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Union

from ._atom import (
    _ATOMS,
    _CONSTS,
    _FREE,
    _MEMO_SIZE,
    _MONO_KEYS,
    _SUBS,
    Atom,
    Monomial,
    Op,
    ShapeError,
    Sym,
)
from ._formula import FALSE, TRUE, BoolConst, BoolOp, Cmp, Formula, compare, conj, disj, negate
from ._print import _expr_str

__all__ = [
    "FALSE",
    "TRUE",
    "Atom",
    "BoolConst",
    "BoolOp",
    "Cmp",
    "Expr",
    "ExprLike",
    "Formula",
    "Monomial",
    "Op",
    "ShapeError",
    "Sym",
    "as_expr",
    "cdiv",
    "conj",
    "disj",
    "eq",
    "floordiv",
    "ge",
    "gt",
    "le",
    "lt",
    "maximum",
    "minimum",
    "mod",
    "ne",
    "negate",
    "split_by_monomial",
    "sym",
    "symbols",
    "where",
]


# Limits of the object API's power (the parser has tighter ones, see _limits): a loop of
# k multiplications, or one exponentiation of a constant, must end promptly.
_POW_EXPONENT = 64
_POW_BITS = 1 << 16


# ------------------------------------------------------------------------ expressions

ExprLike = Union["Expr", int]


def _mono_key(m: Monomial) -> tuple:
    k = _MONO_KEYS.get(m)
    if k is None:
        k = tuple([(a._key, p) for a, p in m])
        if len(_MONO_KEYS) < 1 << 16:
            _MONO_KEYS[m] = k
    return k


def _term_order(t: tuple) -> tuple:
    return (not t[0], t[0])  # by monomial key, the constant last


class Expr:
    """An integer polynomial over atoms, normalised; immutable and hashable.

    ``==`` compares structure (so expressions can key dictionaries); use
    :func:`eq` / :func:`ne` to build the equality *condition*.  ``<``,
    ``<=``, ``>``, ``>=`` build :class:`Cmp` conditions.
    """

    __slots__ = ("_hash", "_k", "terms")
    terms: tuple  # tuple[tuple[Monomial, int], ...], sorted, no zero coefficient
    _k: tuple | None  # the structural key, computed on first use
    _hash: int | None  # hash of the key, computed on first use

    def __init__(self, terms: Mapping[Monomial, int] | Iterable[tuple[Monomial, int]]):
        items = terms.items() if type(terms) is dict or isinstance(terms, Mapping) else terms
        keyed = [(_mono_key(m), m, c) for m, c in items if c != 0]
        if len(keyed) > 1:
            keyed.sort(key=_term_order)
        self.terms = tuple([(m, c) for _, m, c in keyed])
        self._k = tuple([(k, c) for k, _, c in keyed])
        self._hash = None

    @staticmethod
    def _ordered(terms: tuple) -> Expr:
        """Terms already in normal order (e.g. a scaled copy of a normal form)."""
        e = object.__new__(Expr)
        e.terms = terms
        e._k = None
        e._hash = None
        return e

    @property
    def _key(self) -> tuple:
        k = self._k
        if k is None:
            k = self._k = tuple([(_mono_key(m), c) for m, c in self.terms])
        return k

    # -- construction helpers
    @staticmethod
    def const(value: int) -> Expr:
        got = _CONSTS.get(value) if type(value) is int else None
        if got is not None:
            return got
        if isinstance(value, bool) or not isinstance(value, int):
            raise ShapeError(f"expected an integer, got {value!r}")
        e = Expr._ordered((((), value),) if value else ())
        if -1024 <= value <= 1024:
            _CONSTS[value] = e
        return e

    @staticmethod
    def atom(a: Atom) -> Expr:
        return Expr._ordered(((((a, 1),), 1),))

    # -- inspection
    @property
    def is_const(self) -> bool:
        return not self.terms or (len(self.terms) == 1 and self.terms[0][0] == ())

    @property
    def const_value(self) -> int:
        """The constant term (the whole value when :attr:`is_const`)."""
        for m, c in self.terms:
            if m == ():
                return c
        return 0

    @property
    def is_linear(self) -> bool:
        return all(len(m) <= 1 and all(p == 1 for _, p in m) for m, _ in self.terms)

    def as_atom(self) -> Atom | None:
        """The atom if this expression is exactly one atom with coefficient 1."""
        if len(self.terms) == 1:
            m, c = self.terms[0]
            if c == 1 and len(m) == 1 and m[0][1] == 1:
                return m[0][0]
        return None

    def as_symbol(self) -> str | None:
        a = self.as_atom()
        return a.name if isinstance(a, Sym) else None

    def atoms(self) -> set[Atom]:
        """Every atom, nested ones included (a fresh set: callers may change it)."""
        return set(self._atoms())

    def _atoms(self) -> frozenset:
        # memoised by structure: the decision procedure asks for the atoms and symbols of
        # the same (immutable) expressions many times over, and each walk rebuilt the set
        got = _ATOMS.get(self)
        if got is None:
            out: set[Atom] = set()
            for m, _ in self.terms:
                for a, _p in m:
                    _collect_atoms(a, out)
            got = frozenset(out)
            if len(_ATOMS) >= _MEMO_SIZE:
                _ATOMS.clear()
                _FREE.clear()
            _ATOMS[self] = got
        return got

    def free_symbols(self) -> set[str]:
        got = _FREE.get(self)
        if got is None:
            got = _FREE[self] = frozenset(a.name for a in self._atoms() if isinstance(a, Sym))
        return set(got)

    # -- arithmetic
    def __add__(self, other: ExprLike) -> Expr:
        if type(other) is int:
            return self._plus_const(other)
        o = as_expr(other)
        if not o.terms:
            return self
        if not self.terms:
            return o
        if o.is_const:
            return self._plus_const(o.terms[0][1])
        if self.is_const:
            return o._plus_const(self.terms[0][1])
        acc = dict(self.terms)
        for m, c in o.terms:
            acc[m] = acc.get(m, 0) + c
        return Expr(acc)

    def _plus_const(self, k: int) -> Expr:
        if k == 0:
            return self
        terms = self.terms
        if terms and terms[-1][0] == ():  # the constant sorts last
            c = terms[-1][1] + k
            return Expr._ordered(terms[:-1] + ((((), c),) if c else ()))
        return Expr._ordered((*terms, ((), k)))

    __radd__ = __add__

    def __neg__(self) -> Expr:
        return Expr._ordered(tuple([(m, -c) for m, c in self.terms]))

    def __pos__(self) -> Expr:
        return self

    def __sub__(self, other: ExprLike) -> Expr:
        if type(other) is int:
            return self._plus_const(-other)
        return self + (-as_expr(other))

    def __rsub__(self, other: ExprLike) -> Expr:
        return as_expr(other) - self

    def __mul__(self, other: ExprLike) -> Expr:
        if type(other) is int:
            if other == 0:
                return Expr.const(0)
            return Expr._ordered(tuple([(m, c * other) for m, c in self.terms]))
        o = as_expr(other)
        if o.is_const:
            return self * o.const_value
        if self.is_const:
            return o * self.const_value
        acc: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in o.terms:
                m = _mono_mul(m1, m2)
                acc[m] = acc.get(m, 0) + c1 * c2
        return Expr(acc)

    __rmul__ = __mul__

    def __pow__(self, k: int) -> Expr:
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ShapeError(f"only non-negative integer powers are supported, got {k!r}")
        if self.is_const:  # one exponentiation, bounded in size (10**10**10 would never end)
            v = self.const_value
            if abs(v) > 1 and (abs(v).bit_length() - 1) * k >= _POW_BITS:
                raise ShapeError(f"({v})**{k} is beyond the limit of 2**{_POW_BITS} for constants")
            return Expr.const(v**k)
        if k > _POW_EXPONENT:
            raise ShapeError(
                f"({self})**{k}: exponents of symbolic expressions are limited to {_POW_EXPONENT}"
            )
        out = Expr.const(1)
        for _ in range(k):
            out = out * self
        return out

    def __floordiv__(self, other: ExprLike) -> Expr:
        return floordiv(self, other)

    def __rfloordiv__(self, other: ExprLike) -> Expr:
        return floordiv(other, self)

    def __mod__(self, other: ExprLike) -> Expr:
        return mod(self, other)

    def __rmod__(self, other: ExprLike) -> Expr:
        return mod(other, self)

    def __abs__(self) -> Expr:
        if self.is_const:
            return Expr.const(abs(self.const_value))
        return Expr.atom(Op("abs", (self,)))

    def __truediv__(self, other: object):
        raise ShapeError("'/' is true division; shape arithmetic uses '//' (floor) or cdiv(a, b)")

    __rtruediv__ = __truediv__

    # -- comparisons build conditions (== stays structural, see class doc)
    def __lt__(self, other: ExprLike) -> Cmp:
        return Cmp("<", self, as_expr(other))

    def __le__(self, other: ExprLike) -> Cmp:
        return Cmp("<=", self, as_expr(other))

    def __gt__(self, other: ExprLike) -> Cmp:
        return Cmp(">", self, as_expr(other))

    def __ge__(self, other: ExprLike) -> Cmp:
        return Cmp(">=", self, as_expr(other))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int) and not isinstance(other, bool):
            other = Expr.const(other)
        return isinstance(other, Expr) and self.terms == other.terms

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = self._hash = hash(self._key)
        return h

    def __bool__(self) -> bool:
        raise ShapeError(
            f"the truth value of the symbolic expression {self} is not known; "
            "compare with shapes.prove(...) or use tileproof's `when`/`where` instead of Python `if`"
        )

    def __index__(self) -> int:
        if self.is_const:
            return self.const_value
        raise ShapeError(f"{self} is symbolic and cannot be used as a Python integer")

    __int__ = __index__

    # -- evaluation and rewriting
    def evaluate(self, env: Mapping[str, int]) -> int:
        """The value under ``env`` with Python semantics; ``ZeroDivisionError`` on ``x // 0``."""
        total = 0
        for m, c in self.terms:
            v = c
            for a, p in m:
                v *= _eval_atom(a, env) ** p
            total += v
        return total

    def subs(self, mapping: Mapping[str, ExprLike]) -> Expr:
        """Replace symbols by expressions (re-normalising).

        Memoised on the expression and the replacements of its own symbols (the
        others cannot change the result): the verifier instantiates the same index
        expressions for many programs, tags and witnesses.
        """
        if not mapping:
            return self
        free = self.free_symbols()
        rel = tuple(sorted((k, as_expr(v)) for k, v in mapping.items() if k in free))
        key = (self, rel)
        got = _SUBS.get(key)
        if got is None:
            repl = dict(rel)
            got = self._map_atoms(lambda a: _subs_atom(a, repl))
            if len(_SUBS) >= _MEMO_SIZE:
                _SUBS.clear()
            _SUBS[key] = got
        return got

    def _map_atoms(self, fn) -> Expr:
        out = Expr.const(0)
        for m, c in self.terms:
            term = Expr.const(c)
            for a, p in m:
                term = term * (fn(a) ** p)
            out = out + term
        return out

    def __str__(self) -> str:
        return _expr_str(self)

    def __repr__(self) -> str:
        return f"Expr({self})"


def _collect_atoms(a: Atom, out: set[Atom]) -> None:
    out.add(a)
    if isinstance(a, Op):
        for arg in a.args:
            if isinstance(arg, Expr):
                out |= arg._atoms()
            else:  # a Formula (first argument of where)
                out |= arg.atoms()


def _mono_mul(m1: Monomial, m2: Monomial) -> Monomial:
    if not m1:
        return m2
    if not m2:
        return m1
    acc: dict[Atom, int] = dict(m1)
    for a, p in m2:
        acc[a] = acc.get(a, 0) + p
    return tuple(sorted(acc.items(), key=lambda t: t[0]._key))


def as_expr(x: object) -> Expr:
    """Coerce an int, a symbol name-free Expr or an Atom to :class:`Expr`."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, bool):
        raise ShapeError(f"expected an integer expression, got the boolean {x!r}")
    if isinstance(x, int):
        return Expr.const(x)
    if hasattr(x, "__index__") and not isinstance(x, Formula):
        try:
            return Expr.const(int(x.__index__()))  # numpy integers
        except Exception:
            pass
    if isinstance(x, Atom):
        return Expr.atom(x)
    if isinstance(x, str):
        from ._parse import parse_expr

        return parse_expr(x)
    raise ShapeError(f"expected an integer shape expression, got {type(x).__name__} {x!r}")


def sym(name: str) -> Expr:
    """One symbol; names are Python identifiers."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ShapeError(f"symbol names must be identifiers, got {name!r}")
    return Expr.atom(Sym(name))


def symbols(names: str) -> tuple[Expr, ...]:
    """``symbols("B S H")`` or ``symbols("B, S, H")``."""
    parts = [p for p in names.replace(",", " ").split() if p]
    return tuple(sym(p) for p in parts)


# --------------------------------------------------------------- opaque operations


def _split_multiple(n: Expr, d: int) -> tuple[Expr, Expr]:
    """``n == d*q + r`` where q gathers the non-constant terms whose coefficient d divides."""
    q_terms, r_terms = [], []
    for m, c in n.terms:
        if m != () and c % d == 0:
            q_terms.append((m, c // d))
        else:
            r_terms.append((m, c))
    return Expr(q_terms), Expr(r_terms)


def split_by_monomial(e: Expr, h: Expr) -> tuple[Expr, Expr]:
    """``(X, L)`` with ``e == h*X + L``, ``h`` one monomial (a constant times atoms).

    ``X`` gathers the non-constant terms of ``e`` that ``h`` divides exactly (the
    coefficient by ``h``'s constant, every atom to at least ``h``'s power), ``L`` the
    rest.  Term arithmetic only, true for every value of the atoms: the exact quotient
    below, the digits of an index (``static._digits``) and the structural witnesses
    (``static._witness``) all read place values this way.
    """
    ((hm, hc),) = h.terms
    x_terms, l_terms = [], []
    for m, c in e.terms:
        acc = dict(m)
        ok = m != () and c % hc == 0
        if ok:
            for a, p in hm:
                if acc.get(a, 0) < p:
                    ok = False
                    break
                acc[a] -= p
        if ok:
            mono = tuple(sorted(((a, p) for a, p in acc.items() if p), key=lambda t: t[0]._key))
            x_terms.append((mono, c // hc))
        else:
            l_terms.append((m, c))
    return Expr(x_terms), Expr(l_terms)


def _monomial_quotient(n: Expr, d: Expr) -> Expr | None:
    """``n / d`` when ``d`` is a single non-constant monomial (times a constant) that
    divides every term of ``n``."""
    if len(d.terms) != 1:
        return None
    quotient, rest = split_by_monomial(n, d)
    return quotient if not rest.terms else None


_ROUND = {  # constant quotients, Python semantics
    "floordiv": lambda a, b: a // b,
    "cdiv": lambda a, b: -((-a) // b),
}


def _quotient(kind: str, n: ExprLike, d: ExprLike) -> Expr:
    """``n // d`` (``kind`` "floordiv") or ``cdiv(n, d)`` in normal form: constants folded,
    a negative constant divisor moved to the dividend, multiples of a constant divisor
    taken out (``(16*a + r) // 16 == a + r // 16``), an exact monomial quotient taken."""
    n, d = as_expr(n), as_expr(d)
    if d.is_const:
        dv = d.const_value
        if dv == 0:
            raise ShapeError(
                f"division by zero in ({n}) // 0"
                if kind == "floordiv"
                else f"division by zero in cdiv({n}, 0)"
            )
        if n.is_const:
            return Expr.const(_ROUND[kind](n.const_value, dv))
        if dv < 0:
            return _quotient(kind, -n, -dv)
        if dv == 1:
            return n
        q, r = _split_multiple(n, dv)
        if r.is_const:
            return q + _ROUND[kind](r.const_value, dv)
        return q + Expr.atom(Op(kind, (r, Expr.const(dv))))
    quotient = _monomial_quotient(n, d)
    if quotient is not None:
        return quotient
    return Expr.atom(Op(kind, (n, d)))


def floordiv(n: ExprLike, d: ExprLike) -> Expr:
    """``n // d`` with Python (floor) semantics."""
    return _quotient("floordiv", n, d)


def cdiv(n: ExprLike, d: ExprLike) -> Expr:
    """Ceiling division ``-((-n) // d)``: the number of tiles of size d covering n."""
    return _quotient("cdiv", n, d)


def mod(n: ExprLike, d: ExprLike) -> Expr:
    """``n % d`` with Python semantics (the sign of the divisor)."""
    n, d = as_expr(n), as_expr(d)
    if d.is_const:
        dv = d.const_value
        if dv == 0:
            raise ShapeError(f"modulo by zero in ({n}) % 0")
        if n.is_const:
            return Expr.const(n.const_value % dv)
        if dv < 0:
            return -mod(-n, -dv)
        if dv == 1:
            return Expr.const(0)
        r = Expr((m, c % dv) for m, c in n.terms)
        if r.is_const:
            return Expr.const(r.const_value % dv)
        return Expr.atom(Op("mod", (r, Expr.const(dv))))
    if _monomial_quotient(n, d) is not None:
        return Expr.const(0)
    return Expr.atom(Op("mod", (n, d)))


def _minmax(kind: str, args: Iterable[ExprLike]) -> Expr:
    pick = min if kind == "min" else max
    flat: list[Expr] = []
    for a in args:
        e = as_expr(a)
        at = e.as_atom()
        if isinstance(at, Op) and at.kind == kind:
            flat.extend(at.args)
        else:
            flat.append(e)
    if not flat:
        raise ShapeError(f"{kind}() needs at least one argument")
    # Arguments differing by a constant: keep the winner only.
    best: dict[Expr, int] = {}
    for e in flat:
        c = e.const_value
        base = e - c
        best[base] = pick(best[base], c) if base in best else c
    kept = [base + c for base, c in best.items()]
    if len(kept) == 1:
        return kept[0]
    kept.sort(key=lambda e: e._key)
    return Expr.atom(Op(kind, tuple(kept)))


def minimum(*args: ExprLike) -> Expr:
    return _minmax("min", args)


def maximum(*args: ExprLike) -> Expr:
    return _minmax("max", args)


def where(cond: Formula | bool, a: ExprLike, b: ExprLike) -> Expr:
    """``a if cond else b``, as ``jnp.where`` on index values."""
    a, b = as_expr(a), as_expr(b)
    if isinstance(cond, bool):
        return a if cond else b
    if isinstance(cond, BoolConst):
        return a if cond.value else b
    if a == b:
        return a
    return Expr.atom(Op("where", (cond, a, b)))


# ------------------------------------------------------------------- evaluation


def _eval_atom(a: Atom, env: Mapping[str, int]) -> int:
    if isinstance(a, Sym):
        try:
            return int(env[a.name])
        except KeyError:
            raise ShapeError(f"no value for symbol {a.name!r}") from None
    assert isinstance(a, Op)
    k = a.kind
    if k == "where":
        c, x, y = a.args
        return x.evaluate(env) if c.evaluate(env) else y.evaluate(env)
    vals = [x.evaluate(env) for x in a.args]
    if k == "floordiv":
        return vals[0] // vals[1]
    if k == "mod":
        return vals[0] % vals[1]
    if k == "cdiv":
        return -((-vals[0]) // vals[1])
    if k == "min":
        return min(vals)
    if k == "max":
        return max(vals)
    if k == "abs":
        return abs(vals[0])
    raise AssertionError(k)


def _subs_atom(a: Atom, repl: Mapping[str, Expr]) -> Expr:
    if isinstance(a, Sym):
        return repl.get(a.name, Expr.atom(a))
    assert isinstance(a, Op)
    args = [x.subs(repl) for x in a.args]
    return _rebuild(a.kind, args)


def _rebuild(kind: str, args: list) -> Expr:
    if kind == "floordiv":
        return floordiv(*args)
    if kind == "mod":
        return mod(*args)
    if kind == "cdiv":
        return cdiv(*args)
    if kind == "min":
        return minimum(*args)
    if kind == "max":
        return maximum(*args)
    if kind == "abs":
        return abs(args[0])
    if kind == "where":
        return where(*args)
    raise AssertionError(kind)


# ----------------------------------------------------------------- comparisons


def _cmp(op: str, lhs: ExprLike, rhs: ExprLike) -> Formula:
    return compare(op, as_expr(lhs), as_expr(rhs))


def eq(a: ExprLike, b: ExprLike) -> Formula:
    return _cmp("==", a, b)


def ne(a: ExprLike, b: ExprLike) -> Formula:
    return _cmp("!=", a, b)


def lt(a: ExprLike, b: ExprLike) -> Formula:
    return _cmp("<", a, b)


def le(a: ExprLike, b: ExprLike) -> Formula:
    return _cmp("<=", a, b)


def gt(a: ExprLike, b: ExprLike) -> Formula:
    return _cmp(">", a, b)


def ge(a: ExprLike, b: ExprLike) -> Formula:
    return _cmp(">=", a, b)
