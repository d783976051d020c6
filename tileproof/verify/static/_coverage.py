"""``coverage``: outputs written exactly once; outputs and scratch read only where written before.

Formal statements (``W_S(e)``: store ``S`` at a *witness* — program ids, lane
ids and loop indices obtained from the element by inverting the index map,
see :mod:`._witness` — is reached, in range, unmasked and touches ``e``):

* existence, output ``t``:
  ``forall sizes, e, data. Dom /\\ 0 <= e < shape(t) => \\/_S \\/_w W_S,w(e)``
* uniqueness, store ``A`` against every store ``B`` of ``t`` (``B`` not before ``A``):
  ``forall x1, x2. Dom /\\ Ctx_A(x1) /\\ Mask_A(x1) /\\ Ctx_B(x2) /\\ Mask_B(x2)
  /\\ e_A(x1) = e_B(x2) => A = B /\\ same(x1, x2)``
  where ``same`` compares program ids, lane ids and the loop indices that the
  store's index uses: the same program rewriting the same tile on iterations
  of a loop whose index its index does not use is an accumulation, not a
  double write.  Different stores writing one element are a double write.
* scratch (or output) read, load ``L`` of scratch or output ``t``:
  ``forall x. Dom /\\ Ctx_L(x) /\\ Mask_L(x) => \\/_S \\/_w W_S,w(e_L(x)) /\\ Before(w, x)``
  with ``Before``: an earlier phase (grid barriers passed), or the same program
  earlier in program order, or another lane of the same program before a
  ``lanes`` barrier the reader has passed.

The witness is a candidate only: if the disjunction is refuted the verifier
evaluates the model concretely at the counterexample's sizes and reports
``violated`` only when no execution writes the element; otherwise ``unknown``.
A store whose index map cannot be inverted (it indexes through data, or mixes
program and loop indices non-linearly) gets no witness: one concrete run at
small admissible sizes then looks for a violation, and finding none the
verdict is ``unknown`` with that reason — never ``proved``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ... import shapes
from ...model import Access
from ...model import _interp as interp
from .._report import Obligation
from ._context import (
    INT64_MIN,
    Analysis,
    Answer,
    Instance,
    Site,
    _conjuncts,
    all_eq,
    lane_order,
    plain,
)
from ._digits import split as split_digits
from ._witness import Dim, Quotients, solve

__all__ = ["check", "witnesses"]

F = shapes.disj()


def check(an: Analysis) -> list[Obligation]:
    out: list[Obligation] = []
    for name, t in an.model.tensors.items():
        stores = [s for s in an.sites if isinstance(s.node, Access) and s.node.tensor == name
                  and s.node.kind == "store"]
        if t.role == "output":
            out.append(_exists(an, name, stores))
            for s in stores:
                out.append(_unique(an, s, [b for b in stores if b.order >= s.order]))
        if t.role in ("output", "scratch"):
            # an output starts undefined like scratch (a tensor the kernel reads back before
            # writing is an ``updated`` input): every read must follow a write
            loads = [s for s in an.sites if isinstance(s.node, Access) and s.node.tensor == name
                     and s.node.kind == "load"]
            for ld in loads:
                out.append(_scratch_read(an, ld, stores))
    return out


# ---------------------------------------------------------------------------- witnesses


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
    quot = Quotients.find([inst(d.start) for d in acc.dims], unknowns,
                          lambda g: _positive(an, site, g))
    coords = iter(acc.coord_ranges())
    dims = []
    for d, e in zip(acc.dims, element):
        dims.append(Dim(quot.rewrite(inst(d.start)), e,
                        None if d.point else inst.name(next(coords)[0]), d.size))
    extra: list[shapes.Formula] = []
    for tr in tables:  # the table entry read holds the key: its position is the table's
        dims.append(Dim(quot.rewrite(tr.index), tr.at, None))
        extra.append(shapes.eq(tr.index, tr.at))
        base.append(tr.keyset)
    equal = shapes.conj(quot.rewrite(equal), *(quot.rewrite(f) for f in extra))
    base = [quot.rewrite(f) for f in base] + quot.facts()
    unknowns = quot.unknowns(unknowns)
    why = ""
    stuck: list = []
    cands = [quot.complete(w) for w in solve(dims, unknowns, stuck)]
    if stuck:
        d = stuck[0]
        return [], (f"the index map of the store at {acc.loc.short} cannot be inverted "
                    f"(an index {plain(d.start, an)} of {acc.tensor} mixes the program and "
                    "loop indices non-linearly)")
    out: list[Witness] = []
    for w in cands:
        eq_w = equal.subs(w)
        data = eq_w.free_symbols() & mine
        if data:  # the element depends on values this store reads: not invertible
            d = an.data[sorted(data)[0].partition("__")[0]]
            why = (f"the store at {acc.loc.short} indexes {acc.tensor} through "
                   f"{plain(shapes.sym(d.name), an)} (line {d.loc.line}); the witness method "
                   "cannot invert an index that depends on data")
            continue
        hyps, reads = [], []
        for tr in tables:
            hyps += [quot.rewrite(f).subs(w) for f in tr.hyps]
            reads += [(n, t, tuple(quot.rewrite(x).subs(w) for x in idx))
                      for n, t, idx in tr.reads]
        formula = shapes.conj(*(f.subs(w) for f in base), eq_w)
        out.append(_own_instance(an, site, tag, len(out),
                                 Witness(inst, w, formula, hyps, reads, quot)))
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
        hyps = [shapes.ge(at, INT64_MIN),
                shapes.disj(shapes.negate(keyset), shapes.conj(shapes.ge(at, 0),
                                                               shapes.lt(at, count)))]
        reads = []
        for r, (tensor, idx) in t.read_map.items():
            src = an.model.tensors[tensor]
            index = tuple(x.subs({"v": v}) for x in idx)
            reads.append((rsym[r].as_symbol(), tensor, index))
            bits = 8 * src.itemsize
            hyps += [shapes.ge(rsym[r], -(2 ** (bits - 1))), shapes.le(rsym[r], 2 ** (bits - 1) - 1)]
            if src.values is not None:  # an in-bounds read satisfies the declared range
                inside = shapes.conj(*(shapes.conj(shapes.ge(x, 0), shapes.lt(x, n_))
                                       for x, n_ in zip(index, src.shape)))
                hyps.append(shapes.disj(shapes.negate(inside), src.values.subs({"v": rsym[r]})))
        out.append(_TableRead(n, inst(d.index[0]), at, _key_bounds(t), keyset, hyps, reads))
    return out


def _key_bounds(t) -> tuple:
    """``(lo, hi)`` (symbolic, ``hi`` exclusive) from a table's ``values`` where it states them
    literally; only used to pick candidates, never assumed."""
    lo, hi = shapes.as_expr(0), shapes.as_expr(1)
    stack = [t.values]
    while stack:
        f = stack.pop()
        if isinstance(f, shapes.BoolOp) and f.kind == "and":
            stack.extend(f.args)
        elif isinstance(f, shapes.Cmp):
            for a, op, b in ((f.lhs, f.op, f.rhs), (f.rhs, _FLIP.get(f.op, ""), f.lhs)):
                if a.as_symbol() == "v" and "v" not in b.free_symbols():
                    if op in (">=", ">"):
                        lo = b + int(op == ">")
                    elif op in ("<", "<="):
                        hi = b + int(op == "<=")
    return lo, hi


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


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
    parts = _conjuncts([c])
    return len(parts) > 1 and all(an.decide(p, assume).proved for p in parts)


def _positive(an: Analysis, site: Site, g: shapes.Expr) -> bool:
    """``g >= 1`` wherever ``site`` runs (a proof; anything else is False)."""
    q = shapes.ge(g, 1)
    return an.decide(q, an.assume(an.scope(site), query=q)).status == "proved"


def _elements(t, tag="_e") -> tuple[list[shapes.Expr], list[shapes.Formula]]:
    es = [shapes.sym(f"{tag}{k}") for k in range(len(t.shape))]
    rng = []
    for e, n in zip(es, t.shape):
        rng += [shapes.ge(e, 0), shapes.lt(e, n)]
    return es, rng


def _noun(what: str, vals) -> str:
    """``rows 0..47`` / ``row 5``: the word in the number the values call for."""
    text = _ranges_text(list(vals))
    single = len(set(vals)) == 1
    return f"{what[:-1] if single else what} {text}"


def _ranges_text(vals: list[int]) -> str:
    vals = sorted(set(vals))
    parts, i = [], 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}..{vals[j]}")
        i = j + 1
    if len(parts) > 6:
        parts = [*parts[:5], "..."]
    return ", ".join(parts)


def _data_of(an: Analysis, cex: dict, tag: str | None = None) -> dict[str, int]:
    out = {}
    for k, v in cex.items():
        base, _, t = k.partition("__")
        if base in an.data and (tag is None or t == tag or not t):
            out.setdefault(base, v)
    return out


# ---------------------------------------------------------------------------- existence


def _exists(an: Analysis, name: str, stores: list[Site]) -> Obligation:
    t0 = time.perf_counter()
    t = an.model.tensors[name]
    loc = stores[0].loc if stores else getattr(t, "where", None) or an.model_location()
    title = f"every element of output {name} is written"
    es, rng = _elements(t)
    if not stores:
        q = shapes.disj(*(shapes.le(n, 0) for n in t.shape)) if t.shape else F
        ans = an.decide(q, an.domain)
        ob = an.obligation("coverage", None, title, ans, t0=t0)
        ob.location = loc
        if ans.status == "refuted":
            sizes = an.values({k: v for k, v in ans.cex.items() if an.is_size(k)})
            ob.message = f"output {name} is never written (no store to it) when {an.show(sizes)}"
            ob.counterexample = sizes
        return ob
    cands, whys, hyps = [], [], list(rng)
    for i, s in enumerate(stores):
        ws, why = witnesses(an, s, es, f"w{i}")
        cands += [wt.formula for wt in ws]
        whys += [why] if why else []
        for wt in ws:
            hyps += wt.hyps
            if wt.reads:  # the declaration's reads agree with the store's own reads
                hyps += [wt.apply(f) for f in an.data_consistency(
                    wt.inst, wt.inst, [wt.formula], extra=wt.reads)]
    q = shapes.disj(*cands)
    assume = an.assume(hyps, query=q)
    if whys:  # some writer is not invertible: only a concrete search can say more
        return _at(_search(an, stores[0], title, whys[0], t0, name), loc)
    ans = decide_witnesses(an, cands, q, assume)
    if ans.status != "refuted":
        return _at(an.obligation("coverage", stores[0], title, _why_unknown(ans), t0=t0), loc)
    cex = an.complete(q, assume, an.minimise(q, assume, ans.cex), es)
    if cex is None:  # every value a message shows comes from a re-checked assignment
        return _at(an.obligation("coverage", stores[0], title, Answer("unknown", reason=(
            "refuted, but no complete counterexample could be re-checked for the message")),
            t0=t0), loc)
    sizes = {k: v for k, v in cex.items() if an.is_size(k)}
    element = tuple(e.evaluate(cex) for e in es)
    return _at(_confirm_unwritten(an, stores, title, t0, name, sizes, element, cex), loc)


def _search(an: Analysis, site: Site, title: str, why: str, t0: float, name: str) -> Obligation:
    """No symbolic answer: look for unwritten elements in one concrete run at small sizes."""
    t = an.model.tensors[name]
    sizes = dict(an.example)
    try:
        evs = _events(an, sizes)
        writes = _stores_of(evs, name)
        dims = [d.evaluate(sizes) for d in t.shape]
        missing = None
        for el in _all_elements(dims):
            if not any(interp.covers(ev.node, ev.env, el) for ev in writes):
                missing = el
                break
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation("coverage", site, title, Answer("unknown", reason=f"{why} ({e})"),
                             t0=t0)
    if missing is None:
        return an.obligation("coverage", site, title, Answer(
            "unknown", reason=f"{why}; a concrete run at {an.show(an.values(sizes))} writes "
            "every element"), t0=t0)
    stores = [s for s in an.sites if isinstance(s.node, Access) and s.node.kind == "store"
              and s.node.tensor == name]
    return _confirm_unwritten(an, stores, title, t0, name, sizes, missing, dict(sizes), evs)


def _all_elements(dims, limit: int = 1 << 20):
    import itertools

    total = 1
    for d in dims:
        total *= max(d, 0)
    if total > limit:
        raise interp.TooLarge(f"{total} elements")
    return itertools.product(*(range(d) for d in dims))


def _confirm_unwritten(an, stores, title, t0, name, sizes, element, cex, evs=None):
    t = an.model.tensors[name]
    try:
        if evs is None:
            evs = _events(an, sizes, _data_of(an, cex), _cells_of(an, cex))
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation("coverage", stores[0], title, Answer(
            "unknown", reason=f"no witness found for element {list(element)} at "
            f"{an.show(an.values(sizes))} and a concrete check was not possible ({e})"), t0=t0)
    writes = _stores_of(evs, name)
    if any(interp.covers(ev.node, ev.env, element) for ev in writes):
        return an.obligation("coverage", stores[0], title, Answer(
            "unknown", reason=f"the witness method found no writer of element {list(element)} at "
            f"{an.show(an.values(sizes))}, but a concrete run writes it"), t0=t0)
    missing = _unwritten_rows(t, sizes, element, writes)
    vals = an.values({**sizes, **{k: v for k, v in cex.items() if k in an.global_data}})
    counts = _store_counts(an, stores, writes, sizes)
    what = _noun("rows" if len(t.shape) > 1 else "elements", missing)
    verb = "are" if len(set(missing)) > 1 else "is"
    text = (f"{what} of output {name} {verb} never written when {an.show(vals)} "
            f"(e.g. element {list(element)}){counts}")
    cx = {**vals, **{f"element[{k}]": v for k, v in enumerate(element)}}
    return an.obligation("coverage", stores[0], title, Answer("refuted", cex), violated=text,
                         cex=cx, t0=t0, detail={"element": list(element)})


def _events(an: Analysis, sizes: dict, data: dict | None = None,
            cells: dict | None = None) -> list:
    """Concrete events at these sizes and data values (one run per distinct input)."""
    key = ("events", tuple(sorted(sizes.items())), tuple(sorted((data or {}).items())),
           tuple(sorted((cells or {}).items())))
    got = an.memo.get(key)
    if got is None:
        got = an.memo[key] = interp.events(an.model, sizes, data=data, cells=cells)
    return got


def _cells_of(an: Analysis, cex: dict, tag: str | None = None) -> dict:
    """``{(tensor, index): value}`` for the data symbols of a counterexample whose index it
    determines (the reads of instance ``tag`` and shared ones first)."""
    out: dict = {}
    names = sorted(cex, key=lambda k: (k.partition("__")[2] not in ("", tag), k))
    for k in names:
        base, sep, t = k.partition("__")
        d = an.data.get(base)
        if d is None:
            continue
        inst = an.instance(None, t) if sep else Instance({}, "")
        try:
            idx = tuple(inst(x).evaluate(cex) for x in d.index)
        except (shapes.ShapeError, ZeroDivisionError):
            continue
        out.setdefault((d.tensor, idx), int(cex[k]))
    return out


def _stores_of(evs, name: str) -> list:
    return [ev for ev in evs if isinstance(ev.node, Access) and ev.node.kind == "store"
            and ev.node.tensor == name]


def _at(ob: Obligation, loc) -> Obligation:
    ob.location = loc
    return ob


def _why_unknown(ans: Answer) -> Answer:
    if ans.status == "unknown":
        return Answer("unknown", reason=f"the witness method could not decide: {ans.reason}")
    return ans


def _unwritten_rows(t, sizes, element, writes, limit: int = 4096) -> list[int]:
    """First-dimension indices (the others as in ``element``) that no write touches."""
    n0 = t.shape[0].evaluate(sizes) if t.shape else 0
    rows = []
    for x in range(min(n0, limit)):
        el = (x, *element[1:])
        if not any(interp.covers(ev.node, ev.env, el) for ev in writes):
            rows.append(x)
    return rows or [element[0]]


def _store_counts(an: Analysis, stores: list[Site], writes, sizes) -> str:
    parts = []
    for s in stores:
        n = sum(1 for ev in writes if ev.node is s.node)
        parts.append(f"the store at {s.loc.short} runs {n} time{'s' * (n != 1)}")
    grid = ", ".join(f"{p} < {an.extents[p]} = {an.extents[p].evaluate(sizes)}" for p in an.pids)
    return f"; {'; '.join(parts)}" + (f" (grid {grid})" if grid else "")


# ---------------------------------------------------------------------------- uniqueness


def relevant_loops(an: Analysis, site: Site) -> list[str]:
    """Loop indices the store's element depends on (directly or through data it reads)."""
    names: set[str] = set()
    for e in site.node.element():
        names |= e.free_symbols()
    seen: set[str] = set()
    while True:
        more = set()
        for n in names - seen:
            seen.add(n)
            d = an.data.get(n)
            if d is not None:
                for x in d.index:
                    more |= x.free_symbols()
        if not more - names:
            break
        names |= more
    return [lp.var for lp in site.loops if lp.var in names]


