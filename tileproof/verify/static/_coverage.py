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
* scratch (or output) read: see :mod:`._read_after_write`.

Candidate writers come from :mod:`._writers`, pairs of instances from
:mod:`._pairs`, concrete confirmation from :mod:`._confirm`.  The witness is a
candidate only: if the disjunction is refuted the verifier evaluates the model
concretely at the counterexample's sizes and reports ``violated`` only when no
execution writes the element; otherwise ``unknown``.
A store whose index map cannot be inverted (it indexes through data, or mixes
program and loop indices non-linearly) gets no witness: one concrete run at
small admissible sizes then looks for a violation, and finding none the
verdict is ``unknown`` with that reason — never ``proved``.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access
from ...model import _interp as interp
from ...report import Obligation
from ...report._keys import element_items
from ._confirm import (
    all_elements,
    cells_of,
    data_of,
    noun,
    run_events,
    store_counts,
    stores_of,
    unwritten_rows,
)
from ._context import Analysis, Answer, Site, all_eq
from ._pairs import pair
from ._read_after_write import check_reads
from ._sites import bound_inside
from ._writers import decide_witnesses, why_unknown, witnesses

__all__ = ["check"]

F = shapes.disj()


def check(an: Analysis) -> list[Obligation]:
    out: list[Obligation] = []
    for name, t in an.model.tensors.items():
        stores = [
            s
            for s in an.sites
            if isinstance(s.node, Access) and s.node.tensor == name and s.node.kind == "store"
        ]
        if t.role == "output":
            out.append(_exists(an, name, stores))
            for s in stores:
                out.append(_unique(an, s, [b for b in stores if b.order >= s.order]))
        if t.role in ("output", "scratch"):
            # an output starts undefined like scratch (a tensor the kernel reads back before
            # writing is an ``updated`` input): every read must follow a write
            loads = [
                s
                for s in an.sites
                if isinstance(s.node, Access) and s.node.tensor == name and s.node.kind == "load"
            ]
            for ld in loads:
                out.append(check_reads(an, ld, stores))
    return out


def _elements(t, tag="_e") -> tuple[list[shapes.Expr], list[shapes.Formula]]:
    es = [shapes.sym(f"{tag}{k}") for k in range(len(t.shape))]
    rng = []
    for e, n in zip(es, t.shape):
        rng += [shapes.ge(e, 0), shapes.lt(e, n)]
    return es, rng


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
                hyps += [
                    wt.apply(f)
                    for f in an.data_consistency(wt.inst, wt.inst, [wt.formula], extra=wt.reads)
                ]
    q = shapes.disj(*cands)
    assume = an.assume(hyps, query=q)
    if whys:  # some writer is not invertible: only a concrete search can say more
        return _at(_search(an, stores[0], title, whys[0], t0, name), loc)
    ans = decide_witnesses(an, cands, q, assume)
    if ans.status != "refuted":
        return _at(an.obligation("coverage", stores[0], title, why_unknown(ans), t0=t0), loc)
    cex = an.complete(q, assume, an.minimise(q, assume, ans.cex), es)
    if cex is None:  # every value a message shows comes from a re-checked assignment
        return _at(
            an.obligation(
                "coverage",
                stores[0],
                title,
                Answer(
                    "unknown",
                    reason=(
                        "refuted, but no complete counterexample could be re-checked for the message"
                    ),
                ),
                t0=t0,
            ),
            loc,
        )
    sizes = {k: v for k, v in cex.items() if an.is_size(k)}
    element = tuple(e.evaluate(cex) for e in es)
    return _at(_confirm_unwritten(an, stores, title, t0, name, sizes, element, cex), loc)


def _search(an: Analysis, site: Site, title: str, why: str, t0: float, name: str) -> Obligation:
    """No symbolic answer: look for unwritten elements in one concrete run at small sizes."""
    t = an.model.tensors[name]
    sizes = dict(an.example)
    try:
        evs = run_events(an, sizes)
        writes = stores_of(evs, name)
        dims = [d.evaluate(sizes) for d in t.shape]
        missing = None
        for el in all_elements(dims):
            if not any(interp.covers(ev.node, ev.env, el) for ev in writes):
                missing = el
                break
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation(
            "coverage", site, title, Answer("unknown", reason=f"{why} ({e})"), t0=t0
        )
    if missing is None:
        return an.obligation(
            "coverage",
            site,
            title,
            Answer(
                "unknown",
                reason=f"{why}; a concrete run at {an.show(an.values(sizes))} writes every element",
            ),
            t0=t0,
        )
    stores = [
        s
        for s in an.sites
        if isinstance(s.node, Access) and s.node.kind == "store" and s.node.tensor == name
    ]
    return _confirm_unwritten(an, stores, title, t0, name, sizes, missing, dict(sizes), evs)


