"""Digit splitting: an index equality between two instances, split by place value.

Two instances touch one element when ``e(x1) = e(x2)``.  Index maps are sums of
*digits* at place values: ``16*M*i + 16*p + 8*lane + c`` with ``p < M``,
``lane < 2``, ``c < 8``.  Concluding ``i1 = i2, p1 = p2, ...`` from the sum's
equality is the uniqueness of a mixed-radix representation, which a solver
finds with symbolic place values (``16*M``) only after a long nonlinear
search, or not at all.

For a place value ``H`` of ``e`` (a constant times sizes) write ``e = H*X + L``.
For all integers,

    0 <= L1 < H  /\\  0 <= L2 < H   =>   (H*X1 + L1 = H*X2 + L2  <=>  X1 = X2 /\\ L1 = L2)

(``H*(X1 - X2) = L2 - L1`` lies strictly between ``-H`` and ``H``).  The two
guards are facts about *one* instance each, so they are proved once per
access under its own context — small, cacheable queries — and the pairwise
query then receives the digit equalities instead of the nonlinear sum.  A
guard that cannot be proved leaves the equality whole: splitting is an
equivalence only where it is applied.
"""

from __future__ import annotations

from collections.abc import Callable

from ... import shapes
from ...shapes._expr import split_by_monomial

__all__ = ["split"]

MAX_DEPTH = 4


def _place(m, c, private: Callable[[object], bool]) -> shapes.Expr:
    """The place value of a term: its constant times its factors private to no instance."""
    keep = tuple((a, p) for a, p in m if not private(a))
    return shapes.Expr({keep: c})


def _places(es, private) -> list[shapes.Expr]:
    out = []
    for e in es:
        for m, c in e.terms:
            if m == ():
                continue
            h = _place(m, abs(c), private)
            if h.is_const and h.const_value <= 1:
                continue
            if h not in out:
                out.append(h)
    # larger place values first: more size factors, then a larger constant
    out.sort(key=lambda h: (-sum(p for _, p in h.terms[0][0]), -abs(h.terms[0][1])))
    return out


def split(
    ea: shapes.Expr,
    eb: shapes.Expr,
    private: Callable[[object], bool],
    bounded: Callable[[str, shapes.Expr, shapes.Expr], bool],
    depth: int = MAX_DEPTH,
) -> list[tuple[shapes.Expr, shapes.Expr]]:
    """Pairs ``(xa, xb)`` whose equalities together are equivalent to ``ea = eb``.

    ``ea`` and ``eb`` are un-renamed index expressions of the two accesses;
    ``bounded(side, L, H)`` must return True only if ``0 <= L < H`` was proved
    under that side's context (``side`` is ``"a"`` or ``"b"``).
    """
    if depth <= 0 or (ea.is_const and eb.is_const):
        return [(ea, eb)]
    shared = [
        (m, c) for m, c in ea.terms if (m, c) in eb.terms and not any(private(a) for a, _p in m)
    ]
    if shared:  # x + t = y + t  <=>  x = y  for a term t that is the same in both
        common = shapes.Expr(shared)
        ea, eb = ea - common, eb - common
    for h in _places([ea, eb], private):
        xa, la = split_by_monomial(ea, h)
        xb, lb = split_by_monomial(eb, h)
        if (xa.is_const and xb.is_const) or (la.is_const and lb.is_const and la == lb == 0):
            continue
        if la == 0 and lb == 0:  # a common factor: h*xa = h*xb  <=>  xa = xb  (h > 0 proved)
            if bounded("a", shapes.as_expr(0), h):
                return split(xa, xb, private, bounded, depth - 1)
            continue
        if bounded("a", la, h) and bounded("b", lb, h):
            return split(xa, xb, private, bounded, depth - 1) + split(
                la, lb, private, bounded, depth - 1
            )
    return [(ea, eb)]
