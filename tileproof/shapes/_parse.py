"""Parse shape expressions and conditions from strings — a whitelist over Python's ``ast``.

Nothing is evaluated: every node kind outside the grammar is a
:class:`ShapeError` naming the offending token and its column, so a typo in
a spec's domain is reported where it was written instead of surfacing later
as a wrong verdict.  JAX's constraint spellings (``floordiv(a, b)``,
``mod(a, b)``) are accepted so ``jax.export`` constraints paste in unchanged.

The normal form folds on construction (``(a*b) // b`` is ``a``, ``x*0`` is
``0``, ``... and False`` is ``False``), which is an identity only where every
divisor is non-zero.  So :func:`written` also records, from the syntax tree
*before* any folding, every divisor with the condition under which Python's
evaluation reaches it (``where`` branches, short-circuit ``and``/``or``,
chained comparisons), every symbol the text names, and can evaluate the text
exactly as written; :mod:`._decide` uses these to refute a query that divides
by zero and to re-check every counterexample on the text itself.  A divisor
that folds to the constant 0 is kept as a raw operation (evaluating it raises
``ZeroDivisionError``) instead of failing the parse: where evaluation reaches
it, ``prove`` refutes, as for any other zero divisor.

Input size is capped (:mod:`._limits`): text length, syntax-tree size and
nesting, literal magnitude, exponents, and terms after expansion; each limit
is a :class:`ShapeError` that names it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import lru_cache

from . import _limits as L
from ._expr import (
    TRUE,
    Expr,
    Formula,
    Op,
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

__all__ = ["Written", "parse", "parse_expr", "parse_formula", "written"]

_CMP_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_FUNCS = {"min", "max", "abs", "cdiv", "floordiv", "mod", "where"}
_RESERVED = _FUNCS | {"and", "or", "not", "in", "True", "False"}
_DIV_BUILD = {"floordiv": floordiv, "mod": mod, "cdiv": cdiv}


def _error(text: str, node: ast.AST | None, what: str) -> ShapeError:
    col = getattr(node, "col_offset", None)
    end = getattr(node, "end_col_offset", None)
    if col is not None:
        token = text[col:end] if end is not None else text[col:]
        if len(token) > 60:
            token = token[:57] + "..."
        shown = text if len(text) <= 200 else None
        if shown is None:
            return ShapeError(f"{what}: {token!r} at column {col + 1} of a shape expression")
        caret = " " * col + "^" * max(1, (end or col + 1) - col)
        return ShapeError(
            f"{what}: {token!r} at column {col + 1} of shape expression {text!r}\n"
            f"    {text}\n    {caret}"
        )
    shown = repr(text) if len(text) <= 200 else f"of {len(text)} characters"
    return ShapeError(f"{what} in shape expression {shown}")


def _chain(node: ast.BinOp) -> tuple[ast.expr, list[ast.BinOp]]:
    """A left-deep chain ``x0 op1 x1 op2 x2 ...`` as its first operand and its BinOp nodes."""
    links = []
    cur: ast.expr = node
    while isinstance(cur, ast.BinOp):
        links.append(cur)
        cur = cur.left
    links.reverse()
    return cur, links


def _check_size(text: str, tree: ast.AST) -> None:
    """Node count, nesting depth and literal magnitude, without recursion."""
    count = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > L.MAX_NODES:
            raise ShapeError(
                f"shape expression too large: more than {L.MAX_NODES} syntax nodes "
                f"(the limit; {len(text)} characters)"
            )
        if depth > L.MAX_DEPTH:
            raise _error(
                text, node, f"shape expression nested deeper than {L.MAX_DEPTH} levels (the limit)"
            )
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            if not isinstance(node.value, bool) and abs(node.value) >= 1 << L.MAX_BITS:
                raise _error(text, node, f"integer literal beyond the limit of 2**{L.MAX_BITS}")
        for child in ast.iter_child_nodes(node):
            # the left operand of a binary operation continues its chain: a + b + c is flat
            same = isinstance(node, ast.BinOp) and child is node.left
            stack.append((child, depth if same else depth + 1))


def _check_const(text: str, node: ast.AST, e: Expr) -> Expr:
    for _m, c in e.terms:
        if abs(c) >= 1 << L.MAX_BITS:
            raise _error(
                text,
                node,
                f"a constant of this expression reaches {abs(c).bit_length()} "
                f"bits, beyond the limit of 2**{L.MAX_BITS}",
            )
    if len(e.terms) > L.MAX_TERMS:
        raise _error(
            text, node, f"expands to {len(e.terms)} terms, beyond the limit of {L.MAX_TERMS}"
        )
    return e


class _Builder:
    """Builds the normal form and records divisors (with guards) and names as written."""

    def __init__(self, text: str):
        self.text = text
        self.guard: Formula = TRUE
        self.divs: list[tuple[Formula, Expr, str]] = []
        self.names: set[str] = set()

    def fail(self, node: ast.AST, what: str) -> ShapeError:
        return _error(self.text, node, what)

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.unparse(node)

    # Divisions ---------------------------------------------------------------------
    def divide(self, kind: str, node: ast.AST, dnode: ast.AST, n: Expr, d: Expr) -> Expr:
        """``n kind d``; records ``d`` (unless a non-zero constant) with the current guard."""
        if not (d.is_const and d.const_value != 0):
            self.divs.append((self.guard, d, self.segment(dnode)))
        if d.is_const and d.const_value == 0:
            return Expr.atom(Op(kind, (n, d)))  # raises ZeroDivisionError if ever evaluated
        try:
            return _DIV_BUILD[kind](n, d)
        except ShapeError as e:
            raise self.fail(node, str(e)) from None

    # Expressions ------------------------------------------------------------------
    def expr(self, node: ast.AST) -> Expr:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int):
                raise self.fail(node, "only integer literals are allowed")
            return Expr.const(node.value)
        if isinstance(node, ast.Name):
            if node.id in _RESERVED:
                raise self.fail(node, f"{node.id!r} is reserved and cannot name a symbol")
            self.names.add(node.id)
            return sym(node.id)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.expr(node.operand)
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand)
            raise self.fail(node, "a condition was found where an integer expression is needed")
        if isinstance(node, ast.BinOp):
            first, links = _chain(node)
            acc = self.expr(first)
            for link in links:  # iteratively: a 2,000-term sum needs no deep recursion
                acc = self.binop(link, acc, self.expr(link.right))
            return acc
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            raise self.fail(node, "a condition was found where an integer expression is needed")
        raise self.fail(node, "unsupported syntax")

    def binop(self, node: ast.BinOp, a: Expr, b: Expr) -> Expr:
        op = node.op
        if isinstance(op, ast.Add):
            return _check_const(self.text, node, a + b)
        if isinstance(op, ast.Sub):
            return _check_const(self.text, node, a - b)
        if isinstance(op, ast.Mult):
            if len(a.terms) * len(b.terms) > L.MAX_PRODUCT:
                raise self.fail(
                    node,
                    f"this product multiplies out {len(a.terms)} x "
                    f"{len(b.terms)} terms, beyond the limit of {L.MAX_PRODUCT}",
                )
            return _check_const(self.text, node, a * b)
        if isinstance(op, ast.FloorDiv):
            return self.divide("floordiv", node, node.right, a, b)
        if isinstance(op, ast.Mod):
            return self.divide("mod", node, node.right, a, b)
        if isinstance(op, ast.Pow):
            return self.power(node, a, b)
        if isinstance(op, ast.Div):
            raise self.fail(node, "'/' is true division; use '//' (floor) or cdiv(a, b)")
        raise self.fail(node, f"operator {type(op).__name__} is not part of shape arithmetic")

    def power(self, node: ast.BinOp, a: Expr, b: Expr) -> Expr:
        if not b.is_const or b.const_value < 0:
            raise self.fail(node.right, "exponents must be non-negative integer literals")
        k = b.const_value
        if a.is_const:  # folded now: only the size of the result matters
            v = a.const_value
            if abs(v) > 1 and (abs(v).bit_length() - 1) * k >= L.MAX_BITS:
                raise self.fail(
                    node,
                    f"{self.segment(node)} is beyond the limit of 2**{L.MAX_BITS} for constants",
                )
            return Expr.const(v**k)
        if k > L.MAX_EXPONENT:
            raise self.fail(node.right, f"exponent {k} is beyond the limit of {L.MAX_EXPONENT}")
        out = Expr.const(1)
        for _ in range(k):
            if len(out.terms) * len(a.terms) > L.MAX_PRODUCT:
                raise self.fail(
                    node,
                    f"this power multiplies out more than {L.MAX_PRODUCT} term pairs (the limit)",
                )
            out = _check_const(self.text, node, out * a)
        return out

    def call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
            raise self.fail(node.func, f"unknown function (allowed: {', '.join(sorted(_FUNCS))})")
        if node.keywords:
            raise self.fail(node.keywords[0], "keyword arguments are not allowed")
        name = node.func.id
        if name == "where":
            if len(node.args) != 3:
                raise self.fail(node, "where(cond, a, b) takes 3 arguments")
            c = self.formula(node.args[0])
            outer = self.guard
            try:  # only the chosen branch is evaluated
                self.guard = conj(outer, c)
                a = self.expr(node.args[1])
                self.guard = conj(outer, negate(c))
                b = self.expr(node.args[2])
            finally:
                self.guard = outer
            return where(c, a, b)
        args = [self.expr(a) for a in node.args]
        arity = {"abs": 1, "cdiv": 2, "floordiv": 2, "mod": 2}.get(name)
        if arity is not None and len(args) != arity:
            raise self.fail(node, f"{name}() takes {arity} argument{'s' * (arity > 1)}")
        if not args:
            raise self.fail(node, f"{name}() needs arguments")
        if name in _DIV_BUILD:
            return self.divide(name, node, node.args[1], *args)
        try:
            if name == "min":
                return minimum(*args)
            if name == "max":
                return maximum(*args)
            return abs(args[0])
        except ShapeError as e:
            raise self.fail(node, str(e)) from None

    # Conditions -------------------------------------------------------------------
    def formula(self, node: ast.AST) -> Formula:
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            parts: list[Formula] = []
            outer = self.guard
            try:
                for v in node.values:  # operand i is evaluated only if those before decided nothing
                    before = parts if isinstance(node.op, ast.And) else [negate(p) for p in parts]
                    self.guard = conj(outer, *before)
                    parts.append(self.formula(v))
            finally:
                self.guard = outer
            return conj(*parts) if isinstance(node.op, ast.And) else disj(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return negate(self.formula(node.operand))
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return conj() if node.value else disj()
        raise self.fail(node, "expected a condition (a comparison such as 'H % 8 == 0')")

    def compare(self, node: ast.Compare) -> Formula:
        parts: list[Formula] = []
        outer = self.guard
        try:
            left = self.expr(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                self.guard = conj(outer, *parts)  # a < b < c evaluates c only if a < b
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
        finally:
            self.guard = outer
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
    if len(stripped) > L.MAX_TEXT:
        raise ShapeError(
            f"shape expression too long: {len(stripped)} characters, the limit is {L.MAX_TEXT}"
        )
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as e:
        col = (e.offset or 1) - 1
        token = stripped[col : col + 1] or "end of input"
        if "limit" in str(e.msg) or "nested" in str(e.msg):  # Python's own parser limits
            raise ShapeError(f"shape expression too large for Python's parser: {e.msg}") from None
        caret = " " * col + "^"
        shown = f"{stripped!r}\n    {stripped}\n    {caret}" if len(stripped) <= 200 else "(long)"
        raise ShapeError(
            f"syntax error: unexpected {token!r} at column {col + 1} of shape expression {shown}"
        ) from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise ShapeError(
            f"shape expression too large for Python's parser ({type(e).__name__}: {e}); "
            f"the limits are {L.MAX_DEPTH} nesting levels and {L.MAX_NODES} syntax nodes"
        ) from None
    _check_size(stripped, tree.body)
    return tree.body


# ------------------------------------------------------------------------- as written


class Written:
    """A parsed text with what the normal form forgets (see the module docstring).

    ``value``: the normalised :class:`Expr` or :class:`Formula`; ``divisors``:
    ``(guard, divisor, divisor as written)`` for every division whose divisor is
    not a non-zero constant, innermost first; ``names``: every symbol the text
    names, folded away or not.
    """

    __slots__ = ("divisors", "names", "text", "tree", "value")

    def __init__(self, text: str, kind: str):
        self.text = text.strip()
        self.tree = _tree(text)
        b = _Builder(self.text)
        self.value: Expr | Formula
        if kind == "expr":
            self.value = b.expr(self.tree)
        elif kind == "formula":
            self.value = b.formula(self.tree)
        else:
            self.value = b.any(self.tree)
        self.divisors: tuple[tuple[Formula, Expr, str], ...] = tuple(dict.fromkeys(b.divs))
        self.names: frozenset[str] = frozenset(b.names)

    def evaluate(self, env: Mapping[str, int]) -> int | bool:
        """The text's value under ``env`` as Python would compute it (``ZeroDivisionError``)."""
        return _Eval(env).run(self.tree)

    def __repr__(self) -> str:
        return f"Written({self.text!r})"


