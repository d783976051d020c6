"""Readable text for expressions: ``cdiv(B*S, 64)``, ``b*H + 16*q``, never a solver dump.

The output re-parses to the same expression (``parse(str(e)) == e``); operands
of ``//`` and ``%`` are parenthesised exactly where Python's precedence needs it.

A leaf: it imports nothing from the algebra it prints.  Atoms and expressions are
read through their attributes (a symbol has ``name``, an operation ``kind`` and
``args``, an expression ``terms``), so :mod:`._atom` and :mod:`._expr` can use it
for their ``repr``/``str`` without an import cycle.
"""

from __future__ import annotations

__all__ = ["_atom_str", "_expr_str"]


def _kind(a) -> str | None:
    """The operation of an atom, ``None`` for a symbol."""
    return getattr(a, "kind", None)


def _atom_str(a) -> str:
    """An atom (a ``Sym`` or an ``Op`` of :mod:`._atom`) as text."""
    k = _kind(a)
    if k is None:
        return a.name
    if k in ("floordiv", "mod"):
        n, d = a.args
        op = "//" if k == "floordiv" else "%"
        return f"{_operand_str(n)} {op} {_divisor_str(d)}"
    if k == "where":
        c, x, y = a.args
        return f"where({c}, {x}, {y})"
    return f"{k}({', '.join(str(x) for x in a.args)})"


def _operand_str(e) -> str:
    """Left operand of // or %: parenthesised unless a single product."""
    if len(e.terms) == 1 and not _has_divmod_factor(e.terms[0][0]):
        return _expr_str(e)
    if e.is_const:
        return _expr_str(e)
    return f"({_expr_str(e)})"


def _divisor_str(e) -> str:
    if e.is_const and e.const_value >= 0:
        return str(e.const_value)
    if e.as_symbol() is not None:
        return str(e)
    return f"({_expr_str(e)})"


def _has_divmod_factor(m: tuple) -> bool:
    return any(_kind(a) in ("floordiv", "mod") for a, _ in m)


def _mono_str(m: tuple) -> str:
    parts = []
    for a, p in m:
        s = _atom_str(a)
        if _kind(a) in ("floordiv", "mod") and (len(m) > 1 or p > 1):
            s = f"({s})"
        parts.extend([s] * p)
    return "*".join(parts)


def _expr_str(e) -> str:
    """An expression (an ``Expr`` of :mod:`._expr`: its ``terms``) as text."""
    if not e.terms:
        return "0"
    out = ""
    # Positive terms first reads naturally ("r - i + 1", not "-i + r + 1").
    ordered = sorted(e.terms, key=lambda t: (t[0] == (), t[1] < 0))
    for i, (m, c) in enumerate(ordered):
        if m == ():
            body = str(abs(c))
        else:
            ms = _mono_str(m)
            lone_divmod = len(m) == 1 and m[0][1] == 1 and _has_divmod_factor(m)
            if lone_divmod and (abs(c) != 1 or (i == 0 and c < 0)):
                ms = f"({ms})"
            body = ms if abs(c) == 1 else f"{abs(c)}*{ms}"
        if i == 0:
            out = ("-" if c < 0 else "") + body
        else:
            out += (" - " if c < 0 else " + ") + body
    return out
