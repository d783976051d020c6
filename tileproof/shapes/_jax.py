"""Conversion to and from ``jax.export`` symbolic dimension expressions.

JAX is imported inside the functions: ``tileproof.shapes`` itself must import
without it.  JAX spells ``//`` and ``%`` as ``floordiv``/``mod`` factors and has
no ``cdiv``, ``abs`` or ``where``: ``cdiv(n, d)`` becomes ``-((-n) // d)``
(JAX's own spelling of a ceiling), ``abs(x)`` becomes ``max(x, -x)``, and
``where`` has no JAX counterpart (a :class:`ShapeError`).
"""

from __future__ import annotations

from ._expr import Expr, ShapeError, Sym, _rebuild, as_expr, sym

__all__ = ["from_jax", "to_jax"]


def to_jax(expr, scope=None):
    """``expr`` (an Expr, int or string) as a JAX dimension: an ``int`` or a ``_DimExpr``.

    Symbols are created in ``scope`` (a ``jax.export.SymbolicScope``; a fresh
    one when omitted), so that they combine with other dimensions of that scope.
    """
    import jax.export

    e = as_expr(expr)
    if scope is None:
        scope = jax.export.SymbolicScope()
    dims: dict[str, object] = {}

    def var(name: str):
        if name not in dims:
            (dims[name],) = jax.export.symbolic_shape(name, scope=scope)
        return dims[name]

    return _to_jax(e, var)


def _to_jax(e: Expr, var):
    from jax import core

    total = 0
    for m, c in e.terms:
        term = c
        for a, p in m:
            t = _atom_to_jax(a, var, core)
            for _ in range(p):
                term = term * t
        total = total + term
    return total


def _atom_to_jax(a, var, core):
    if isinstance(a, Sym):
        return var(a.name)
    args = a.args
    k = a.kind
    if k == "where":
        raise ShapeError(f"{Expr.atom(a)}: JAX symbolic shapes have no 'where'")
    xs = [_to_jax(x, var) for x in args]
    if k == "floordiv":
        return xs[0] // xs[1]
    if k == "mod":
        return xs[0] % xs[1]
    if k == "cdiv":
        return -((-xs[0]) // xs[1])
    if k == "abs":
        return core.max_dim(xs[0], -xs[0])
    out = xs[0]
    for x in xs[1:]:
        out = core.max_dim(out, x) if k == "max" else core.min_dim(out, x)
    return out


def from_jax(dim) -> Expr:
    """A JAX dimension (``int`` or symbolic expression) as a tileproof :class:`Expr`."""
    if isinstance(dim, int) and not isinstance(dim, bool):
        return Expr.const(dim)
    try:
        terms = dim._sorted_terms
    except AttributeError:
        raise ShapeError(f"not a JAX dimension expression: {dim!r}") from None
    out = Expr.const(0)
    for term, coeff in terms:
        t = Expr.const(coeff)
        for factor, power in term._factors:
            t = t * _factor_from_jax(factor) ** power
        out = out + t
    return out


def _factor_from_jax(f) -> Expr:
    if f.var is not None:
        return sym(f.var)
    ops = [from_jax(o) for o in f.operands]
    kind = f.operation
    if kind in ("floordiv", "mod", "max", "min"):  # the same operations as ours
        return _rebuild(kind, ops)
    raise ShapeError(f"unsupported JAX dimension operation {kind!r} in {f}")
