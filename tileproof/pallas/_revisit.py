"""The TPU revisit rule as a size formula: an output block is revisited only on consecutive
iterations of the ``arbitrary`` axes (part of :mod:`tileproof.pallas._tpu`).

Mosaic's pipeline (``jax/_src/pallas/mosaic/pipeline.py``) keeps an output block in VMEM
while consecutive iterations map to it and writes it back when the index changes; a block
that comes back later starts from a buffer holding whatever the other buffer slot held, so
what the kernel reads there and what it does not overwrite is garbage.  The model indexes
an output's VMEM buffer by block index, which is exact exactly when no block comes back:

    forall progs, t1 < t2 < t3 (row-major over the arbitrary axes):
        idx(t1) == idx(t3)  =>  idx(t1) == idx(t2)

The index map is evaluated on symbols (:func:`index_exprs`); one that reads scalar-prefetch
tables or uses an operation not listed here is not evaluated, and the rule becomes an
``unsupported`` item (fail closed).
"""

from __future__ import annotations

import numpy as np

from .. import shapes

__all__ = ["index_exprs", "revisit_claim"]

_CMP = {
    "eq": shapes.eq,
    "ne": shapes.ne,
    "lt": shapes.lt,
    "le": shapes.le,
    "gt": shapes.gt,
    "ge": shapes.ge,
}


class _NoExpr(Exception):
    pass


def _as_int(x):
    if isinstance(x, shapes.Expr):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise _NoExpr("a boolean used as an integer")
    if isinstance(x, (shapes.BoolOp, shapes.Cmp, shapes.BoolConst)):
        return shapes.where(x, 1, 0)
    return shapes.as_expr(int(x))


def _as_bool(x):
    if isinstance(x, (shapes.BoolOp, shapes.Cmp, shapes.BoolConst)):
        return x
    if isinstance(x, (bool, np.bool_)):
        return shapes.BoolConst(bool(x))
    return shapes.ne(_as_int(x), 0)


def _trunc_div(a, b):
    """C division (``lax.div`` on integers): toward zero."""
    q = shapes.floordiv(a, b)
    exact = shapes.eq(shapes.mod(a, b), 0)
    same_sign = shapes.disj(
        shapes.conj(shapes.ge(a, 0), shapes.gt(b, 0)), shapes.conj(shapes.le(a, 0), shapes.lt(b, 0))
    )
    return shapes.where(shapes.disj(exact, same_sign), q, q + 1)