def digit_pairs(an: Analysis, a: Site, b: Site, ea: shapes.Expr, eb: shapes.Expr):
    """``ea = eb`` split into equalities of digits (see :mod:`._digits`)."""

    def private(atom) -> bool:
        return any(not an.is_shared(n) for n in shapes.Expr.atom(atom).free_symbols())

    def bounded(side: str, low: shapes.Expr, h: shapes.Expr) -> bool:
        site = a if side == "a" else b
        q = shapes.conj(shapes.ge(low, 0), shapes.lt(low, h))
        return an.decide(q, an.assume(reach(an, site), query=q), quick=True).status == "proved"

    return split_digits(ea, eb, private, bounded)


def pair(an: Analysis, a: Site, b: Site, tags=("1", "2")):
    """Both accesses reached (renamed apart) and touching one element; the two instances."""
    i1, i2 = an.instance(a, tags[0]), an.instance(b, tags[1])
    hyps = [i1(f) for f in reach(an, a)] + [i2(f) for f in reach(an, b)]
    for ea, eb in zip(a.node.element(), b.node.element()):
        for xa, xb in digit_pairs(an, a, b, ea, eb):
            hyps.append(shapes.eq(i1(xa), i2(xb)))
    if an.rank_var and an.rank_var not in an.extents:  # one device's memory
        hyps.append(shapes.eq(i1(shapes.sym(an.rank_var)), i2(shapes.sym(an.rank_var))))
    hyps += an.data_consistency(i1, i2, hyps)
    return i1, i2, hyps


