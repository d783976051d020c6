"""Candidate writers: which store instance writes a given element, and deciding that one does.

For an element ``e`` of a tensor, a *witness* is an instance of a store
(program ids, lane ids, loop indices) obtained by inverting the store's index
map (:mod:`._witness`), together with the formula that says it is reached, in
range, unmasked and touches ``e``.  Witnesses are candidates only: the
coverage and read-after-write obligations prove their disjunction, and a
refutation is confirmed concretely before it is reported (:mod:`._confirm`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ... import shapes
from ...model import Access
from ...shapes._context import flatten, var_bounds
from ._context import INT64_MIN, Analysis, Answer, Instance, Site, all_eq
from ._explain import plain
from ._witness import Dim, Quotients, solve

__all__ = [
    "Witness",
    "access_dims",
    "decide_witnesses",
    "invert",
    "positive",
    "reach",
    "unknown_ranges",
    "why_unknown",
    "witnesses",
]


def unknown_ranges(an: Analysis, site: Site, inst: Instance) -> dict[str, tuple]:
    """The renamed names a witness must determine, with their ranges ``[lo, hi)``."""
    out: dict[str, tuple] = {}
    for p in an.pids:
        out[inst.name(p)] = (shapes.as_expr(0), an.extents[p])
    if an.rank_var and an.rank_var not in an.extents:
        out[inst.name(an.rank_var)] = (shapes.as_expr(0), an.rank_size)
    for ln in site.lanes:
        out[inst.name(ln.var)] = (shapes.as_expr(0), shapes.as_expr(ln.n))
    for lp in site.loops:
        out[inst.name(lp.var)] = (inst(lp.lo), inst(lp.hi))
    return out


def reach(an: Analysis, site: Site) -> list[shapes.Formula]:
    """Context of an access with its coordinates and mask (un-renamed)."""
    acc = site.node
    return an.scope(site) + an.coords(acc) + ([acc.mask] if acc.mask is not None else [])


@dataclass
class Witness:
    """A candidate writer: the store ``site`` at ``sub`` touches the element.

    ``formula`` says that the instance is reached, in range, unmasked and touches the
    element; it is a candidate only, to be proved.  ``hyps`` are facts about the
    candidate's own fresh names (the table position of a key, reads of a work table's
    declaration), ``reads`` those reads as ``(name, tensor, index)`` for functional
    consistency with the other reads of the query.  :meth:`apply` maps a fact about the
    instance ``inst`` (its names renamed) to one about the candidate.
    """

    inst: Instance
    sub: dict
    formula: shapes.Formula
    hyps: list
    reads: list
    quot: Quotients

    def apply(self, f):
        return self.quot.rewrite(f).subs(self.sub)


def access_dims(
    an: Analysis, site: Site, inst: Instance, element, unknowns: dict
) -> tuple[Quotients, list[Dim]]:
    """The dimensions of the access at ``site`` (instance ``inst``) as equations
    ``start_k = element_k`` to solve for ``unknowns`` (:func:`._witness.solve`), with every
    ``x // G``, ``x % G`` of an unknown ``x`` by a symbolic ``G`` proved ``>= 1`` split
    into ``x = G*q + r`` first (:class:`._witness.Quotients`)."""
    acc: Access = site.node
    quot = Quotients.find(
        [inst(d.start) for d in acc.dims], unknowns, lambda g: positive(an, site, g)
    )
    coords = iter(acc.coord_ranges())
    dims = [
        Dim(quot.rewrite(inst(d.start)), e, None if d.point else inst.name(next(coords)[0]), d.size)
        for d, e in zip(acc.dims, element)
    ]
    return quot, dims


def invert(
    an: Analysis, acc: Access, dims: list[Dim], unknowns: dict, quot: Quotients
) -> tuple[list[dict], str]:
    """``(candidates, why)``: the assignments of ``unknowns`` that :func:`._witness.solve`
    reads off ``dims`` (divisions mapped back, ``x = G*q + r``), or none and why."""
    stuck: list = []
    cands = [quot.complete(w) for w in solve(dims, unknowns, stuck)]
    if stuck:
        d = stuck[0]
        return [], (
            f"the index map of the {acc.kind} at {acc.loc.short} cannot be inverted "
            f"(an index {plain(d.start, an)} of {acc.tensor} mixes the program and "
            "loop indices non-linearly)"
        )
    return cands, ""


def witnesses(an: Analysis, site: Site, element, tag: str) -> tuple[list[Witness], str]:
    """``([Witness], why)``: candidate writers of ``element`` by the store ``site``; ``why``
    says why there are none (an index through data).

    Unknowns are the store's program ids, lane ids and loop indices, and the values it
    reads from a declared work table (:func:`_table_reads`); divisions of an unknown by a
    symbolic size are split first (:class:`._witness.Quotients`).  Every candidate gets
    its own instance (tag ``w0``, ``w0_1``, ...): two candidates are two different
    executions of the store, whose data reads need not agree.
    """
    inst = an.instance(site, tag)
    acc: Access = site.node
    unknowns = unknown_ranges(an, site, inst)
    base = [inst(f) for f in reach(an, site)]
    mine = {inst.name(n) for n in an.data if n in an.per_instance}
    equal = all_eq([inst(x) for x in acc.element()], element)
    tables = _table_reads(an, inst, equal.free_symbols() & mine)
    for tr in tables:
        unknowns[tr.value] = tr.bounds
    # x // G, x % G of an unknown x (symbolic G >= 1): x = G*q + r over fresh q, r
    quot, dims = access_dims(an, site, inst, element, unknowns)
    extra: list[shapes.Formula] = []
    for tr in tables:  # the table entry read holds the key: its position is the table's
        dims.append(Dim(quot.rewrite(tr.index), tr.at, None))
        extra.append(shapes.eq(tr.index, tr.at))
        base.append(tr.keyset)
    equal = shapes.conj(quot.rewrite(equal), *(quot.rewrite(f) for f in extra))
    base = [quot.rewrite(f) for f in base] + quot.facts()
    unknowns = quot.unknowns(unknowns)
    why = ""
    cands, why = invert(an, acc, dims, unknowns, quot)
    if why:
        return [], why
    out: list[Witness] = []
    for w in cands:
        eq_w = equal.subs(w)
        data = eq_w.free_symbols() & mine
        if data:  # the element depends on values this store reads: not invertible
            d = an.data[sorted(data)[0].partition("__")[0]]
            why = (
                f"the store at {acc.loc.short} indexes {acc.tensor} through "
                f"{plain(shapes.sym(d.name), an)} (line {d.loc.line}); the witness method "
                "cannot invert an index that depends on data"
            )
            continue
        hyps, reads = [], []
        for tr in tables:
            hyps += [quot.rewrite(f).subs(w) for f in tr.hyps]
            reads += [(n, t, tuple(quot.rewrite(x).subs(w) for x in idx)) for n, t, idx in tr.reads]
        formula = shapes.conj(*(f.subs(w) for f in base), eq_w)
        out.append(
            _own_instance(an, site, tag, len(out), Witness(inst, w, formula, hyps, reads, quot))
        )
    return out, why


def _own_instance(an: Analysis, site: Site, tag: str, k: int, wt: Witness) -> Witness:
    """The ``k``-th candidate renamed to its own instance (tag ``{tag}_{k}``; ``k = 0`` keeps
    ``tag``)."""
    if k == 0:
        return wt
    new = f"{tag}_{k}"
    names: set[str] = set(wt.formula.free_symbols())
    for f in wt.hyps:
        names |= f.free_symbols()
    for n, _t, idx in wt.reads:
        names.add(n)
        for x in idx:
            names |= x.free_symbols()
    for key, val in wt.sub.items():
        names.add(key)
        names |= val.free_symbols()
    for v, _g, q, r in wt.quot.splits:
        names |= {v, q, r}
    suffix = f"__{tag}"
    ren = {n: shapes.sym(n[: -len(tag)] + new) for n in names if n.endswith(suffix)}

    def rn(n: str) -> str:
        e = ren.get(n)
        return e.as_symbol() if e is not None else n

    return Witness(
        an.instance(site, new),
        {rn(key): val.subs(ren) for key, val in wt.sub.items()},
        wt.formula.subs(ren),
        [f.subs(ren) for f in wt.hyps],
        [(rn(n), t, tuple(x.subs(ren) for x in idx)) for n, t, idx in wt.reads],
        wt.quot.renamed(ren),
    )


@dataclass
class _TableRead:
    """A store's read of a work table (``enumerates=``), its value solved for as a key.

    ``value`` is the read's data symbol, ``index`` where it reads, ``at`` a fresh name
    for the position of the entry that holds the key (the read is solved to read
    there), ``keyset`` the key's membership in the enumerated set, ``hyps``: where the
    key is in the set, ``0 <= at < count`` (the declaration's promise), and the declared
    ranges of the declaration's reads; ``reads``: those reads for consistency.
    """

    value: str
    index: shapes.Expr
    at: shapes.Expr
    bounds: tuple
    keyset: shapes.Formula
    hyps: list
    reads: list


def _table_reads(an: Analysis, inst: Instance, names: set[str]) -> list[_TableRead]:
    """The work-table reads among the data symbols ``names`` of a store instance.

    Soundness (existence of a writer): for an element the query asks for some candidate
    to hold.  A candidate requires its key ``K`` to be in the enumerated set, and its
    position name ``at`` is universally quantified under ``K in set => 0 <= at < count``;
    instantiated with the real position of ``K`` (which the declaration promises), the
    candidate's instance reads the table there and gets ``K``, which is the value the
    candidate assumed.
    """
    out = []
    for n in sorted(names):
        d = an.data.get(n.partition("__")[0])
        t = an.model.tensors.get(d.tensor) if d is not None else None
        if t is None or getattr(t, "enumerates", None) is None or len(d.index) != 1:
            continue
        v = shapes.sym(n)
        rsym = {r: shapes.sym(f"_rd_{r}_{n}") for r in t.read_map}
        keyset = shapes.conj(t.values.subs({"v": v}), t.enumerates.subs({"v": v, **rsym}))
        at = shapes.sym(f"_at_{n}")
        count = t.count.subs(rsym)
        # fresh names are any integers (the solver's default for a symbol is >= 1)
        hyps = [
            shapes.ge(at, INT64_MIN),
            shapes.disj(shapes.negate(keyset), shapes.conj(shapes.ge(at, 0), shapes.lt(at, count))),
        ]
        reads = []
        for r, (tensor, idx) in t.read_map.items():
            src = an.model.tensors[tensor]
            index = tuple(x.subs({"v": v}) for x in idx)
            reads.append((rsym[r].as_symbol(), tensor, index))
            bits = 8 * src.itemsize
            hyps += [
                shapes.ge(rsym[r], -(2 ** (bits - 1))),
                shapes.le(rsym[r], 2 ** (bits - 1) - 1),
            ]
            if src.values is not None:  # an in-bounds read satisfies the declared range
                inside = shapes.conj(
                    *(
                        shapes.conj(shapes.ge(x, 0), shapes.lt(x, n_))
                        for x, n_ in zip(index, src.shape)
                    )
                )
                hyps.append(shapes.disj(shapes.negate(inside), src.values.subs({"v": rsym[r]})))
        out.append(_TableRead(n, inst(d.index[0]), at, _key_bounds(t), keyset, hyps, reads))
    return out


def _key_bounds(t) -> tuple:
    """``(lo, hi)`` (symbolic, ``hi`` exclusive) from a table's ``values`` where it states them
    literally (the last of each met); only used to pick candidates, never assumed."""
    los, his, _exact = var_bounds(t.values, "v")
    return (los[-1] if los else shapes.as_expr(0)), (his[-1] if his else shapes.as_expr(1))


def decide_witnesses(an: Analysis, cands: list, q: shapes.Formula, assume) -> Answer:
    """Decide ``q`` (the disjunction of the candidate witnesses ``cands``).

    The first candidate (the likeliest: digits read off the element's own structure,
    place values in their natural order) alone, with the full solver, and, where that
    is undecided, part by part: its conjuncts proved separately (smaller queries,
    shared between accesses through the cache) prove it too.  The other candidates get
    the cheap attempts only.  Then the whole disjunction (an element some candidates
    write in some cases and others in the rest), which also yields the counterexample
    of a violation, and where that is undecided the other candidates part by part.
    A candidate is never refuted on its own: that proves nothing.
    """
    if len(cands) > 1:
        for k, c in enumerate(cands):
            ans = an.decide(c, assume, quick=k > 0)
            if ans.proved:
                return ans
            if k == 0 and ans.status == "unknown" and _parts_proved(an, c, assume):
                return Answer("proved")
            if ans.status == "refuted" and _refutes(q, assume, ans.cex):
                return ans  # its counterexample (a model of the assumptions) fails them all
    ans = an.decide(q, assume)
    rest = cands[1:] if len(cands) > 1 else cands
    if ans.status == "unknown" and any(_parts_proved(an, c, assume) for c in rest):
        return Answer("proved")
    return ans


def _refutes(q: shapes.Formula, assume, cex) -> bool:
    """``cex`` satisfies every assumption and falsifies ``q`` (evaluated, no solver)."""
    try:
        return bool(cex) and all(f.evaluate(cex) for f in assume) and not q.evaluate(cex)
    except (shapes.ShapeError, ZeroDivisionError):
        return False


def _parts_proved(an: Analysis, c: shapes.Formula, assume) -> bool:
    parts = flatten([c])
    return len(parts) > 1 and all(an.decide(p, assume).proved for p in parts)


def positive(an: Analysis, site: Site, g: shapes.Expr) -> bool:
    """``g >= 1`` wherever ``site`` runs (a proof; anything else is False)."""
    q = shapes.ge(g, 1)
    return an.decide(q, an.assume(an.scope(site), query=q)).status == "proved"


def why_unknown(ans: Answer) -> Answer:
    if ans.status == "unknown":
        return Answer("unknown", reason=f"the witness method could not decide: {ans.reason}")
    return ans
