"""Parse shape expressions and conditions from strings — a whitelist over Python's ``ast``.

Nothing is evaluated: every node kind outside the grammar is a
:class:`ShapeError` naming the offending token and its column, so a typo in
a spec's domain is reported where it was written instead of surfacing later
as a wrong verdict.  JAX's constraint spellings (``floordiv(a, b)``,
``mod(a, b)``) are accepted so ``jax.export`` constraints paste in unchanged.
"""

from __future__ import annotations

import ast
from functools import lru_cache

from ._expr import (
    Expr,
    Formula,
    ShapeError,
    _cmp,
    as_expr,
    cdiv,
    conj,
    disj,
    floordiv,
    maximum,
    minimum,
    mod,
    negate,
    sym,
    where,
)

__all__ = ["parse", "parse_expr", "parse_formula"]

_CMP_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_FUNCS = {"min", "max", "abs", "cdiv", "floordiv", "mod", "where"}
_RESERVED = _FUNCS | {"and", "or", "not", "in", "True", "False"}


def _error(text: str, node: ast.AST | None, what: str) -> ShapeError:
    col = getattr(node, "col_offset", None)
    end = getattr(node, "end_col_offset", None)
    if col is not None:
        token = text[col:end] if end is not None else text[col:]
        caret = " " * col + "^" * max(1, (end or col + 1) - col)
        return ShapeError(
            f"{what}: {token!r} at column {col + 1} of shape expression {text!r}\n"
            f"    {text}\n    {caret}"
        )
    return ShapeError(f"{what} in shape expression {text!r}")


class _Builder:
    def __init__(self, text: str):
        self.text = text

    def fail(self, node: ast.AST, what: str) -> ShapeError:
        return _error(self.text, node, what)

    # Expressions ------------------------------------------------------------------
    def expr(self, node: ast.AST) -> Expr:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int):
                raise self.fail(node, "only integer literals are allowed")
            return Expr.const(node.value)
        if isinstance(node, ast.Name):
            if node.id in _RESERVED:
                raise self.fail(node, f"{node.id!r} is reserved and cannot name a symbol")
            return sym(node.id)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.expr(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand)
            raise self.fail(node, "a condition was found where an integer expression is needed")
        if isinstance(node, ast.BinOp):
            a, b = self.expr(node.left), self.expr(node.right)
            op = node.op
            try:
                if isinstance(op, ast.Add):
                    return a + b
                if isinstance(op, ast.Sub):
                    return a - b
                if isinstance(op, ast.Mult):
                    return a * b
                if isinstance(op, ast.FloorDiv):
                    return floordiv(a, b)
                if isinstance(op, ast.Mod):
                    return mod(a, b)
                if isinstance(op, ast.Pow):
                    if not b.is_const or b.const_value < 0:
                        raise self.fail(
                            node.right, "exponents must be non-negative integer literals"
                        )
                    return a**b.const_value
            except ShapeError as e:
                if "column" in str(e):
                    raise
                raise self.fail(node, str(e)) from None
            if isinstance(op, ast.Div):
                raise self.fail(node, "'/' is true division; use '//' (floor) or cdiv(a, b)")
            raise self.fail(node, f"operator {type(op).__name__} is not part of shape arithmetic")
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail(node, "a condition was found where an integer expression is needed")
        raise self.fail(node, "unsupported syntax")

    def call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
            raise self.fail(node.func, f"unknown function (allowed: {', '.join(sorted(_FUNCS))})")
        if node.keywords:
            raise self.fail(node.keywords[0], "keyword arguments are not allowed")
        name = node.func.id
        if name == "where":
            if len(node.args) != 3:
                raise self.fail(node, "where(cond, a, b) takes 3 arguments")
            return where(
                self.formula(node.args[0]), self.expr(node.args[1]), self.expr(node.args[2])
            )
        args = [self.expr(a) for a in node.args]
        arity = {"abs": 1, "cdiv": 2, "floordiv": 2, "mod": 2}.get(name)
        if arity is not None and len(args) != arity:
            raise self.fail(node, f"{name}() takes {arity} argument{'s' * (arity > 1)}")
        if not args:
            raise self.fail(node, f"{name}() needs arguments")
        try:
            if name == "min":
                return minimum(*args)
            if name == "max":
                return maximum(*args)
            if name == "abs":
                return abs(args[0])
            if name == "cdiv":
                return cdiv(*args)
            if name == "floordiv":
                return floordiv(*args)
            return mod(*args)
        except ShapeError as e:
            raise self.fail(node, str(e)) from None

    # Conditions -------------------------------------------------------------------
    def formula(self, node: ast.AST) -> Formula:
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            parts = [self.formula(v) for v in node.values]
            return conj(*parts) if isinstance(node.op, ast.And) else disj(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return negate(self.formula(node.operand))
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return conj() if node.value else disj()
        raise self.fail(node, "expected a condition (a comparison such as 'H % 8 == 0')")

    def compare(self, node: ast.Compare) -> Formula:
        parts: list[Formula] = []
        left = self.expr(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                if (
                    not isinstance(right_node, (ast.Set, ast.Tuple, ast.List))
                    or not right_node.elts
                ):
                    raise self.fail(
                        right_node, "'in' takes a literal set of values, e.g. D in {64, 128}"
                    )
                options = [_cmp("==", left, self.expr(e)) for e in right_node.elts]
                f = disj(*options)
                parts.append(negate(f) if isinstance(op, ast.NotIn) else f)
                continue
            name = _CMP_OPS.get(type(op))
            if name is None:
                raise self.fail(node, f"comparison {type(op).__name__} is not supported")
            right = self.expr(right_node)
            parts.append(_cmp(name, left, right))
            left = right
        return conj(*parts)

    def any(self, node: ast.AST) -> Expr | Formula:
        if isinstance(node, (ast.Compare, ast.BoolOp)) or (
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        ):
            return self.formula(node)
        return self.expr(node)


def _tree(text: str) -> ast.AST:
    if not isinstance(text, str):
        raise ShapeError(f"expected a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise ShapeError("empty shape expression")
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as e:
        col = (e.offset or 1) - 1
        token = stripped[col : col + 1] or "end of input"
        caret = " " * col + "^"
        raise ShapeError(
            f"syntax error: unexpected {token!r} at column {col + 1} of shape expression "
            f"{stripped!r}\n    {stripped}\n    {caret}"
        ) from None
    return tree.body


@lru_cache(maxsize=4096)
def parse(text: str) -> Expr | Formula:
    """An expression or a condition, whichever the text is."""
    return _Builder(text.strip()).any(_tree(text))


@lru_cache(maxsize=4096)
def parse_expr(text: str) -> Expr:
    return _Builder(text.strip()).expr(_tree(text))


@lru_cache(maxsize=4096)
def parse_formula(text: str) -> Formula:
    return _Builder(text.strip()).formula(_tree(text))


def coerce_formula(x: object) -> Formula:
    """A condition from a string, a Formula or a bool."""
    if isinstance(x, Formula):
        return x
    if isinstance(x, str):
        return parse_formula(x)
    if isinstance(x, bool):
        return conj() if x else disj()
    raise ShapeError(
        f"expected a condition (string or shapes formula), got {type(x).__name__} {x!r}; "
        "note that `==` between expressions compares structure — use shapes.eq(a, b)"
    )


def coerce_expr(x: object) -> Expr:
    return as_expr(x)