def _unique(an: Analysis, a: Site, others: list[Site]) -> Obligation:
    t0 = time.perf_counter()
    acc: Access = a.node
    title = f"store {acc.tensor} at {acc.loc.short} writes no element twice"
    answers = []
    for b in others:
        i1, i2, hyps = pair(an, a, b)
        if b is a:
            names = list(an.pids) + [ln.var for ln in a.lanes] + relevant_loops(an, a)
            if an.rank_var and an.rank_var not in an.extents:
                names.append(an.rank_var)
            q = all_eq([i1(shapes.sym(n)) for n in names], [i2(shapes.sym(n)) for n in names])
        else:
            q = F
        assume = an.assume(hyps, query=q)
        ans = an.decide(q, assume)
        if ans.status == "refuted":
            cex = an.complete(q, assume, an.minimise(q, assume, ans.cex),
                              [i1(x) for x in acc.element()])
            if cex is None:  # every value a message shows comes from a re-checked assignment
                answers.append(Answer("unknown", reason="refuted, but no complete "
                                      "counterexample could be re-checked for the message"))
                continue
            sizes, (x1, x2) = an.split(cex, "1", "2")
            el = [x.subs(i1.mapping).evaluate(cex) for x in acc.element()]
            second = "" if b is a else f" (store at {b.loc.short})"
            text = (f"element {el} of {acc.tensor} is written twice: by {an.who(x1)} "
                    f"(store at {acc.loc.short}) and by {an.who(x2)}{second}, "
                    f"when {an.show(sizes)}")
            cx = an.primed(sizes, [x1, x2])
            cx.update({f"element[{k}]": v for k, v in enumerate(el)})
            return an.obligation("coverage", a, title, ans, violated=text, cex=cx, t0=t0,
                                 detail={"element": el, "other": str(b.loc)})
        answers.append(ans)
    bad = next((x for x in answers if x.status != "proved"), None)
    return an.obligation("coverage", a, title, bad or Answer("proved"), t0=t0)


