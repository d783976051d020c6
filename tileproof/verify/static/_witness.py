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

A witness is only a *candidate*: the caller proves that it is valid (ranges,
path, mask, and that the store at the witness really touches ``e``).  A
failed witness proves nothing about other programs; callers confirm a
violation by concrete evaluation before reporting it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ... import shapes

__all__ = ["Dim", "solve"]

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
                shapes.Expr.atom(a).free_symbols() & unknowns)
            if not mentions:
                others.append((a, p))
                continue
            if p != 1 or found is not None:
                return None
            if getattr(a, "name", None) in unknowns:
                found = a.name
            elif (getattr(a, "kind", None) in ("floordiv", "mod") and a.args[1].is_const
                  and a.args[1].const_value > 0):
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


def _orders(coefs: dict) -> list[list[tuple]]:
    items = sorted(coefs.items(), key=lambda t: _key_order(t[0]))
    if all(a.is_const for _, a in items):
        return [sorted(items, key=lambda t: -abs(t[1].const_value))]
    if len(items) > 3:
        return [items]
    # symbolic coefficients: every order, those with constants last first
    perms = list(itertools.permutations(items))
    perms.sort(key=lambda p: [a.is_const for _, a in p] != sorted(a.is_const for _, a in p))
    return [list(p) for p in perms]


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


def solve(dims: list[Dim], unknowns: dict[str, tuple[shapes.Expr, shapes.Expr]],
          stuck: list | None = None) -> list[dict[str, shapes.Expr]]:
    """Candidate assignments of the unknowns (and tile coordinates) from the element.

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
            pending = st.pending[:j] + st.pending[j + 1:]
            coefs = {k: a for k, a in coefs.items() if a != 0}
            r0 = _known(d.target, st.sub, st.pv) - rest
            for order in _orders(coefs) if coefs else [[]]:
                sub, pv, r = dict(st.sub), dict(st.pv), r0
                for k, a in order:
                    val, r = _divide(r, a)
                    if isinstance(k, str):
                        sub[k] = val
                    else:
                        pv[k] = val
                if d.coord:
                    sub[d.coord] = r
                grown.append(_State(sub, pv, pending, set(st.derived)))
                last = order[-1] if order else None
                if (d.coord and last and isinstance(last[0], str) and last[1].is_const
                        and 0 < last[1].const_value < d.size):
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
