"""Expressions and conditions of the model evaluated on numpy arrays (one value per row).

Floor semantics (``//``, ``%``, ``cdiv``) as in :mod:`tileproof.shapes`; a division by
zero is reported, never silently 0.  With ``int64`` arrays this is fast; with arrays of
Python ints (``dtype=object``) it is exact at any magnitude, which is what a run that
confirms a counterexample uses.

numpy's ``int64`` arithmetic wraps silently past ``2**63`` (``4 * 2**62`` is ``0``), which
would draw an out-of-bounds store as a store to element 0.  So every sum and product that
involves an ``int64`` array is checked first on magnitudes in floating point: an operand
or a result at or past :data:`LIMIT` (``2**62``, a margin far wider than the rounding of
the check) raises :class:`Wide` instead of wrapping.  Python-int and ``object`` values
are exact and not checked.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import shapes
from ..shapes._expr import BoolConst, BoolOp, Cmp, Op, Sym
from ._data import RunError

__all__ = ["LIMIT", "Wide", "evaluate", "holds", "in_range"]

Env = Mapping[str, object]
LIMIT = 2**62  # largest magnitude an int64 row may take part in arithmetic with


class Wide(RunError):
    """A value of the run leaves the 64-bit range its rows are computed in."""


def _is_rows(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind in "iu"


def _too_big(v) -> bool:
    if isinstance(v, (int, np.integer)):
        return abs(int(v)) >= LIMIT
    return bool(np.any(np.abs(np.asarray(v, dtype=np.float64)) >= LIMIT))


def in_range(v, what) -> None:
    """Raise :class:`Wide` if ``v`` (an int, or ``int64`` rows) reaches :data:`LIMIT`."""
    if (_is_rows(v) or isinstance(v, (int, np.integer))) and _too_big(v):
        _wide(what)


def _wide(what) -> None:
    raise Wide(
        f"{what} reaches 2**62 or more at these sizes: the run computes in 64-bit integers "
        "and would wrap",
        None,
        "Choose smaller sizes for the picture.",
    )


def _checked(op: str, a, b, what):
    """``a + b`` or ``a * b``; checked as the module docstring says when int64 rows take part."""
    if not (_is_rows(a) or _is_rows(b)):
        return a + b if op == "+" else a * b
    if _too_big(a) or _too_big(b):
        _wide(what)
    fa = np.abs(np.asarray(a, dtype=np.float64))
    fb = np.abs(np.asarray(b, dtype=np.float64))
    if np.any((fa + fb if op == "+" else fa * fb) >= LIMIT):
        _wide(what)
    return a + b if op == "+" else a * b


def evaluate(expr: shapes.Expr, env: Env):
    """The value of ``expr`` with numpy arrays (or ints) for symbols; floor semantics."""
    total = 0
    for mono, coef in expr.terms:
        value = coef
        for atom, power in mono:
            x = _atom(atom, env)
            for _ in range(power):
                value = _checked("*", value, x, expr)
        total = _checked("+", total, value, expr)
    return total


def _atom(atom, env: Env):
    if isinstance(atom, Sym):
        try:
            return env[atom.name]
        except KeyError:
            raise RunError(
                f"no value for {atom.name!r}", None, f"Give it with --sizes {atom.name}=... ."
            ) from None
    assert isinstance(atom, Op)
    if atom.kind == "where":
        c, a, b = atom.args
        cond, x, y = holds(c, env), evaluate(a, env), evaluate(b, env)
        if _plain(x, y) and not isinstance(cond, np.ndarray):
            return x if cond else y
        if _is_rows(x) or _is_rows(y):  # a huge int beside int64 rows would not fit
            in_range(x, _atom_text(atom))
            in_range(y, _atom_text(atom))
        return np.where(cond, x, y)
    vals = [evaluate(a, env) for a in atom.args]
    if _plain(*vals):  # no row depends on it: Python ints, exact at any magnitude
        return _scalar(atom, vals)
    if any(_is_rows(v) for v in vals):  # -n, abs(-2**63), a huge int beside int64 rows
        for v in vals:
            in_range(v, _atom_text(atom))
    if atom.kind in ("floordiv", "mod", "cdiv"):
        n, d = vals
        if np.any(np.asarray(d) == 0):
            raise RunError(
                f"{_atom_text(atom)} divides by zero at these sizes",
                None,
                "Choose sizes inside the kernel's domain.",
            )
        if atom.kind == "floordiv":
            return np.floor_divide(n, d)
        if atom.kind == "mod":
            return np.mod(n, d)
        return -np.floor_divide(-n, d)  # on Python ints too (exact)
    if atom.kind == "min":
        return _reduce(np.minimum, vals)
    if atom.kind == "max":
        return _reduce(np.maximum, vals)
    if atom.kind == "abs":
        return np.abs(vals[0])
    raise AssertionError(atom.kind)


def _plain(*vals) -> bool:
    return all(isinstance(v, int) for v in vals)


def _scalar(atom, vals: list[int]) -> int:
    if atom.kind in ("floordiv", "mod", "cdiv"):
        n, d = vals
        if d == 0:
            raise RunError(
                f"{_atom_text(atom)} divides by zero at these sizes",
                None,
                "Choose sizes inside the kernel's domain.",
            )
        return n // d if atom.kind == "floordiv" else n % d if atom.kind == "mod" else -(-n // d)
    if atom.kind in ("min", "max"):
        return (min if atom.kind == "min" else max)(vals)
    if atom.kind == "abs":
        return abs(vals[0])
    raise AssertionError(atom.kind)


def _atom_text(atom) -> str:
    return str(shapes.Expr.atom(atom))


def _reduce(fn, vals):
    out = vals[0]
    for v in vals[1:]:
        out = fn(out, v)
    return out


_CMP = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def holds(cond: shapes.Formula, env: Env):
    """The truth of ``cond`` (a bool or a bool array) under ``env``."""
    if isinstance(cond, Cmp):
        return _CMP[cond.op](evaluate(cond.lhs, env), evaluate(cond.rhs, env))
    if isinstance(cond, BoolConst):
        return np.bool_(cond.value)
    assert isinstance(cond, BoolOp)
    parts = [holds(a, env) for a in cond.args]
    if cond.kind == "not":
        return np.logical_not(parts[0])
    return _reduce(np.logical_and if cond.kind == "and" else np.logical_or, parts)
