"""Witnesses: invert an affine index map to get the program ids and loop indices from an element.

"Every element is written by some program" asks the solver for an
existential over programs, which it answers slowly or not at all.  Inverting
the store's index map turns it into a quantifier-free check: for an arbitrary
element ``e`` and a store whose dimension ``k`` reads ``start_k + c_k``,

    start_k = a_1*v_1 + ... + a_m*v_m + rest      (v_j unknown: program ids,
                                                  lane ids, loop indices)

is solved by mixed radix, largest coefficient first:
``v_1 = (e_k - rest) // a_1``, ``r = (e_k - rest) % a_1``, ``v_2 = r // a_2``, ...
and the tile coordinate is what remains.  A dimension whose start mentions an
unknown other than linearly with an unknown-free coefficient is left for
another dimension to determine; unknowns no dimension determines (loops
whose index the store does not use) get candidate values at both ends of
their range.  When coefficients are symbolic and their order is not obvious,
every order is a candidate.

Division by a symbolic divisor (:class:`Quotients`): an index built from
``x // G`` and ``x % G`` (or ``x - G*(x // G)``) of an unknown ``x``, with ``G``
free of unknowns and provably ``>= 1``, is rewritten over fresh unknowns
``q, r`` with ``x = G*q + r, 0 <= r < G`` (so ``x // G = q``, ``x % G = r``).
For ``G >= 1`` every ``x`` has exactly one such ``(q, r)``, so a formula
``F(x)`` is equivalent to ``0 <= r < G /\\ F'(q, r)``: the rewrite is sound and
complete.  The rewritten index is linear in ``q``, ``r`` and the tile
coordinate (with coefficients such as ``GS``), which the mixed radix above
inverts; the witness for ``x`` is then ``G*q + r``.

A witness is only a *candidate*: the caller proves that it is valid (ranges,
path, mask, and that the store at the witness really touches ``e``).  A
failed witness proves nothing about other programs; callers confirm a
violation by concrete evaluation before reporting it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ... import shapes
from ...shapes._expr import split_by_monomial
from ...shapes._normal import division_atoms

__all__ = ["Dim", "Quotients", "replace_atoms", "solve"]

MAX_CANDIDATES = 8


@dataclass(frozen=True)
class Dim:
    start: shapes.Expr  # the access's start in this dimension (over unknowns and knowns)
    target: shapes.Expr  # the element's index in this dimension
    coord: str | None  # the tile coordinate name (None for a point index)
    size: int = 1  # the tile's extent in this dimension


def _decompose(start: shapes.Expr, unknowns: set[str]):
    """``({key: a}, rest)`` with ``start == sum(a*key) + rest``, or ``None``.

    A key is an unknown's name, or a *pseudo-unknown*: an atom ``L // k`` or
    ``L % k`` (constant ``k > 0``) whose argument mentions unknowns.  The
    coefficients and ``rest`` mention no unknown.
    """
    coefs: dict = {}
    rest = shapes.as_expr(0)
    for m, c in start.terms:
        found = None
        others = []
        for a, p in m:
            mentions = getattr(a, "name", None) in unknowns or bool(
                shapes.Expr.atom(a).free_symbols() & unknowns
            )
            if not mentions:
                others.append((a, p))
                continue
            if p != 1 or found is not None:
                return None
            if getattr(a, "name", None) in unknowns:
                found = a.name
            elif (
                getattr(a, "kind", None) in ("floordiv", "mod")
                and a.args[1].is_const
                and a.args[1].const_value > 0
            ):
                found = a
            else:
                return None
        term = shapes.Expr({tuple(others): c})
        if found is None:
            rest = rest + term
        else:
            coefs[found] = coefs.get(found, shapes.as_expr(0)) + term
    return coefs, rest


def _key_order(k) -> tuple:
    return (0, k) if isinstance(k, str) else (1, str(k))


def _place(a: shapes.Expr) -> tuple:
    """How large a place value looks: more size factors first, then a larger constant."""
    if len(a.terms) != 1:
        return (0, 0)
    ((m, c),) = a.terms
    return (sum(p for _a, p in m), abs(c))


def _orders(coefs: dict) -> list[list[tuple]]:
    items = sorted(coefs.items(), key=lambda t: _key_order(t[0]))
    if all(a.is_const for _, a in items):
        return [sorted(items, key=lambda t: -abs(t[1].const_value))]
    # symbolic coefficients: the order their place values suggest (``16*M`` above ``16``)
    # first, then (for a few) every other order
    likely = sorted(items, key=lambda t: tuple(-x for x in _place(t[1])))
    if len(items) > 3:
        return [likely]
    perms = [list(p) for p in itertools.permutations(items) if list(p) != likely]
    perms.sort(key=lambda p: [a.is_const for _, a in p] != sorted(a.is_const for _, a in p))
    return [likely, *perms]


def _modes(coefs: dict) -> list[tuple[list, bool]]:
    """``(order, structural)`` pairs to try: for symbolic coefficients the structural
    division first (see :func:`_structural`), then the exact one."""
    if not coefs:
        return [([], False)]
    orders = _orders(coefs)
    if all(a.is_const for a in coefs.values()):
        return [(o, False) for o in orders]
    return [(orders[0], True)] + [(o, False) for o in orders]


def _structural(r: shapes.Expr, a: shapes.Expr):
    """``(X, L)`` with ``r == a*X + L`` where ``X`` gathers the terms of ``r`` that the
    symbolic place value ``a`` (one monomial) divides, or ``None`` (none does, or ``a`` is
    constant).  When the element is itself written in the same digits (a reader's
    ``128*M*b + 16*M*h + 16*j + c`` against a writer's ``128*M*q + ...``) this reads the
    digits off directly (``q = b``) instead of as ``e // (128*M)``; a guess like any
    witness, proved or discarded by the caller."""
    if a.is_const or len(a.terms) != 1:
        return None
    x, rest = split_by_monomial(r, a)
    if not x.terms:
        return None
    return x, rest


def _divide(r: shapes.Expr, a: shapes.Expr) -> tuple[shapes.Expr, shapes.Expr]:
    """``(q, rem)`` with ``r == a*q + rem`` and ``0 <= rem < |a|`` where ``a`` is constant."""
    if a.is_const:
        k = a.const_value
        if k == 1:
            return r, shapes.as_expr(0)
        if k == -1:
            return -r, shapes.as_expr(0)
        q = shapes.floordiv(r, abs(k))
        return (q if k > 0 else -q), shapes.mod(r, abs(k))
    return shapes.floordiv(r, a), shapes.mod(r, a)


def _known(e: shapes.Expr, sub: dict, pv: dict) -> shapes.Expr:
    e = e.subs(sub) if sub else e
    if pv:
        e = e._map_atoms(lambda a: pv.get(a, shapes.Expr.atom(a)))
    return e


@dataclass
class _State:
    sub: dict  # unknown name -> value
    pv: dict  # pseudo-unknown atom -> value
    pending: list  # dims still to solve
    derived: set  # (argument, divisor) groups already turned into a dimension


def _derive(st: _State) -> list[Dim]:
    """Dimensions ``L = k*q + r`` from solved pseudo-unknowns ``L // k = q``, ``L % k = r``."""
    groups: dict = {}
    for a, v in st.pv.items():
        groups.setdefault((a.args[0], a.args[1].const_value), {})[a.kind] = v
    out = []
    for key, vals in groups.items():
        if key in st.derived:
            continue
        st.derived.add(key)
        arg, k = key
        q, r = vals.get("floordiv"), vals.get("mod")
        value = (k * q + r) if q is not None and r is not None else (k * q if q is not None else r)
        out.append(Dim(arg, value, None))
    return out


def _where_atoms(dims: list[Dim], names: set) -> list:
    """The ``where(c, x, y)`` factors of the starts that mention an unknown (top level of a
    monomial, as a clamp ``128*where(q_end > kv_start, j, 0)`` is), in a stable order."""
    out: list = []
    for d in dims:
        for m, _c in d.start.terms:
            for a, _p in m:
                if (
                    getattr(a, "kind", None) == "where"
                    and shapes.Expr.atom(a).free_symbols() & names
                    and a not in out
                ):
                    out.append(a)
    return out


def solve(
    dims: list[Dim], unknowns: dict[str, tuple[shapes.Expr, shapes.Expr]], stuck: list | None = None
) -> list[dict[str, shapes.Expr]]:
    """Candidate assignments of the unknowns (and tile coordinates) from the element.

    A start with ``where(c, x, y)`` factors over the unknowns is solved once per choice of
    branch (each factor replaced by ``x`` or by ``y``, at most three factors): a candidate
    of either branch is still only a candidate, which the caller proves against the real
    start (the condition included).  Such a dimension is ``stuck`` only when every choice
    is.
    """
    atoms = _where_atoms(dims, set(unknowns))
    if not atoms or len(atoms) > 3:
        return _solve(dims, unknowns, stuck)
    out: list = []
    stucks: list = []
    for pick in itertools.product((1, 2), repeat=len(atoms)):
        repl = {a: a.args[k] for a, k in zip(atoms, pick)}
        var = [
            Dim(
                d.start._map_atoms(lambda a, r=repl: r.get(a, shapes.Expr.atom(a))),
                d.target,
                d.coord,
                d.size,
            )
            for d in dims
        ]
        got: list = []
        out += _solve(var, unknowns, got)
        # the original dimensions (their starts name the where) this choice left stuck
        stucks.append([dims[k] for k, v in enumerate(var) if any(g is v for g in got)] or got)
    if stuck is not None and all(stucks):
        stuck.extend(stucks[0])
    uniq = []
    for w in out:
        if w not in uniq:
            uniq.append(w)
    return uniq[: MAX_CANDIDATES * 2]


def _solve(
    dims: list[Dim], unknowns: dict[str, tuple[shapes.Expr, shapes.Expr]], stuck: list | None = None
) -> list[dict[str, shapes.Expr]]:
    """:func:`solve` without the case split on ``where``.

    ``unknowns`` maps each unknown to its range ``(lo, hi)`` (exclusive), used
    for the candidates of unknowns no dimension determines.  Dimensions that
    mention unknowns but could not be inverted are appended to ``stuck``.
    """
    names = set(unknowns)
    states = [_State({}, {}, list(dims), set())]
    finished: list[_State] = []
    for _ in range(4 * len(dims) + 8):
        if not states:
            break
        grown: list[_State] = []
        for st in states:
            left = names - set(st.sub)
            step = None
            for j, d in enumerate(st.pending):
                dec = _decompose(_known(d.start, st.sub, st.pv), left)
                if dec is not None:
                    step = (j, d, dec)
                    break
            if step is None:
                more = _derive(st)
                if more:
                    st.pending = st.pending + more
                    grown.append(st)
                else:
                    finished.append(st)
                continue
            j, d, (coefs, rest) = step
            pending = st.pending[:j] + st.pending[j + 1 :]
            coefs = {k: a for k, a in coefs.items() if a != 0}
            r0 = _known(d.target, st.sub, st.pv) - rest
            for order, structural in _modes(coefs):
                sub, pv, r = dict(st.sub), dict(st.pv), r0
                for k, a in order:
                    got = _structural(r, a) if structural else None
                    val, r = got if got is not None else _divide(r, a)
                    if isinstance(k, str):
                        sub[k] = val
                    else:
                        pv[k] = val
                if structural and all(_structural(r0, a) is None for _k, a in order):
                    continue
                if d.coord:
                    sub[d.coord] = r
                grown.append(_State(sub, pv, pending, set(st.derived)))
                last = order[-1] if order else None
                if (
                    d.coord
                    and last
                    and isinstance(last[0], str)
                    and last[1].is_const
                    and 0 < last[1].const_value < d.size
                ):
                    # overlapping tiles (stride below the tile): earlier tiles cover it too
                    k, a = last[0], last[1].const_value
                    for j in range(1, min((d.size - 1) // a, 3) + 1):
                        alt = dict(sub)
                        alt[k], alt[d.coord] = sub[k] - j, r + j * a
                        grown.append(_State(alt, dict(pv), pending, set(st.derived)))
        states = grown[: MAX_CANDIDATES * 4]
    finished += states
    out = []
    for st in finished:
        sub = st.sub
        for d in st.pending:  # never solved: the coordinate from the element
            if stuck is not None and d.start.subs(sub).free_symbols() & names:
                stuck.append(d)
            if d.coord and d.coord not in sub:
                sub[d.coord] = d.target - d.start
        free = [v for v in unknowns if v not in sub]
        ends = [[unknowns[v][0], unknowns[v][1] - 1] for v in free]
        combos = list(itertools.product(*ends)) if free else [()]
        for combo in combos[:MAX_CANDIDATES]:
            full = dict(sub)
            full.update(dict(zip(free, combo)))
            for _ in range(4):  # values solved in terms of unknowns fixed later
                full = {k: v.subs(full) for k, v in full.items()}
            out.append(full)
    uniq = []
    for w in out:
        if w not in uniq:
            uniq.append(w)
    return uniq[: MAX_CANDIDATES * 2]


# ---------------------------------------------------------------- symbolic division


_CMPS = {
    "==": shapes.eq,
    "!=": shapes.ne,
    "<": shapes.lt,
    "<=": shapes.le,
    ">": shapes.gt,
    ">=": shapes.ge,
}
_OPS = {
    "floordiv": shapes.floordiv,
    "mod": shapes.mod,
    "cdiv": shapes.cdiv,
    "min": shapes.minimum,
    "max": shapes.maximum,
}


def replace_atoms(x, table: dict, subs: dict):
    """``x`` with the atoms in ``table`` replaced (before looking inside them) and the
    symbols in ``subs`` substituted, everywhere, nested operations and formulas included."""
    if x is None:
        return None
    if isinstance(x, shapes.Expr):
        return x._map_atoms(lambda a: _replace_atom(a, table, subs))
    if isinstance(x, shapes.Cmp):
        return _CMPS[x.op](replace_atoms(x.lhs, table, subs), replace_atoms(x.rhs, table, subs))
    if isinstance(x, shapes.BoolOp):
        args = [replace_atoms(a, table, subs) for a in x.args]
        if x.kind == "not":
            return shapes.negate(args[0])
        return shapes.conj(*args) if x.kind == "and" else shapes.disj(*args)
    return x


def _replace_atom(a, table: dict, subs: dict) -> shapes.Expr:
    if a in table:
        return table[a]
    name = getattr(a, "name", None)
    if name is not None:
        return subs.get(name, shapes.Expr.atom(a))
    args = [replace_atoms(x, table, subs) for x in a.args]
    if a.kind == "where":
        return shapes.where(*args)
    if a.kind == "abs":
        return abs(args[0])
    return _OPS[a.kind](*args)


@dataclass
class Quotients:
    """Unknowns divided by symbolic divisors, rewritten as ``x = G*q + r`` (module docstring).

    ``splits`` holds ``(x, G, q, r)``; :meth:`rewrite` applies the rewrite to an
    expression or formula, :meth:`facts` gives ``0 <= r < G`` for every split (the
    rewrite is an equivalence only together with them), :meth:`unknowns` the new
    unknown ranges and :meth:`complete` adds ``x = G*q + r`` to a solved assignment.
    """

    splits: list

    @classmethod
    def find(cls, exprs, unknowns: dict, positive, prefix: str = "") -> Quotients:
        """Splits for the atoms ``x // G`` / ``x % G`` in ``exprs`` with ``x`` an unknown and
        ``G`` a non-constant divisor free of unknowns for which ``positive(G)`` (a proof of
        ``G >= 1``) holds.  One divisor per unknown (the first found)."""
        atoms: list = []
        for e in exprs:
            atoms += [a for a in division_atoms(e) if a not in atoms]
        splits, seen = [], set()
        for a in atoms:
            x = a.args[0].as_symbol()
            g = a.args[1]
            if (
                x is None
                or x not in unknowns
                or x in seen
                or g.is_const
                or g.free_symbols() & set(unknowns)
            ):
                continue
            if not positive(g):
                continue
            seen.add(x)
            # internal names (a leading underscore: never shown in a counterexample)
            splits.append((x, g, f"{prefix}_q_{x}", f"{prefix}_r_{x}"))
        return cls(splits)

    def __bool__(self) -> bool:
        return bool(self.splits)

    def rewrite(self, x):
        if not self.splits or x is None:
            return x
        table, subs = {}, {}
        for v, g, q, r in self.splits:
            vs = shapes.sym(v)
            table[shapes.floordiv(vs, g).as_atom()] = shapes.sym(q)
            table[shapes.mod(vs, g).as_atom()] = shapes.sym(r)
            subs[v] = g * shapes.sym(q) + shapes.sym(r)
        return replace_atoms(x, table, subs)

    def facts(self) -> list[shapes.Formula]:
        out = []
        for _v, g, _q, r in self.splits:
            out += [shapes.ge(shapes.sym(r), 0), shapes.lt(shapes.sym(r), g)]
        return out

    def unknowns(self, unknowns: dict) -> dict:
        out = dict(unknowns)
        for v, g, q, r in self.splits:
            lo, hi = out.pop(v)
            out[q] = (shapes.floordiv(lo, g), shapes.floordiv(hi - 1, g) + 1)
            out[r] = (shapes.as_expr(0), g)
        return out

    def renamed(self, mapping: dict) -> Quotients:
        """The same splits with symbols renamed (``mapping``: name -> symbol expression)."""

        def nm(n):
            e = mapping.get(n)
            return e.as_symbol() if e is not None else n

        return Quotients([(nm(v), g, nm(q), nm(r)) for v, g, q, r in self.splits])

    def complete(self, w: dict) -> dict:
        out = dict(w)
        for v, g, q, r in self.splits:
            out[v] = g * out[q] + out[r]
        return out