class _Eval:
    def __init__(self, env: Mapping[str, int]):
        self.env = env

    def run(self, node: ast.AST):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            try:
                return int(self.env[node.id])
            except KeyError:
                raise ShapeError(f"no value for symbol {node.id!r}") from None
        if isinstance(node, ast.UnaryOp):
            v = self.run(node.operand)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.Not):
                return not v
            return v
        if isinstance(node, ast.BinOp):
            first, links = _chain(node)
            acc = self.run(first)
            for link in links:
                acc = _BINOPS[type(link.op)](acc, self.run(link.right))
            return acc
        if isinstance(node, ast.BoolOp):
            want = isinstance(node.op, ast.Or)
            for v in node.values:
                if bool(self.run(v)) == want:
                    return want
            return not want
        if isinstance(node, ast.Compare):
            left = self.run(node.left)
            for op, rnode in zip(node.ops, node.comparators):
                if isinstance(op, (ast.In, ast.NotIn)):
                    # the builder accepted only a literal tuple/list/set here (see _Builder)
                    assert isinstance(rnode, (ast.Tuple, ast.List, ast.Set)), ast.dump(rnode)
                    vals = [self.run(e) for e in rnode.elts]
                    ok = (left in vals) == isinstance(op, ast.In)
                    right = None
                else:
                    right = self.run(rnode)
                    ok = _CMPS[type(op)](left, right)
                if not ok:
                    return False
                left = right
            return True
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name), node
        name = node.func.id
        if name == "where":
            c = self.run(node.args[0])
            return self.run(node.args[1] if c else node.args[2])
        args = [self.run(a) for a in node.args]
        if name == "min":
            return min(args)
        if name == "max":
            return max(args)
        if name == "abs":
            return abs(args[0])
        if name == "cdiv":
            return -((-args[0]) // args[1])
        if name == "floordiv":
            return args[0] // args[1]
        return args[0] % args[1]


_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}
_CMPS = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}


@lru_cache(maxsize=4096)
def written(text: str, kind: str = "any") -> Written:
    """``text`` parsed as ``kind`` (``"any"``, ``"expr"`` or ``"formula"``), as written."""
    return Written(text, kind)


def parse(text: str) -> Expr | Formula:
    """An expression or a condition, whichever the text is."""
    return written(text).value


def parse_expr(text: str) -> Expr:
    value = written(text, "expr").value
    if not isinstance(value, Expr):  # the "expr" builder only returns expressions
        raise ShapeError(f"{text!r} is a condition, not an integer expression")
    return value


def parse_formula(text: str) -> Formula:
    value = written(text, "formula").value
    if not isinstance(value, Formula):  # the "formula" builder only returns conditions
        raise ShapeError(f"{text!r} is an integer expression, not a condition")
    return value


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
