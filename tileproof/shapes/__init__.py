"""Symbolic shape arithmetic decided by z3: ``prove``, ``bounds`` and the expression algebra.

This package is the foundation of tileproof and imports nothing from its other
layers (nor JAX or z3 at import time).  Expressions are built from symbols
(``symbols("B S")``) or parsed from strings (``parse("cdiv(B*S, 64)")``).

``prove(query, assume)`` answers ``proved`` / ``refuted`` (with a re-checked
counterexample) / ``unknown`` (with the reason) / ``inconsistent``;
``bounds(expr, assume)`` gives the exact ``(lo, hi)``, ``None`` past
``±2**62``.  Symbols are integers ``>= 1`` unless an assumption ``NAME >= k``
with a literal ``k`` declares another lower bound; ``//`` and ``%`` floor as in
Python.

Division by zero.  Divisors are collected from a string *as written*, before
the normal form folds ``x // x`` to ``1`` or ``(y // x)*0`` to ``0``, with the
condition under which evaluation reaches them (``where``, short-circuit
``and``/``or``, chained comparisons).  A query that divides by zero at an
admissible point is ``refuted`` there, an assumption is false where it would
divide by zero, and ``bounds`` ranges over the admissible points where the
expression is defined.  An expression *object* is its normal form: what its
construction folded away (``floordiv(a*b, b)`` is ``a``) is not seen.

Limits (:mod:`._limits`): text length, syntax-tree size and nesting, literals
and constants below ``2**256``, exponents, terms after expansion.  Input past
them is a :class:`ShapeError` that states the limit (the CLI exits 2); z3 runs
under a deterministic resource limit and an ``unknown`` says which budget ran
out.
"""

from ._decide import Decision as Decision
from ._decide import bounds as bounds
from ._decide import prove as prove
from ._expr import BoolConst as BoolConst
from ._expr import BoolOp as BoolOp
from ._expr import Cmp as Cmp
from ._expr import Expr as Expr
from ._expr import Formula as Formula
from ._expr import ShapeError as ShapeError
from ._expr import as_expr as as_expr
from ._expr import cdiv as cdiv
from ._expr import conj as conj
from ._expr import disj as disj
from ._expr import eq as eq
from ._expr import floordiv as floordiv
from ._expr import ge as ge
from ._expr import gt as gt
from ._expr import le as le
from ._expr import lt as lt
from ._expr import maximum as maximum
from ._expr import minimum as minimum
from ._expr import mod as mod
from ._expr import ne as ne
from ._expr import negate as negate
from ._expr import sym as sym
from ._expr import symbols as symbols
from ._expr import where as where
from ._jax import from_jax as from_jax
from ._jax import to_jax as to_jax
from ._parse import coerce_formula as coerce_formula
from ._parse import parse as parse
from ._parse import parse_expr as parse_expr
from ._parse import parse_formula as parse_formula