# ------------------------------------------------------------------------- scratch reads


def before(an: Analysis, s: Site, w: Instance, ld: Site, r: Instance) -> shapes.Formula:
    """The store instance ``w`` of ``s`` happens before the load instance ``r`` of ``ld``."""
    earlier = shapes.lt(w(s.phase), r(ld.phase))
    ids = list(an.pids) + ([an.rank_var] if an.rank_var and an.rank_var not in an.extents else [])
    lanes = [ln.var for ln in s.lanes if any(ln is m for m in ld.lanes)]
    same_prog = all_eq([w(shapes.sym(p)) for p in ids], [r(shapes.sym(p)) for p in ids])
    same = shapes.conj(same_prog, all_eq([w(shapes.sym(v)) for v in lanes],
                                         [r(shapes.sym(v)) for v in lanes]))
    common = [lp.var for lp in s.loops if any(lp is m for m in ld.loops)]
    ws = [w(shapes.sym(v)) for v in common]
    rs = [r(shapes.sym(v)) for v in common]
    lex = [shapes.conj(all_eq(ws[:j], rs[:j]), shapes.lt(ws[j], rs[j])) for j in range(len(ws))]
    if s.order < ld.order:
        lex.append(all_eq(ws, rs))
    program_order = shapes.conj(shapes.eq(w(s.phase), r(ld.phase)), same, shapes.disj(*lex))
    # another lane of the same program, before a lanes barrier the reader has passed
    lane_barrier = shapes.conj(shapes.eq(w(s.phase), r(ld.phase)), same_prog,
                               lane_order(an, s, w, ld, r, strict=True))
    return shapes.disj(earlier, program_order, lane_barrier)


