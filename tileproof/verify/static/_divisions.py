"""A decision strategy: divisions replaced by fresh names with their defining facts.

A witness that splits a reduction (``split = e // pages_per_split``) nests
divisions by sizes and data that the solver rarely decides as they are.
:func:`proves_without_divisions` rewrites the problem, innermost division
first, into one free of divisions and asks the solver once; only a proof is
used.  Why each rewriting step keeps a proof a proof (``G`` proved ``>= 1``
under the original assumptions first; a constant divisor must be ``>= 1``):

* ``n // G`` becomes a fresh ``a`` (any integer) with ``G*a <= n <= G*a + G - 1``,
  ``cdiv(n, G)`` one with ``G*a - G + 1 <= n <= G*a``, ``n % G`` is ``n - G*(n // G)``:
  for ``G >= 1`` exactly one integer satisfies each definition, so the new
  problem has exactly the points of the old (extended by ``a``).
* ``(x + k) // G`` and ``% G`` for a symbol ``x`` and ``k`` in ``{-1, 0, 1}``:
  ``x = G*q + r, 0 <= r < G`` everywhere, the quotient read off exactly
  (:func:`_quotient`); ``x``'s own domain may only widen (its default ``x >= 1``
  is gone), which keeps a proof a proof.
* Nonlinear *domain* assumptions may be dropped (fewer hypotheses), their
  lower-bound declarations restored (:func:`tileproof.shapes._context.weaker`)
  and ``s >= 1`` added for each size the whole problem proves positive; symbols
  assumed equal are merged, the class keeping the *smaller* declared bound.

``tests/test_verify_strategies.py`` compares it with enumeration.
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import shapes
from ...shapes._context import declared_lower_bounds, weaker
from ...shapes._normal import division_atoms
from ._decide import INT64_MIN, Decider, equal_symbols, nonlinear
from ._witness import replace_atoms

__all__ = ["proves_without_divisions"]


def proves_without_divisions(
    an: Decider,
    q: shapes.Formula,
    assume: Sequence[shapes.Formula],
    *,
    domain: Sequence[shapes.Formula] = (),
    sizes: Sequence[str] = (),
) -> bool:
    """A proof of ``q`` through an equivalent problem free of divisions, or False.

    A witness that splits a reduction (``split = e // pages_per_split``) nests divisions
    by sizes and data that the solver rarely decides as they are.  Each division atom,
    innermost first, becomes a fresh name ``a`` with its definition as facts (for a
    divisor ``G`` proved ``>= 1``: ``G*a <= n <= G*a + G - 1`` for ``n // G``,
    ``G*a - G + 1 <= n <= G*a`` for ``cdiv(n, G)``; ``n % G`` is ``n - G*(n // G)``): an
    equivalent problem.  Non-linear domain assumptions (a split count's host formula) are
    dropped, with ``s >= 1`` added for each size the full domain proves positive: fewer
    hypotheses, so a proof is still a proof.  Only ``proved`` is used.

    ``domain`` is the part of ``assume`` that may be dropped that way, ``sizes`` the names
    it may give ``s >= 1``.
    """
    if an._spent():
        return False
    dom = set(domain)
    kept = [f for f in assume if not (f in dom and nonlinear(f))]
    if len(kept) < len(assume):
        names: set[str] = set(q.free_symbols())
        for f in kept:
            names |= f.free_symbols()
        for n in sorted(names):
            if n in sizes:
                one = shapes.ge(shapes.sym(n), 1)
                if an.decide(one, tuple(assume), quick=False).proved:
                    kept.append(one)
        kept = weaker(assume, kept)  # no domain narrows: a dropped declaration is restored
    ren = equal_symbols(kept)  # x == y between names: one name (fewer atoms to abstract)
    if ren:
        low = declared_lower_bounds(kept)
        kept = [f.subs(ren) for f in kept] + [
            shapes.ge(x, min(low.get(y, 1), low.get(x.as_symbol(), 1))) for y, x in ren.items()
        ]
        kept = [
            f
            for f in kept
            if f != shapes.conj()
            and not (isinstance(f, shapes.Cmp) and f.op in ("==", "<=", ">=") and f.lhs == f.rhs)
        ]
        q = q.subs(ren)
    forms = [q, *kept]
    facts: list[shapes.Formula] = []
    back: dict[str, shapes.Expr] = {}
    made: dict = {}
    for _round in range(64):
        atom = _innermost(forms)
        if atom is None:
            break
        n, g = atom.args
        if not g.is_const:
            g_orig = g.subs(back) if back else g
            if not an.decide(shapes.ge(g_orig, 1), tuple(assume)).proved:
                return False
        elif g.const_value < 1:
            return False
        kind = atom.kind
        split = _split_of(n, g) if kind in ("floordiv", "mod") and not g.is_const else None
        if split is not None:  # x = G*q + r: (x + k) // G is q plus a where() of r
            x = split[0]
            qs, rs = shapes.sym(f"_ab{len(made)}q"), shapes.sym(f"_ab{len(made)}r")
            made[("split", x, g)] = (qs, rs)
            table = {}
            for f in forms + facts:
                for b in _divisions_in(f):
                    if b.kind in ("floordiv", "mod") and b.args[1] == g:
                        got = _split_of(b.args[0], g)
                        if got is not None and got[0] == x:
                            table[b] = _quotient(b, qs, rs, g, got[1])
            facts += [shapes.ge(qs, INT64_MIN), shapes.ge(rs, 0), shapes.lt(rs, g)]
            g_orig = g.subs(back) if back else g
            back[qs.as_symbol()] = shapes.floordiv(shapes.sym(x), g_orig)
            back[rs.as_symbol()] = shapes.mod(shapes.sym(x), g_orig)
            sub = {x: g * qs + rs}
            forms = [replace_atoms(f, table, {}).subs(sub) for f in forms]
            facts = [replace_atoms(f, table, {}).subs(sub) for f in facts]
            continue
        key = ("floordiv" if kind == "mod" else kind, n, g)
        a = made.get(key)
        if a is None:
            a = shapes.sym(f"_ab{len(made)}")
            made[key] = a
            back[a.as_symbol()] = (
                shapes.floordiv(n, g) if key[0] == "floordiv" else shapes.cdiv(n, g)
            ).subs(back)
            facts.append(shapes.ge(a, INT64_MIN))
            if key[0] == "floordiv":
                facts += [shapes.le(g * a, n), shapes.le(n, g * a + g - 1)]
            else:
                facts += [shapes.le(g * a - g + 1, n), shapes.le(n, g * a)]
        repl = a if kind != "mod" else n - g * a
        forms = [replace_atoms(f, {atom: repl}, {}) for f in forms]
        facts = [replace_atoms(f, {atom: repl}, {}) for f in facts]
    else:
        return False
    if _innermost(forms + facts) is not None:
        return False
    d = an._prove(forms[0], [*forms[1:], *facts])  # counted against the check's solver budget
    return d.verdict == "proved"


def _quotient(atom, qs, rs, g, k: int) -> shapes.Expr:
    """``(x + k) // G`` (or ``%``) for ``x = G*q + r``, ``0 <= r < G``, ``k`` in ``{-1, 0, 1}``
    (``G >= 1``): exact."""
    quo = qs + (
        shapes.as_expr(0)
        if k == 0
        else shapes.where(shapes.eq(rs, 0), -1, 0)
        if k == -1
        else shapes.where(shapes.eq(rs, g - 1), 1, 0)
    )
    if atom.kind == "floordiv":
        return quo
    return g * qs + rs + k - g * quo


def _split_of(n: shapes.Expr, g: shapes.Expr):
    """``(x, k)`` when ``n`` is a symbol ``x`` plus ``k`` in ``{-1, 0, 1}``, ``x`` not in ``g``."""
    for k in (0, -1, 1):
        x = (n - k).as_symbol()
        if x is not None and x not in g.free_symbols():
            return x, k
    return None


def _innermost(forms):
    """A division atom (``//``, ``%``, ``cdiv``) whose arguments hold no division, or None."""
    for f in forms:
        for a in _divisions_in(f):
            if not any(_divisions_in(x) for x in a.args):
                return a
    return None


def _divisions_in(x) -> list:
    return division_atoms(x, kinds=("floordiv", "mod", "cdiv"))
