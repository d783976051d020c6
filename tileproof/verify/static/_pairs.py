"""Two instances of two accesses that touch one element: the hypotheses of races and double writes.

The index equality ``e_A(x1) = e_B(x2)`` is split into equalities of digits
(:mod:`._digits`) where each side's digit is proved in range under its own
context, and the two instances' reads of one input entry are made to agree
(:meth:`._context.Analysis.data_consistency`).
"""

from __future__ import annotations

from ... import shapes
from ._context import Analysis, Site
from ._digits import split as split_digits
from ._writers import reach

__all__ = ["digit_pairs", "pair"]


def digit_pairs(an: Analysis, a: Site, b: Site, ea: shapes.Expr, eb: shapes.Expr):
    """``ea = eb`` split into equalities of digits (see :mod:`._digits`)."""

    def private(atom) -> bool:
        return any(not an.is_shared(n) for n in shapes.Expr.atom(atom).free_symbols())

    def bounded(side: str, low: shapes.Expr, h: shapes.Expr) -> bool:
        site = a if side == "a" else b
        q = shapes.conj(shapes.ge(low, 0), shapes.lt(low, h))
        return an.decide(q, an.assume(reach(an, site), query=q), quick=True).status == "proved"

    return split_digits(ea, eb, private, bounded)


def pair(an: Analysis, a: Site, b: Site, tags=("1", "2")):
    """Both accesses reached (renamed apart) and touching one element; the two instances."""
    i1, i2 = an.instance(a, tags[0]), an.instance(b, tags[1])
    hyps = [i1(f) for f in reach(an, a)] + [i2(f) for f in reach(an, b)]
    for ea, eb in zip(a.node.element(), b.node.element()):
        for xa, xb in digit_pairs(an, a, b, ea, eb):
            hyps.append(shapes.eq(i1(xa), i2(xb)))
    if an.rank_var and an.rank_var not in an.extents:  # one device's memory
        hyps.append(shapes.eq(i1(shapes.sym(an.rank_var)), i2(shapes.sym(an.rank_var))))
    hyps += an.data_consistency(i1, i2, hyps)
    return i1, i2, hyps
