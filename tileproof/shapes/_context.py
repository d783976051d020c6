"""An assumption set, prepared once and cached: symbol domains, substitutions, bounds.

Preparation only applies equivalences, so the prepared problem has exactly the
admissible points of the original (through the substitutions):

* **Domains.**  Every symbol is an integer ``>= 1`` unless a top-level
  assumption ``NAME >= k`` / ``NAME > k`` / ``k <= NAME`` / ``k < NAME`` with an
  integer literal ``k`` declares its lower bound instead.
* **Divisibility.**  ``X % k == r`` (constants ``0 <= r < k``) is replaced by
  ``X = k*X' + r`` with a fresh ``X'``; afterwards ``(16*h) // 16`` is ``h``
  by normal form and products ``b*H`` stay visibly multiples of 16.
* **Equalities.**  ``x == e`` where ``x`` occurs once and linearly with
  coefficient ±1 eliminates ``x`` (its bounds move onto ``e``).
* **Bounds.**  Linear facts propagate symbol bounds (a few rounds of interval
  constraint propagation, through ``//`` by constants and ``min``/``max``);
  an empty bound proves the assumptions inconsistent.
* **Definedness.**  A symbolic divisor in an assumption must be non-zero: an
  assumption is false where Python could not evaluate it.

Counterexamples found in the prepared space are mapped back with
:meth:`Context.user_point` and re-checked on the original assumptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from ._expr import FALSE, BoolConst, BoolOp, Cmp, Expr, Formula, Op, Sym, disj, ne, negate
from ._interval import INF, Interval, _Eval
from ._normal import divisors, simplify, substitute
from ._search import holds, points

__all__ = [
    "Context",
    "clear_memo",
    "declared_lower_bounds",
    "flatten",
    "lower_bound_decl",
    "var_bounds",
    "weaker",
]

_ROUNDS = 8
_WITNESS_POINTS = 64


def flatten(fs: Iterable[Formula]) -> list[Formula]:
    out: list[Formula] = []
    for f in fs:
        if isinstance(f, BoolOp) and f.kind == "and":
            out.extend(flatten(f.args))
        elif not (isinstance(f, BoolConst) and f.value):
            out.append(f)
    return out


def lower_bound_decl(f: Formula) -> tuple[str, int] | None:
    """``(NAME, k)`` when ``f`` declares ``NAME >= k`` with a literal (also ``>``, flipped)."""
    if not isinstance(f, Cmp):
        return None
    lhs, rhs, op = f.lhs, f.rhs, f.op
    if op in ("<=", "<"):
        lhs, rhs, op = rhs, lhs, {"<=": ">=", "<": ">"}[op]
    if op not in (">=", ">"):
        return None
    name = lhs.as_symbol()
    if name is None or not rhs.is_const:
        return None
    return name, rhs.const_value + (op == ">")


def declared_lower_bounds(fs: Iterable[Formula]) -> dict[str, int]:
    """``{NAME: k}`` for the literal declarations ``NAME >= k`` among the conjuncts of ``fs``
    (the largest ``k`` where a name has several): the shapes convention for a symbol's
    lower bound, ``1`` for a name not in the result."""
    declared: dict[str, int] = {}
    for f in flatten(fs):
        d = lower_bound_decl(f)
        if d is not None:
            declared[d[0]] = max(declared.get(d[0], d[1]), d[1])
    return declared


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def var_bounds(f: Formula, var: str) -> tuple[list[Expr], list[Expr], bool]:
    """``(los, his, exact)`` read off the conjuncts of ``f`` that compare ``var`` alone with
    a side free of it: lower bounds ``var >= lo`` and exclusive upper bounds ``var < hi``
    in the order met (an equality gives one of each); ``exact`` when every conjunct is
    such a comparison (``!=`` is not), so that ``f`` is exactly ``max(los) <= var < min(his)``.

    Used for the value ranges of index tensors (``values="0 <= v < P"``).
    """
    los: list[Expr] = []
    his: list[Expr] = []
    exact = True
    stack = [f]
    while stack:
        g = stack.pop()
        if isinstance(g, BoolOp) and g.kind == "and":
            stack.extend(g.args)
            continue
        if not isinstance(g, Cmp) or g.op == "!=":
            exact = False
            continue
        for a, op, b in ((g.lhs, g.op, g.rhs), (g.rhs, _FLIP[g.op], g.lhs)):
            if a.as_symbol() == var and var not in b.free_symbols():
                if op in (">=", ">", "=="):
                    los.append(b + 1 if op == ">" else b)
                if op in ("<=", "<", "=="):
                    his.append(b if op == "<" else b + 1)
                break
        else:
            exact = False
    return los, his, exact


def weaker(assume: Iterable[Formula], kept: Iterable[Formula]) -> list[Formula]:
    """``kept`` (some of the conjuncts of ``assume``) with the lower-bound declarations it
    lost restored: a subset of the assumptions that admits every point ``assume`` admits.

    Dropping an assumption is only a weakening when no symbol's *domain* narrows: a
    declaration ``x >= 0`` inside a dropped conjunction (``0 <= x and x < n*m``) would
    leave ``x`` its default ``x >= 1``, and a proof from the subset would miss ``x = 0``.
    So ``x >= k`` is added for every symbol whose declared bound in ``assume`` is below
    the one ``kept`` gives it (a bound above it is a weakening already).
    """
    kept = list(kept)
    full = declared_lower_bounds(assume)
    have = declared_lower_bounds(kept)
    lost = [
        Cmp(">=", Expr.atom(Sym(n)), Expr.const(k)) for n, k in full.items() if k < have.get(n, 1)
    ]
    return kept + lost


def _ceil_div(x, k):
    return x if x in (INF, -INF) else -((-x) // k)


def _floor_div(x, k):
    return x if x in (INF, -INF) else x // k


class Context:
    """A prepared assumption set (see the module docstring)."""

    def __init__(self, assume: tuple[Formula, ...]):
        self.assume = assume
        flat = flatten(assume)
        self.flat = tuple(flat)  # the assumptions as written, for concrete re-checks
        self.user_symbols: set[str] = (
            set().union(*(f.free_symbols() for f in flat)) if flat else set()
        )
        declared = declared_lower_bounds(flat)
        self.lower = {s: declared.get(s, 1) for s in self.user_symbols}
        self.subst: dict[str, Expr] = {}
        self.box: dict[str, Interval] = {s: (lo, INF) for s, lo in self.lower.items()}
        facts = list(flat)
        for f in flat:
            for g, d in divisors(f):
                facts.append(disj(negate(g), ne(d, 0)))
        self.empty = False
        self.facts: tuple[Formula, ...] = ()
        self._prepare(facts)
        self._witness: dict | Literal[False] | None = False  # False: not searched yet
        self.consistent: bool | None = None if not self.empty else False

    # -- preparation
    def _prepare(self, facts: list[Formula]) -> None:
        if not facts:
            return
        tidy = self._tidy(facts)
        for _ in range(16):
            if tidy is None:
                self.empty = True
                return
            changed = self._propagate(tidy)
            if changed is None:
                self.empty = True
                return
            if changed:
                tidy = self._tidy(tidy)
                if tidy is None:
                    self.empty = True
                    return
            step = self._divisibility(tidy)
            if step is None:
                step = self._eliminate(tidy)
            if step is None:
                break
            tidy = self._tidy(step)
        if tidy is None:  # the last round's step simplified a fact to false
            self.empty = True
            return
        self.facts = tuple(tidy)

    def _tidy(self, facts: list[Formula]) -> list[Formula] | None:
        out = []
        for f in flatten(simplify(f, self.box) for f in facts):
            if isinstance(f, BoolConst):
                if not f.value:
                    return None
                continue
            if f not in out:
                out.append(f)
        return out

    def _apply(self, facts: list[Formula], name: str, repl: Expr) -> list[Formula]:
        m = {name: repl}
        self.subst = {u: substitute(e, m) for u, e in self.subst.items()}
        self.subst[name] = repl
        return [substitute(f, m) for f in facts]

    def _fresh(self, base: str) -> str:
        name = base
        while name in self.user_symbols or name in self.box:
            name += "_"
        return name

    def _divisibility(self, facts: list[Formula]) -> list[Formula] | None:
        for i, f in enumerate(facts):
            if not (isinstance(f, Cmp) and f.op == "=="):
                continue
            d = f.difference()
            c0 = d.const_value
            rest = d - c0
            if len(rest.terms) != 1:
                continue
            ((m, c),) = rest.terms
            if len(m) != 1 or m[0][1] != 1 or not isinstance(m[0][0], Op) or m[0][0].kind != "mod":
                continue
            n, k = m[0][0].args
            x = n.as_symbol()
            if x is None or not k.is_const or k.const_value <= 0 or x not in self.box or c0 % c:
                continue
            k, r = k.const_value, -c0 // c
            if not 0 <= r < k:
                continue
            lo, hi = self.box.pop(x)
            new = self._fresh(f"{x}/{k}")  # not an identifier: no clash with query symbols
            self.box[new] = (_ceil_div(lo - r, k), _floor_div(hi - r, k))
            if self.box[new][0] > self.box[new][1]:
                return [FALSE]  # no multiple of k (plus r) in x's range
            rest_facts = facts[:i] + facts[i + 1 :]
            return self._apply(rest_facts, x, k * Expr.atom(Sym(new)) + r)
        return None

    def _eliminate(self, facts: list[Formula]) -> list[Formula] | None:
        best = None
        for i, f in enumerate(facts):
            if not (isinstance(f, Cmp) and f.op == "=="):
                continue
            d = f.difference()
            for m, c in d.terms:
                if c not in (1, -1) or len(m) != 1 or m[0][1] != 1 or not isinstance(m[0][0], Sym):
                    continue
                x = m[0][0].name
                if x not in self.box:
                    continue
                rest = d - c * Expr.atom(m[0][0])
                if x in rest.free_symbols():
                    continue
                uses = sum(x in g.free_symbols() for j, g in enumerate(facts) if j != i)
                key = (uses, x)
                if best is None or key < best[0]:
                    best = (key, i, x, -c * rest)
        if best is None:
            return None
        _, i, x, repl = best
        lo, hi = self.box.pop(x)
        kept = facts[:i] + facts[i + 1 :]
        kept.append(repl >= lo)
        if hi != INF:
            kept.append(repl <= hi)
        return self._apply(kept, x, repl)

    def _propagate(self, facts: list[Formula]) -> bool | None:
        """Tighten ``self.box`` from the facts: whether it changed; None when a bound is empty."""
        any_change = False
        for _ in range(_ROUNDS):
            changed = False
            for f in facts:
                for e, lo, hi in _ranges_of(f):
                    r = _tighten_memo(e, lo, hi, self.box)
                    if r is None:
                        return None
                    changed |= r
            any_change |= changed
            if not changed:
                break
        return any_change

    # -- use
    def rewrite(self, f):
        """An expression or formula over user symbols, in the prepared space, simplified."""
        return simplify(substitute(f, self.subst), self.box)

    def symbols_for(self, *xs) -> list[str]:
        syms = set(self.box)
        for f in self.facts:
            syms |= f.free_symbols()
        for x in xs:
            syms |= x.free_symbols()
        return sorted(syms)

    def user_point(self, env: Mapping[str, int], extra: Iterable[str] = ()) -> dict[str, int]:
        out = {}
        for u in sorted(self.user_symbols | set(extra)):
            out[u] = self.subst[u].evaluate(env) if u in self.subst else env.get(u, 1)
        return out

    def witness(self) -> dict | None:
        """A small admissible point (prepared space), or None when search found none."""
        if self._witness is False:
            self._witness = None
            if not self.empty:
                syms = self.symbols_for()
                for p in points(syms, self.box, _WITNESS_POINTS):
                    if holds(self.facts, p):
                        self._witness = p
                        self.consistent = True
                        break
        found = self._witness
        assert found is not False  # searched just above
        return found


_ABSENT = ("absent",)
_RANGES: dict = {}  # fact -> its (e, lo, hi) list
_TIGHT: dict = {}  # (e, lo, hi, bounds of e's symbols) -> (result, bounds after)
_MEMO_SIZE = 1 << 15


def clear_memo() -> None:
    """Forget memoised propagation steps (for timing from a cold start)."""
    _RANGES.clear()
    _TIGHT.clear()


def _ranges_of(f: Formula) -> list:
    got = _RANGES.get(f)
    if got is None:
        if len(_RANGES) >= _MEMO_SIZE:
            _RANGES.clear()
        got = _RANGES[f] = list(_ranges(f))
    return got


def _tighten_memo(e: Expr, lo, hi, box: dict) -> bool | None:
    """``_tighten(e, lo, hi, box, 2)``, memoised.

    Bound propagation runs for every prepared assumption set, several rounds over
    every fact, and the verifier's assumption sets share most facts and bounds.
    One step reads and writes only the bounds of ``e``'s own symbols (a missing
    one reads as ``(1, INF)`` and may be added), so those bounds before the step
    determine the result and those after it.
    """
    syms = sorted(e.free_symbols())
    key = (e, lo, hi, tuple([box.get(s, _ABSENT) for s in syms]))
    got = _TIGHT.get(key)
    if got is None:
        r = _tighten(e, lo, hi, box, 2)
        if len(_TIGHT) >= _MEMO_SIZE:
            _TIGHT.clear()
        got = _TIGHT[key] = (r, tuple([box.get(s, _ABSENT) for s in syms]))
        return r
    r, after = got
    for s, b in zip(syms, after):  # also when empty: the box is left as the step left it
        if b is not _ABSENT:
            box[s] = b
    return r


def _ranges(f: Formula):
    """``(e, lo, hi)``: the fact says ``lo <= e <= hi``."""
    if isinstance(f, Cmp):
        d = f.difference()
        c0 = d.const_value
        e = d - c0
        lo, hi = {
            ">=": (-c0, INF),
            ">": (-c0 + 1, INF),
            "<=": (-INF, -c0),
            "<": (-INF, -c0 - 1),
            "==": (-c0, -c0),
        }.get(f.op, (-INF, INF))
        if (lo, hi) != (-INF, INF):
            yield e, lo, hi
    elif isinstance(f, BoolOp) and f.kind == "or":
        # x == c1 or x == c2 ...: x lies in their hull
        vals, name = [], None
        for a in f.args:
            if not (isinstance(a, Cmp) and a.op == "=="):
                return
            d = a.difference()
            s = (d - d.const_value).as_symbol()
            if s is None or name not in (None, s):
                return
            name = s
            vals.append(-d.const_value)
        if name is None:  # an empty disjunction names no symbol
            return
        yield Expr.atom(Sym(name)), min(vals), max(vals)


def _tighten(e: Expr, lo, hi, box: dict, depth: int) -> bool | None:
    """Use ``lo <= e <= hi`` to tighten the bounds of the atoms of ``e``.

    Returns whether a symbol bound changed, or None when one became empty.
    """
    ev = _Eval(box)
    changed = False
    for m, c in e.terms:
        if len(m) != 1 or m[0][1] != 1:
            continue
        t = m[0][0]
        rest = ev.expr(Expr([x for x in e.terms if x[0] != m]))
        # lo - rest_hi <= c*t <= hi - rest_lo
        a, b = lo - rest[1] if lo != -INF else -INF, hi - rest[0] if hi != INF else INF
        if c > 0:
            tlo, thi = _ceil_div(a, c), _floor_div(b, c)
        else:
            tlo, thi = _ceil_div(b, c) if b != INF else -INF, _floor_div(a, c) if a != -INF else INF
        r = _tighten_atom(t, tlo, thi, box, depth)
        if r is None:
            return None
        changed |= r
    return changed


def _tighten_atom(t, lo, hi, box: dict, depth: int) -> bool | None:
    if isinstance(t, Sym):
        if t.name not in box:
            box[t.name] = (1, INF)
        old = box[t.name]
        new = (max(old[0], lo), min(old[1], hi))
        if new[0] > new[1]:
            return None
        box[t.name] = new
        return new != old
    if depth <= 0 or not isinstance(t, Op):
        return False
    k = t.kind
    if k == "floordiv" and t.args[1].is_const and t.args[1].const_value > 0:
        kd = t.args[1].const_value
        nlo = lo * kd if lo != -INF else -INF
        nhi = hi * kd + kd - 1 if hi != INF else INF
        return _tighten(t.args[0], nlo, nhi, box, depth - 1)
    if (k == "min" and lo != -INF) or (k == "max" and hi != INF):
        changed = False
        for x in t.args:
            r = _tighten(x, lo if k == "min" else -INF, hi if k == "max" else INF, box, depth - 1)
            if r is None:
                return None
            changed |= r
        return changed
    return False
