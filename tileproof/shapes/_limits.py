"""Explicit resource limits on the input of :mod:`tileproof.shapes`, outside the solver.

z3 runs under a deterministic resource limit (:mod:`._solver`); everything
before it — parsing, normalising, interval arithmetic — runs on Python
integers and recursion, which a hostile or generated input can exhaust:
``10**10**10`` or ``x**10000000`` would expand for ever, a literal past the
float range (``2**1100``) meets ``inf`` in interval arithmetic, and a
20,000-term sum or 3,000 nested minuses exceed Python's recursion.  So the
parser refuses such input up front with a :class:`ShapeError` that states the
limit, the offending token and its column (the CLI exits 2 for it).

The limits are far beyond what a shape expression needs (sizes and byte
offsets live below ``2**64``; exponents in shape arithmetic are small).
"""

from __future__ import annotations

__all__ = [
    "MAX_BITS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_NODES",
    "MAX_PRODUCT",
    "MAX_TERMS",
    "MAX_TEXT",
]

MAX_TEXT = 10_000  # characters of one expression or condition
MAX_NODES = 5_000  # syntax-tree nodes of one expression or condition
MAX_DEPTH = 64  # nesting depth (a chain a + b + c + ... counts once)
MAX_BITS = 256  # integer literals and constants: magnitude below 2**256
MAX_EXPONENT = 64  # a ** k: k at most 64
MAX_TERMS = 4_096  # terms of an expression after expansion
MAX_PRODUCT = 65_536  # term pairs one product may multiply out
