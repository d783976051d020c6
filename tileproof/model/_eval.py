"""Expressions and conditions of the model evaluated on numpy arrays (one value per row).

Floor semantics (``//``, ``%``, ``cdiv``) as in :mod:`tileproof.shapes`; a division by
zero is reported, never silently 0.  With ``int64`` arrays this is fast; with arrays of
Python ints (``dtype=object``) it is exact at any magnitude, which is what a run that
confirms a counterexample uses.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .. import shapes
from ..shapes._expr import BoolConst, BoolOp, Cmp, Op, Sym
from ._data import RunError

__all__ = ["evaluate", "holds"]

Env = Mapping[str, object]


def evaluate(expr: shapes.Expr, env: Env):
    """The value of ``expr`` with numpy arrays (or ints) for symbols; floor semantics."""
    total = 0
    for mono, coef in expr.terms:
        value = coef
        for atom, power in mono:
            x = _atom(atom, env)
            value = value * (x if power == 1 else x**power)
        total = total + value
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
        return np.where(cond, x, y)
    vals = [evaluate(a, env) for a in atom.args]
    if _plain(*vals):  # no row depends on it: Python ints, exact at any magnitude
        return _scalar(atom, vals)
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