def _eval(jaxpr, args: list) -> list:
    env = dict(zip(jaxpr.invars, args))

    def read(v):
        if hasattr(v, "val"):
            return v.val if np.ndim(v.val) == 0 else _fail("an array constant")
        got = env.get(v)
        if got is None:
            _fail("a value read from a prefetch table")
        return got

    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        xs = [read(v) for v in eqn.invars]
        if name in ("pjit", "jit", "closed_call"):
            inner = eqn.params["jaxpr"]
            nm = eqn.params.get("name", "")
            if nm == "floor_divide":
                out = [shapes.floordiv(_as_int(xs[0]), _as_int(xs[1]))]
            elif nm == "remainder":
                out = [shapes.mod(_as_int(xs[0]), _as_int(xs[1]))]
            else:
                out = _eval(inner.jaxpr, xs)
        elif name == "add":
            out = [_as_int(xs[0]) + _as_int(xs[1])]
        elif name == "sub":
            out = [_as_int(xs[0]) - _as_int(xs[1])]
        elif name == "mul":
            out = [_as_int(xs[0]) * _as_int(xs[1])]
        elif name == "neg":
            out = [-_as_int(xs[0])]
        elif name == "max":
            out = [shapes.maximum(_as_int(xs[0]), _as_int(xs[1]))]
        elif name == "min":
            out = [shapes.minimum(_as_int(xs[0]), _as_int(xs[1]))]
        elif name == "div":
            out = [_trunc_div(_as_int(xs[0]), _as_int(xs[1]))]
        elif name == "rem":
            a, b = _as_int(xs[0]), _as_int(xs[1])
            out = [a - b * _trunc_div(a, b)]
        elif name == "sign":
            a = _as_int(xs[0])
            out = [shapes.where(shapes.gt(a, 0), 1, shapes.where(shapes.lt(a, 0), -1, 0))]
        elif name in _CMP:
            out = [_CMP[name](_as_int(xs[0]), _as_int(xs[1]))]
        elif name == "and":
            out = [shapes.conj(_as_bool(xs[0]), _as_bool(xs[1]))]
        elif name == "or":
            out = [shapes.disj(_as_bool(xs[0]), _as_bool(xs[1]))]
        elif name == "not":
            out = [shapes.negate(_as_bool(xs[0]))]
        elif name == "select_n":
            pred, cases = xs[0], xs[1:]
            if len(cases) != 2:
                _fail("select_n of more than two cases")
            out = [shapes.where(_as_bool(pred), _as_int(cases[1]), _as_int(cases[0]))]
        elif name == "convert_element_type":
            dt = np.dtype(eqn.params["new_dtype"])
            if dt == np.bool_:
                out = [_as_bool(xs[0])]
            elif np.issubdtype(dt, np.integer) and dt.itemsize >= 4:
                out = [_as_int(xs[0])]  # the index map's own overflow is checked in the body
            else:
                _fail(f"a conversion to {dt}")
        elif name in ("copy", "copy_p"):
            out = [xs[0]]
        else:
            _fail(f"the operation {name}")
        env.update(zip(eqn.outvars, out))
    return [_as_int(read(v)) for v in jaxpr.outvars]


def _fail(what: str):
    raise _NoExpr(what)


def index_exprs(index_map, grid_syms: list) -> tuple[list | None, str]:
    """The block indices as size expressions of the grid symbols, or (None, why not)."""
    jx = index_map.jaxpr
    args = list(grid_syms) + [None] * (len(jx.invars) - len(grid_syms))
    try:
        return _eval(jx, args), ""
    except (_NoExpr, shapes.ShapeError, TypeError, ValueError) as e:
        return None, str(e)


def _lex_lt(a: list, b: list):
    return shapes.disj(
        *(
            shapes.conj(*(shapes.eq(x, y) for x, y in zip(a[:j], b[:j])), shapes.lt(a[j], b[j]))
            for j in range(len(a))
        )
    )


def revisit_claim(name: str, index_map, grid: list, par: list[int], arb: list[int]):
    """``(formula, (shown names, their ranges))`` of the revisit rule for one output, or
    ``(None, why)``."""
    prog = {a: shapes.sym(f"pid{a}") for a in par}
    iters = [{a: shapes.sym(f"visit{t}_k{a}") for a in arb} for t in (1, 2, 3)]
    idx = []
    for it in iters:
        syms = [prog[a] if a in prog else it[a] for a in range(len(grid))]
        got, why = index_exprs(index_map, syms)
        if got is None:
            return None, why
        idx.append(got)
    ranges = [shapes.conj(shapes.ge(s, 0), shapes.lt(s, grid[a])) for a, s in prog.items()]
    for it in iters:
        ranges += [shapes.conj(shapes.ge(s, 0), shapes.lt(s, grid[a])) for a, s in it.items()]
    order = [
        _lex_lt([iters[0][a] for a in arb], [iters[1][a] for a in arb]),
        _lex_lt([iters[1][a] for a in arb], [iters[2][a] for a in arb]),
    ]
    back = shapes.conj(*(shapes.eq(x, y) for x, y in zip(idx[0], idx[2])))
    stay = shapes.conj(*(shapes.eq(x, y) for x, y in zip(idx[0], idx[1])))
    formula = shapes.disj(shapes.negate(shapes.conj(*order, back)), stay)
    shown = [str(s) for s in prog.values()] + [str(s) for it in iters for s in it.values()]
    # the ranges are assumptions, not premises: a symbol's default lower bound is 1
    return formula, (shown, ranges)
