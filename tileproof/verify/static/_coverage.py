"""``coverage``: outputs written exactly once; scratch read only where written before.

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
* scratch read, load ``L`` of scratch ``t``:
  ``forall x. Dom /\\ Ctx_L(x) /\\ Mask_L(x) => \\/_S \\/_w W_S,w(e_L(x)) /\\ Before(w, x)``
  with ``Before``: an earlier phase (grid barriers passed), or the same program
  earlier in program order.

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

from ... import shapes
from ...lowering._model import Access
from .._report import Obligation
from . import _concrete
from ._context import Analysis, Answer, Instance, Site, all_eq, plain
from ._digits import split as split_digits
from ._witness import Dim, solve

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
        elif t.role == "scratch":
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


def witnesses(an: Analysis, site: Site, element, tag: str):
    """``(instance, [(assignment, formula)], why)``: candidate witnesses that ``site`` touches
    ``element``; ``why`` says why there are none (an index through data)."""
    inst = an.instance(site, tag)
    acc: Access = site.node
    coords = iter(acc.coord_ranges())
    dims = []
    for d, e in zip(acc.dims, element):
        dims.append(Dim(inst(d.start), e, None if d.point else inst.name(next(coords)[0]),
                        d.size))
    unknowns = unknown_ranges(an, site, inst)
    base = [inst(f) for f in reach(an, site)]
    equal = all_eq([inst(x) for x in acc.element()], element)
    mine = {inst.name(n) for n in an.data if n in an.per_instance}
    out, why = [], ""
    stuck: list = []
    cands = solve(dims, unknowns, stuck)
    if stuck:
        d = stuck[0]
        return inst, [], (f"the index map of the store at {acc.loc.short} cannot be inverted "
                          f"(an index {plain(d.start, an)} of {acc.tensor} mixes the program and "
                          "loop indices non-linearly)")
    for w in cands:
        eq_w = equal.subs(w)
        data = eq_w.free_symbols() & mine
        if data:  # the element depends on values this store reads: not invertible
            d = an.data[sorted(data)[0].partition("__")[0]]
            why = (f"the store at {acc.loc.short} indexes {acc.tensor} through "
                   f"{plain(shapes.sym(d.name), an)} (line {d.loc.line}); the witness method "
                   "cannot invert an index that depends on data")
            continue
        out.append((w, shapes.conj(*(f.subs(w) for f in base), eq_w)))
    return inst, out, why


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
    cands, whys = [], []
    for i, s in enumerate(stores):
        _inst, ws, why = witnesses(an, s, es, f"w{i}")
        cands += [f for _w, f in ws]
        whys += [why] if why else []
    q = shapes.disj(*cands)
    assume = an.assume(rng, query=q)
    if whys:  # some writer is not invertible: only a concrete search can say more
        return _at(_search(an, stores[0], title, whys[0], t0, name), loc)
    ans = an.decide(q, assume)
    if ans.status != "refuted":
        return _at(an.obligation("coverage", stores[0], title, _why_unknown(ans), t0=t0), loc)
    cex = an.minimise(q, assume, ans.cex)
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
            if not any(_concrete.covers(ev.site.node, ev.env, el) for ev in writes):
                missing = el
                break
    except (_concrete.TooLarge, ZeroDivisionError, shapes.ShapeError) as e:
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
        raise _concrete.TooLarge(f"{total} elements")
    return itertools.product(*(range(d) for d in dims))


def _confirm_unwritten(an, stores, title, t0, name, sizes, element, cex, evs=None):
    t = an.model.tensors[name]
    try:
        if evs is None:
            evs = _events(an, sizes, _data_of(an, cex))
    except (_concrete.TooLarge, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation("coverage", stores[0], title, Answer(
            "unknown", reason=f"no witness found for element {list(element)} at "
            f"{an.show(an.values(sizes))} and a concrete check was not possible ({e})"), t0=t0)
    writes = _stores_of(evs, name)
    if any(_concrete.covers(ev.site.node, ev.env, element) for ev in writes):
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


def _events(an: Analysis, sizes: dict, data: dict | None = None) -> list:
    """Concrete events at these sizes and data values (one run per distinct input)."""
    key = ("events", tuple(sorted(sizes.items())), tuple(sorted((data or {}).items())))
    got = an.memo.get(key)
    if got is None:
        got = an.memo[key] = _concrete.events(an, sizes, data=data)
    return got


def _stores_of(evs, name: str) -> list:
    return [ev for ev in evs if isinstance(ev.site.node, Access) and ev.site.node.kind == "store"
            and ev.site.node.tensor == name]


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
        if not any(_concrete.covers(ev.site.node, ev.env, el) for ev in writes):
            rows.append(x)
    return rows or [element[0]]


def _store_counts(an: Analysis, stores: list[Site], writes, sizes) -> str:
    parts = []
    for s in stores:
        n = sum(1 for ev in writes if ev.site is s)
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
            cex = an.minimise(q, assume, ans.cex)
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
    ids += [ln.var for ln in s.lanes if any(ln is m for m in ld.lanes)]
    same = all_eq([w(shapes.sym(p)) for p in ids], [r(shapes.sym(p)) for p in ids])
    common = [lp.var for lp in s.loops if any(lp is m for m in ld.loops)]
    ws = [w(shapes.sym(v)) for v in common]
    rs = [r(shapes.sym(v)) for v in common]
    lex = [shapes.conj(all_eq(ws[:j], rs[:j]), shapes.lt(ws[j], rs[j])) for j in range(len(ws))]
    if s.order < ld.order:
        lex.append(all_eq(ws, rs))
    program_order = shapes.conj(shapes.eq(w(s.phase), r(ld.phase)), same, shapes.disj(*lex))
    return shapes.disj(earlier, program_order)


def _scratch_read(an: Analysis, ld: Site, stores: list[Site]) -> Obligation:
    t0 = time.perf_counter()
    acc: Access = ld.node
    title = f"load {acc.tensor} at {acc.loc.short} reads only elements written before"
    r = an.instance(ld, "r")
    element = [r(x) for x in acc.element()]
    hyps = [r(f) for f in reach(an, ld)]
    cands, whys = [], []
    for i, s in enumerate(stores):
        w, ws, why = witnesses(an, s, element, f"w{i}")
        order = before(an, s, w, ld, r)
        cands += [shapes.conj(f, order.subs(sub)) for sub, f in ws]
        whys += [why] if why else []
        # the writer's and the reader's reads of one input entry agree
        hyps += [f.subs(sub) for sub, _f in ws
                 for f in an.data_consistency(r, w, [*hyps, *(g for _s, g in ws)])]
    q = shapes.disj(*cands)
    assume = an.assume(hyps, query=q)
    if whys:
        return _search_reads(an, ld, stores, title, whys[0], t0)
    ans = an.decide(q, assume) if cands else Answer("refuted", None)
    if cands and ans.status != "refuted":
        return an.obligation("coverage", ld, title, _why_unknown(ans), t0=t0)
    if ans.cex is None:  # no store at all: any admissible read refutes
        ans = an.decide(F, assume)
        if ans.status != "refuted":
            return an.obligation("coverage", ld, title, ans, t0=t0)
        q = F
    cex = an.minimise(q, assume, ans.cex)
    return _confirm_reads(an, ld, stores, title, t0, cex, element)


def _search_reads(an: Analysis, ld: Site, stores, title: str, why: str, t0: float) -> Obligation:
    """No symbolic answer: look for unwritten reads in one concrete run at small sizes."""
    sizes = dict(an.example)
    try:
        evs = _events(an, sizes)
        unwritten = _unwritten_reads(ld.node, evs)
    except (_concrete.TooLarge, ZeroDivisionError, shapes.ShapeError) as e:
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
            evs = _events(an, sizes, _data_of(an, cex, "r"))
        if unwritten is None:
            unwritten = _unwritten_reads(acc, evs)
    except (_concrete.TooLarge, ZeroDivisionError, shapes.ShapeError) as e:
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
    vals = an.values({**sizes, **{k: v for k, v in cex.items() if k in an.global_data}})
    text = (f"{what} of {acc.tensor} {verb} never written before "
            f"{'they are' if verb == 'are' else 'it is'} read at "
            f"{acc.loc.short} when {an.show(vals)} (e.g. element {list(el)}){counts}")
    cx = {**vals, **{f"element[{k}]": v for k, v in enumerate(el)}}
    return an.obligation("coverage", ld, title, Answer("refuted", cex), violated=text, cex=cx,
                         t0=t0, detail={"element": list(el), "index": plain(acc.element()[0], an)})


def _unwritten_reads(acc: Access, evs, limit: int = 2_000_000) -> list[tuple[int, ...]]:
    """Elements some execution of ``acc`` reads that no earlier write touched."""
    written: dict[tuple, list] = {}
    budget = [0]
    for ev in evs:
        n = ev.site.node
        if isinstance(n, Access) and n.kind == "store" and n.tensor == acc.tensor:
            for el in _concrete.touched(n, ev.env):
                budget[0] += 1
                if budget[0] > limit:
                    raise _concrete.TooLarge("too many elements")
                written.setdefault(el, []).append((ev.phase, ev.program, ev.seq))
    out = set()
    for ev in evs:
        if ev.site.node is not acc:
            continue
        for el in _concrete.touched(acc, ev.env):
            ok = any(ph < ev.phase or (prog == ev.program and seq < ev.seq)
                     for ph, prog, seq in written.get(el, ()))
            if not ok:
                out.add(el)
    return sorted(out)