def _scratch_read(an: Analysis, ld: Site, stores: list[Site]) -> Obligation:
    t0 = time.perf_counter()
    acc: Access = ld.node
    title = f"load {acc.tensor} at {acc.loc.short} reads only elements written before"
    r = an.instance(ld, "r")
    element = [r(x) for x in acc.element()]
    hyps = [r(f) for f in reach(an, ld)]
    cands, whys = [], []
    for i, s in enumerate(stores):
        ws, why = witnesses(an, s, element, f"w{i}")
        whys += [why] if why else []
        for wt in ws:
            cands.append(shapes.conj(wt.formula, wt.apply(before(an, s, wt.inst, ld, r))))
            # the writer's and the reader's reads of one input entry agree
            hyps += wt.hyps + [wt.apply(f) for f in an.data_consistency(
                r, wt.inst, [*hyps, wt.formula], extra=wt.reads)]
    q = shapes.disj(*cands)
    assume = an.assume(hyps, query=q)
    if whys:
        return _search_reads(an, ld, stores, title, whys[0], t0)
    ans = decide_witnesses(an, cands, q, assume) if cands else Answer("refuted", None)
    if cands and ans.status != "refuted":
        return an.obligation("coverage", ld, title, _why_unknown(ans), t0=t0)
    if ans.cex is None:  # no store at all: any admissible read refutes
        ans = an.decide(F, assume)
        if ans.status != "refuted":
            return an.obligation("coverage", ld, title, ans, t0=t0)
        q = F
    cex = an.complete(q, assume, an.minimise(q, assume, ans.cex), element)
    if cex is None:  # every value a message shows comes from a re-checked assignment
        return an.obligation("coverage", ld, title, Answer("unknown", reason=(
            "refuted, but no complete counterexample could be re-checked for the message")),
            t0=t0)
    return _confirm_reads(an, ld, stores, title, t0, cex, element)


