"""Rewritings used by the decision procedure, each an identity (or an identity under bounds).

* :func:`canon` exposes identities the construction-time normal form keeps
  opaque: ``n % d -> n - d*(n // d)``, ``cdiv(n, d) -> -((-n) // d)``,
  ``(n // a) // b -> n // (a*b)`` for positive constants, and exact
  polynomial quotients (``(a*a - b*b) // (a + b) -> a - b``, valid wherever the
  divisor is non-zero).  After it, ``(a // 2)*2 == a - a % 2`` is ``0 == 0``.
* :func:`simplify` resolves opaque operations whose outcome the symbol bounds
  fix: ``max(a, 2) -> a`` when ``a >= 4``, ``n % d -> n`` when ``0 <= n < d``,
  an atom whose interval is a single point becomes that constant.
* :func:`divisors` lists the symbolic divisors with the condition under which
  evaluation reaches them (``where`` branches, short-circuit ``and``/``or``),
  innermost first, so division by zero is reported as Python would hit it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import overload

from ._expr import (
    TRUE,
    BoolConst,
    BoolOp,
    Cmp,
    Expr,
    Formula,
    Monomial,
    Op,
    Sym,
    _cmp,
    _rebuild,
    conj,
    disj,
    floordiv,
    ne,
    negate,
)
from ._interval import Interval, _cmp_truth, _Eval

__all__ = [
    "canon",
    "canon_formula",
    "clear_memo",
    "division_atoms",
    "divisors",
    "fmap",
    "has_division",
    "map_atoms",
    "poly_quotient",
    "side_conditions",
    "simplify",
    "substitute",
]


def fmap(f: Formula, fn: Callable[[Expr], Expr]) -> Formula:
    """Apply ``fn`` to every expression of ``f`` (constants fold on rebuild)."""
    if isinstance(f, Cmp):
        lhs, rhs = fn(f.lhs), fn(f.rhs)
        return f if lhs is f.lhs and rhs is f.rhs else _cmp(f.op, lhs, rhs)
    if isinstance(f, BoolOp):
        return with_args(f, [fmap(a, fn) for a in f.args])
    return f


def with_args(f: BoolOp, args: list[Formula]) -> Formula:
    """``f`` over new arguments (``f`` itself when none changed), folded again."""
    if all(x is y for x, y in zip(args, f.args, strict=True)):
        return f
    if f.kind == "not":
        return negate(args[0])
    return conj(*args) if f.kind == "and" else disj(*args)


def rebuild(kind: str, args: list) -> Expr:
    """``_rebuild`` that keeps an operation whose divisor became the constant 0.

    Such an operation sits where evaluation never reaches it (a guarded
    branch), since reachable zero divisors are refuted before rewriting; the
    raw atom still raises ``ZeroDivisionError`` if evaluated.
    """
    if kind in _DIVS and args[1].is_const and args[1].const_value == 0:
        return Expr.atom(Op(kind, tuple(args)))
    return _rebuild(kind, args)


def _map_args(a: Op, fn: Callable[[Expr], Expr]) -> list:
    return [fn(x) if isinstance(x, Expr) else fmap(x, fn) for x in a.args]


# --------------------------------------------------------------------- canonical form


def _order(*es: Expr):
    """Graded lexicographic order over the atoms of ``es`` (a monomial order)."""
    atoms = sorted({a for e in es for m, _ in e.terms for a, _ in m}, key=lambda a: a._key)

    def key(t):
        powers = dict(t[0])
        return (sum(powers.values()), tuple(powers.get(a, 0) for a in atoms))

    return key


def _mono_div(m, dm):
    acc = dict(m)
    for a, p in dm:
        if acc.get(a, 0) < p:
            return None
        acc[a] -= p
    return tuple(sorted(((a, p) for a, p in acc.items() if p), key=lambda t: t[0]._key))


def poly_quotient(n: Expr, d: Expr, max_steps: int = 64) -> Expr | None:
    """``q`` with ``n == d*q`` exactly as polynomials over atoms, or ``None``.

    Division by the leading term under a monomial order terminates; a
    remainder or a coefficient that does not divide means no exact quotient.
    """
    if d.is_const or n.is_const:
        return None
    key = _order(n, d)
    dm, dc = max(d.terms, key=key)
    q = Expr.const(0)
    for _ in range(max_steps):
        if not n.terms:
            return q
        nm, nc = max(n.terms, key=key)
        if nc % dc:
            return None
        tm = _mono_div(nm, dm)
        if tm is None:
            return None
        t = Expr({tm: nc // dc})
        q = q + t
        n = n - t * d
    return None


def _fd(n: Expr, d: Expr) -> Expr:
    if d.is_const and d.const_value == 0:
        return rebuild("floordiv", [n, d])
    q = poly_quotient(n, d)
    if q is not None:
        return q
    if d.is_const and d.const_value > 0:
        inner = n.as_atom()
        if isinstance(inner, Op) and inner.kind == "floordiv" and inner.args[1].is_const:
            k = inner.args[1].const_value
            if k > 0:
                return floordiv(inner.args[0], k * d.const_value)
    return floordiv(n, d)


def canon(e: Expr) -> Expr:
    """The identity-revealing form (see the module docstring)."""
    return map_atoms(e, _canon_atom)


def canon_formula(f: Formula) -> Formula:
    return fmap(f, canon)


_DIVS = ("floordiv", "mod", "cdiv")


def _nested_ops(a) -> list:
    """``a`` and the operations nested in it."""
    out = [a]
    for x in a.args:
        out.extend(y for y in x.atoms() if isinstance(y, Op))
    return out


def has_division(x: Expr | Formula) -> bool:
    return any(isinstance(a, Op) and a.kind in _DIVS for a in x.atoms())


def _canon_atom(a) -> Expr | None:
    if isinstance(a, Sym) or not any(x.kind in _DIVS for x in _nested_ops(a)):
        return None
    args = _map_args(a, canon)
    k = a.kind
    if k in _DIVS and args[1].is_const and args[1].const_value == 0:
        return rebuild(k, args)
    if k == "floordiv":
        return _fd(*args)
    if k == "mod":
        n, d = args
        return n - d * _fd(n, d)
    if k == "cdiv":
        n, d = args
        return -_fd(-n, d)
    return rebuild(k, args)


# ------------------------------------------------------------------ under symbol bounds


_KEEP = object()


def map_atoms(e: Expr, fn: Callable) -> Expr:
    """``e`` with each atom ``a`` replaced by ``fn(a)``; ``fn`` returns None to keep ``a``.

    Returns ``e`` itself when nothing changed, so unchanged input costs no rebuild.
    """
    kept: list[tuple[Monomial, int]] = []
    changed = None
    for m, c in e.terms:
        reps = None
        for i, (a, _p) in enumerate(m):
            r = fn(a)
            if r is not None:
                if reps is None:
                    reps = {}
                reps[i] = r
        if reps is None:
            kept.append((m, c))
            continue
        term = Expr.const(c)
        for i, (a, p) in enumerate(m):
            x = reps.get(i)
            if x is None:
                x = Expr.atom(a)
            term = term * (x if p == 1 else x**p)
        changed = term if changed is None else changed + term
    if changed is None:
        return e
    return Expr(kept) + changed


@overload
def substitute(x: Expr, mapping: Mapping[str, Expr]) -> Expr: ...
@overload
def substitute(x: Formula, mapping: Mapping[str, Expr]) -> Formula: ...
def substitute(x: Expr | Formula, mapping: Mapping[str, Expr]) -> Expr | Formula:
    """Replace symbols by expressions; ``x`` itself when none occurs."""
    if not mapping:
        return x
    memo: dict = {}

    def atom(a):
        got = memo.get(a, _KEEP)
        if got is _KEEP:
            if isinstance(a, Sym):
                got = mapping.get(a.name)
            else:
                args = _map_args(a, expr)
                same = all(u is v for u, v in zip(args, a.args, strict=True))
                got = None if same else rebuild(a.kind, args)
            memo[a] = got
        return got

    def expr(e: Expr) -> Expr:
        return map_atoms(e, atom)

    return expr(x) if isinstance(x, Expr) else fmap(x, expr)


class _Simplifier:
    def __init__(self, box: Mapping[str, Interval]):
        self.ev = _Eval(box)
        self.memo: dict = {}

    def expr(self, e: Expr) -> Expr:
        return map_atoms(e, self.atom)

    def atom(self, a) -> Expr | None:
        got = self.memo.get(a, _KEEP)
        if got is _KEEP:
            got = self.memo[a] = self._atom(a)
        return got

    def _atom(self, a) -> Expr | None:
        if isinstance(a, Sym):
            lo, hi = self.ev.atom(a)
            return Expr.const(lo) if lo == hi else None
        k = a.kind
        if k == "where":
            c = self.formula(a.args[0])
            t = c.value if isinstance(c, BoolConst) else self.ev.truth(c)
            if t is not None:
                return self.expr(a.args[1] if t else a.args[2])
            args: list[Expr | Formula] = [c, self.expr(a.args[1]), self.expr(a.args[2])]
        else:
            nums = [self.expr(x) for x in a.args]
            if k in ("min", "max"):
                nums = self._dominant(k, nums)
            elif k == "abs":
                lo, hi = self.ev.expr(nums[0])
                if lo >= 0:
                    return nums[0]
                if hi <= 0:
                    return -nums[0]
            elif k == "mod":
                n, d = nums
                if self.ev.expr(n)[0] >= 0 and self.ev.expr(d - n)[0] >= 1:
                    return n
            args = list(nums)
        same = len(args) == len(a.args) and all(x is y for x, y in zip(args, a.args, strict=True))
        out = Expr.atom(a) if same else rebuild(k, args)
        at = out.as_atom()
        if isinstance(at, Op):
            lo, hi = self.ev.atom(at)
            if lo == hi:
                return Expr.const(lo)
        return None if same else out

    def _dominant(self, k: str, args: list[Expr]) -> list[Expr]:
        """Drop arguments another argument provably beats."""
        keep: list[Expr] = []
        for i, x in enumerate(args):
            beaten = False
            for j, y in enumerate(args):
                if i == j:
                    continue
                lo, hi = self.ev.expr(y - x)
                wins = lo >= 0 if k == "max" else hi <= 0
                if wins and not (lo == hi == 0 and j > i):  # equal everywhere: keep the first
                    beaten = True
                    break
            if not beaten:
                keep.append(x)
        return keep if len(keep) < len(args) else args

    def formula(self, f: Formula) -> Formula:
        if isinstance(f, Cmp):
            lhs, rhs = self.expr(f.lhs), self.expr(f.rhs)
            t = _cmp_truth(f.op, self.ev.expr(lhs - rhs))
            if t is not None:
                return BoolConst(t)
            if lhs is f.lhs and rhs is f.rhs:
                return f
            return _cmp(f.op, lhs, rhs)
        if isinstance(f, BoolOp):
            return with_args(f, [self.formula(x) for x in f.args])
        return f


_SAME = object()
_SIMPLIFIED: dict = {}  # (x, bounds of x's symbols) -> simplified x, or _SAME
_FREE: dict = {}  # x -> its symbols, sorted
_MEMO_SIZE = 1 << 15


@overload
def simplify(x: Expr, box: Mapping[str, Interval]) -> Expr: ...
@overload
def simplify(x: Formula, box: Mapping[str, Interval]) -> Formula: ...
def simplify(x: Expr | Formula, box: Mapping[str, Interval]) -> Expr | Formula:
    """Resolve what the bounds in ``box`` decide (an identity on every point of ``box``).

    Memoised: the result depends only on ``x`` and the bounds of its own symbols,
    and the verifier prepares many assumption sets that share most facts (each
    preparation re-simplifies every fact after each round of bound propagation).
    An unchanged input returns the caller's own object, as without the memo.
    """
    syms = _FREE.get(x)
    if syms is None:
        if len(_FREE) >= _MEMO_SIZE:
            _FREE.clear()
        syms = _FREE[x] = tuple(sorted(x.free_symbols()))
    key = (x, tuple([box.get(s) for s in syms]))
    got = _SIMPLIFIED.get(key)
    if got is None:
        s = _Simplifier(box)
        out = s.expr(x) if isinstance(x, Expr) else s.formula(x)
        if len(_SIMPLIFIED) >= _MEMO_SIZE:
            _SIMPLIFIED.clear()
        got = _SIMPLIFIED[key] = _SAME if out is x else out
    if got is _SAME:
        return x
    assert isinstance(got, (Expr, Formula)), got  # the memo holds results or _SAME
    return got


def clear_memo() -> None:
    """Forget memoised simplifications (for timing from a cold start)."""
    _SIMPLIFIED.clear()
    _FREE.clear()


# -------------------------------------------------------------------------- divisors


def divisors(x: Expr | Formula) -> list[tuple[Formula, Expr]]:
    """``(guard, divisor)`` for each symbolic (or zero) divisor, innermost first."""
    out: list[tuple[Formula, Expr]] = []
    _divs(x, TRUE, out)
    seen: set = set()
    uniq = []
    for g, d in out:
        if (g, d) not in seen:
            seen.add((g, d))
            uniq.append((g, d))
    return uniq


def _divs(x, guard: Formula, out: list) -> None:
    if isinstance(x, Expr):
        for m, _ in x.terms:
            for a, _p in m:
                if isinstance(a, Op):
                    _divs_atom(a, guard, out)
    elif isinstance(x, Cmp):
        _divs(x.lhs, guard, out)
        _divs(x.rhs, guard, out)
    elif isinstance(x, BoolOp):
        if x.kind == "not":
            _divs(x.args[0], guard, out)
            return
        for i, arg in enumerate(x.args):
            before = x.args[:i]  # Python evaluates arg i only if these were true (and) / false (or)
            g = conj(guard, *before) if x.kind == "and" else conj(guard, *map(negate, before))
            _divs(arg, g, out)


def _divs_atom(a: Op, guard: Formula, out: list) -> None:
    if a.kind == "where":
        c, x, y = a.args
        _divs(c, guard, out)
        _divs(x, conj(guard, c), out)
        _divs(y, conj(guard, negate(c)), out)
        return
    for arg in a.args:
        _divs(arg, guard, out)
    d = a.args[1] if a.kind in _DIVS else None
    if d is not None and not (d.is_const and d.const_value):  # symbolic, or a constant 0
        out.append((guard, d))


def division_atoms(x, kinds: tuple[str, ...] = ("floordiv", "mod")) -> list[Op]:
    """Every division atom of the given ``kinds`` in ``x`` (an expression or formula, nested
    ones too), once each, in order of appearance (an atom before the ones in its arguments)."""
    out: list[Op] = []
    _division_atoms(x, kinds, out)
    return out


def _division_atoms(x, kinds, out: list) -> None:
    if isinstance(x, Expr):
        for m, _c in x.terms:
            for a, _p in m:
                if not isinstance(a, Op):
                    continue
                if a.kind in kinds and a not in out:
                    out.append(a)
                for arg in a.args:
                    _division_atoms(arg, kinds, out)
    elif isinstance(x, Cmp):
        _division_atoms(x.lhs, kinds, out)
        _division_atoms(x.rhs, kinds, out)
    elif isinstance(x, BoolOp):
        for arg in x.args:
            _division_atoms(arg, kinds, out)


def side_conditions(xs) -> list[Formula]:
    """``guard -> divisor != 0`` for every symbolic divisor of ``xs``, as formulas."""
    out: list[Formula] = []
    for x in xs:
        for g, d in divisors(x):
            f = disj(negate(g), ne(d, 0))
            if f not in out:
                out.append(f)
    return out