def _confirm_unwritten(an, stores, title, t0, name, sizes, element, cex, evs=None):
    t = an.model.tensors[name]
    try:
        if evs is None:
            evs = run_events(an, sizes, data_of(an, cex), cells_of(an, cex))
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation(
            "coverage",
            stores[0],
            title,
            Answer(
                "unknown",
                reason=f"no witness found for element {list(element)} at "
                f"{an.show(an.values(sizes))} and a concrete check was not possible ({e})",
            ),
            t0=t0,
        )
    writes = stores_of(evs, name)
    if any(interp.covers(ev.node, ev.env, element) for ev in writes):
        return an.obligation(
            "coverage",
            stores[0],
            title,
            Answer(
                "unknown",
                reason=f"the witness method found no writer of element {list(element)} at "
                f"{an.show(an.values(sizes))}, but a concrete run writes it",
            ),
            t0=t0,
        )
    missing = unwritten_rows(t, sizes, element, writes)
    vals = an.values({**sizes, **{k: v for k, v in cex.items() if k in an.global_data}})
    counts = store_counts(an, stores, writes, sizes)
    what = noun("rows" if len(t.shape) > 1 else "elements", missing)
    verb = "are" if len(set(missing)) > 1 else "is"
    text = (
        f"{what} of output {name} {verb} never written when {an.show(vals)} "
        f"(e.g. element {list(element)}){counts}"
    )
    cx = {**vals, **element_items(element)}
    return an.obligation(
        "coverage",
        stores[0],
        title,
        Answer("refuted", cex),
        violated=text,
        cex=cx,
        t0=t0,
        detail={"element": list(element)},
    )


def _at(ob: Obligation, loc) -> Obligation:
    ob.location = loc
    return ob


# ---------------------------------------------------------------------------- uniqueness


def relevant_loops(an: Analysis, site: Site) -> list[str]:
    """Loop indices the store's element depends on (directly or through data it reads).

    A read pinned to an index (an input the kernel never writes, or a read no store can
    follow: ``Analysis.settled``) gives one value per element, so it depends on the loops
    its index uses.  A read with no index (a tensor the kernel writes, see
    :func:`tileproof.lowering._data.unpin_written`; a masked carry) is a fresh value at
    every execution: it depends on every loop it is read (or carried) in, whatever its
    index — the same store on two iterations may write two elements."""
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
                for x in an.settled.get(n, d.index):
                    more |= x.free_symbols()
        if not more - names:
            break
        names |= more
    fresh = {n for n in names if n in an.data and not an.data[n].index and n not in an.settled}
    return [lp.var for lp in site.loops if lp.var in names or fresh & bound_inside(lp)]


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
            cex = an.complete(
                q, assume, an.minimise(q, assume, ans.cex), [i1(x) for x in acc.element()]
            )
            if cex is None:  # every value a message shows comes from a re-checked assignment
                answers.append(
                    Answer(
                        "unknown",
                        reason="refuted, but no complete "
                        "counterexample could be re-checked for the message",
                    )
                )
                continue
            sizes, (x1, x2) = an.split(cex, "1", "2")
            el = [x.subs(i1.mapping).evaluate(cex) for x in acc.element()]
            second = "" if b is a else f" (store at {b.loc.short})"
            text = (
                f"element {el} of {acc.tensor} is written twice: by {an.who(x1)} "
                f"(store at {acc.loc.short}) and by {an.who(x2)}{second}, "
                f"when {an.show(sizes)}"
            )
            cx = an.primed(sizes, [x1, x2])
            cx.update(element_items(el))
            return an.obligation(
                "coverage",
                a,
                title,
                ans,
                violated=text,
                cex=cx,
                t0=t0,
                detail={"element": el, "other": str(b.loc)},
            )
        answers.append(ans)
    bad = next((x for x in answers if x.status != "proved"), None)
    return an.obligation("coverage", a, title, bad or Answer("proved"), t0=t0)