def _search_reads(an: Analysis, ld: Site, stores, title: str, why: str, t0: float) -> Obligation:
    """No symbolic answer: look for unwritten reads in one concrete run at small sizes."""
    sizes = dict(an.example)
    try:
        evs = _events(an, sizes)
        unwritten = _unwritten_reads(ld.node, evs)
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation("coverage", ld, title, Answer("unknown", reason=f"{why} ({e})"),
                             t0=t0)
    if not unwritten:
        return an.obligation("coverage", ld, title, Answer(
            "unknown", reason=f"{why}; a concrete run at {an.show(an.values(sizes))} reads "
            "only written elements"), t0=t0)
    el = unwritten[0]
    return _confirm_reads(an, ld, stores, title, t0, dict(sizes), None, el=el, evs=evs,
                          unwritten=unwritten)


def _confirm_reads(an, ld, stores, title, t0, cex, element, el=None, evs=None, unwritten=None):
    acc: Access = ld.node
    sizes = {k: v for k, v in cex.items() if an.is_size(k)}
    if el is None:
        el = tuple(e.evaluate(cex) for e in element)
    _s, (reader,) = an.split(cex, "r")
    try:
        if evs is None:
            evs = _events(an, sizes, _data_of(an, cex, "r"), _cells_of(an, cex, "r"))
        if unwritten is None:
            unwritten = _unwritten_reads(acc, evs)
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation("coverage", ld, title, Answer(
            "unknown", reason=f"no earlier write found for element {list(el)} read by "
            f"{an.who(reader)} at {an.show(an.values(sizes))}; concrete check not possible ({e})"),
            t0=t0)
    if not unwritten:
        return an.obligation("coverage", ld, title, Answer(
            "unknown", reason=f"the witness method found no earlier write of element {list(el)}"
            f" at {an.show(an.values(sizes))}, but a concrete run writes every element read"),
            t0=t0)
    t = an.model.tensors[acc.tensor]
    if el not in unwritten:
        el = min(unwritten)
    rows = [u[0] for u in unwritten]
    what = _noun("rows" if len(t.shape) > 1 else "elements", rows)
    verb = "are" if len(set(rows)) > 1 else "is"
    writes = _stores_of(evs, acc.tensor)
    counts = _store_counts(an, stores, writes, sizes) if stores else "; nothing stores to it"
    ev = next((e for e in evs if e.node is ld.node and el in set(interp.touched(acc, e.env))),
              None)
    if ev is not None:  # the reading program and the index-tensor values of this run
        vals = an.values(sizes)
        by = " by " + an.who({k: v for k, v in ev.env.items()
                              if k in an.pids or k == an.rank_var
                              or any(k == x.var for x in (*ld.lanes, *ld.loops))})
        data = _run_data(an, ld, stores, ev.env)
        shown = ", ".join(f"{k}={v}" for k, v in {**vals, **data}.items())
    else:
        vals = an.values({**sizes, **{k: v for k, v in cex.items() if k in an.global_data}})
        by, data, shown = "", {}, an.show(vals)
    text = (f"{what} of {acc.tensor} {verb} never written before "
            f"{'they are' if verb == 'are' else 'it is'} read at "
            f"{acc.loc.short}{by} when {shown} (e.g. element {list(el)}){counts}")
    cx = {**vals, **data, **{f"element[{k}]": v for k, v in enumerate(el)}}
    return an.obligation("coverage", ld, title, Answer("refuted", cex), violated=text, cex=cx,
                         t0=t0, detail={"element": list(el), "index": plain(acc.element()[0], an)})


def _run_data(an: Analysis, ld: Site, stores: list[Site], env: dict) -> dict[str, int]:
    """``{"seq_lens[0]": 0, ...}``: the index-tensor elements a concrete run gave the reader's
    context and the stores' shared conditions (a loop over ``num_work[0]`` entries)."""
    names: set[str] = set()
    for f in reach(an, ld):
        names |= f.free_symbols()
    for s in an.sites:  # what the reader read before, in the same phase and loop iteration
        n = s.node
        if (isinstance(n, Access) and n.value is not None and s.order < ld.order
                and s.phase == ld.phase and len(s.loops) <= len(ld.loops)
                and all(a is b for a, b in zip(s.loops, ld.loops))
                and all(a is b for a, b in zip(s.lanes, ld.lanes))):
            names.add(n.value)
    for s in stores:
        for f in reach(an, s):
            names |= f.free_symbols() & an.global_data
    out = {}
    for n in sorted(names & set(an.data), key=lambda n: an.data[n].loc.line or 0):
        if n not in env:
            continue
        d = an.data[n]
        try:
            idx = ", ".join(str(x.evaluate(env)) for x in d.index)
        except (shapes.ShapeError, ZeroDivisionError):
            continue
        out.setdefault(f"{d.tensor}[{idx}]", int(env[n]))
    return out


def _before(seq: int, lane, ev) -> bool:
    """A write (its position ``seq`` and lane mark) of the reader's program precedes the read
    ``ev``: another lane of the same lanes region only across a lanes barrier (the concrete
    run executes lanes one after the other), otherwise in program order."""
    if lane is not None and ev.lane is not None and lane[0] == ev.lane[0] and lane[1] != ev.lane[1]:
        return lane[2] < ev.lane[2]
    return seq < ev.seq


def _unwritten_reads(acc: Access, evs, limit: int = 2_000_000) -> list[tuple[int, ...]]:
    """Elements some execution of ``acc`` reads that no earlier write touched."""
    written: dict[tuple, list] = {}
    budget = [0]
    for ev in evs:
        n = ev.node
        if isinstance(n, Access) and n.kind == "store" and n.tensor == acc.tensor:
            for el in interp.touched(n, ev.env):
                budget[0] += 1
                if budget[0] > limit:
                    raise interp.TooLarge("too many elements")
                written.setdefault(el, []).append((ev.phase, ev.program, ev.seq, ev.lane))
    out = set()
    for ev in evs:
        if ev.node is not acc:
            continue
        for el in interp.touched(acc, ev.env):
            ok = any(ph < ev.phase or (prog == ev.program and _before(seq, lane, ev))
                     for ph, prog, seq, lane in written.get(el, ()))
            if not ok:
                out.add(el)
    return sorted(out)
