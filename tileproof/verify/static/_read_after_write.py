"""``coverage`` of reads: outputs and scratch read only where written before.

Formal statement (``W_S(e)`` as in :mod:`._coverage`), load ``L`` of scratch
or output ``t``:
``forall x. Dom /\\ Ctx_L(x) /\\ Mask_L(x) => \\/_S \\/_w W_S,w(e_L(x)) /\\ Before(w, x)``
with ``Before`` (:func:`._order.before`): an earlier phase (grid barriers
passed), or the same program earlier in program order, or another lane of the
same program before a ``lanes`` barrier the reader has passed.

As for existence, the witness is a candidate only: a refutation is confirmed
by a concrete run (:mod:`._confirm`) and reported only when that run reads an
element no earlier write touched; a store whose index map cannot be inverted
leaves one concrete run at small sizes, and finding nothing the verdict is
``unknown``.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access
from ...model import _interp as interp
from ...report import Obligation
from ...report._keys import CexKey, element_items
from ._confirm import cells_of, data_of, noun, run_events, store_counts, stores_of, unwritten_reads
from ._context import Analysis, Answer, Site
from ._explain import plain
from ._order import before
from ._writers import decide_witnesses, reach, why_unknown, witnesses

__all__ = ["check_reads"]

F = shapes.disj()


def check_reads(an: Analysis, ld: Site, stores: list[Site]) -> Obligation:
    """The read obligation of the load ``ld`` of an output or scratch tensor with ``stores``."""
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
            hyps += wt.hyps + [
                wt.apply(f)
                for f in an.data_consistency(r, wt.inst, [*hyps, wt.formula], extra=wt.reads)
            ]
    q = shapes.disj(*cands)
    assume = an.assume(hyps, query=q)
    if whys:
        return _search_reads(an, ld, stores, title, whys[0], t0)
    ans = decide_witnesses(an, cands, q, assume) if cands else Answer("refuted", None)
    if cands and ans.status != "refuted":
        return an.obligation("coverage", ld, title, why_unknown(ans), t0=t0)
    if ans.cex is None:  # no store at all: any admissible read refutes
        ans = an.decide(F, assume)
        if ans.status != "refuted":
            return an.obligation("coverage", ld, title, ans, t0=t0)
        q = F
    cex = an.complete(q, assume, an.minimise(q, assume, ans.cex), element)
    if cex is None:  # every value a message shows comes from a re-checked assignment
        return an.obligation(
            "coverage",
            ld,
            title,
            Answer(
                "unknown",
                reason=(
                    "refuted, but no complete counterexample could be re-checked for the message"
                ),
            ),
            t0=t0,
        )
    return _confirm_reads(an, ld, stores, title, t0, cex, element)


def _search_reads(an: Analysis, ld: Site, stores, title: str, why: str, t0: float) -> Obligation:
    """No symbolic answer: look for unwritten reads in one concrete run at small sizes."""
    sizes = dict(an.example)
    try:
        evs = run_events(an, sizes)
        unwritten = unwritten_reads(ld.node, evs)
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation("coverage", ld, title, Answer("unknown", reason=f"{why} ({e})"), t0=t0)
    if not unwritten:
        return an.obligation(
            "coverage",
            ld,
            title,
            Answer(
                "unknown",
                reason=f"{why}; a concrete run at {an.show(an.values(sizes))} reads "
                "only written elements",
            ),
            t0=t0,
        )
    el = unwritten[0]
    return _confirm_reads(
        an, ld, stores, title, t0, dict(sizes), None, el=el, evs=evs, unwritten=unwritten
    )


def _confirm_reads(an, ld, stores, title, t0, cex, element, el=None, evs=None, unwritten=None):
    acc: Access = ld.node
    sizes = {k: v for k, v in cex.items() if an.is_size(k)}
    if el is None:
        el = tuple(e.evaluate(cex) for e in element)
    _s, (reader,) = an.split(cex, "r")
    try:
        if evs is None:
            evs = run_events(an, sizes, data_of(an, cex, "r"), cells_of(an, cex, "r"))
        if unwritten is None:
            unwritten = unwritten_reads(acc, evs)
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation(
            "coverage",
            ld,
            title,
            Answer(
                "unknown",
                reason=f"no earlier write found for element {list(el)} read by "
                f"{an.who(reader)} at {an.show(an.values(sizes))}; concrete check not possible ({e})",
            ),
            t0=t0,
        )
    if not unwritten:
        return an.obligation(
            "coverage",
            ld,
            title,
            Answer(
                "unknown",
                reason=f"the witness method found no earlier write of element {list(el)}"
                f" at {an.show(an.values(sizes))}, but a concrete run writes every element read",
            ),
            t0=t0,
        )
    t = an.model.tensors[acc.tensor]
    if el not in unwritten:
        el = min(unwritten)
    rows = [u[0] for u in unwritten]
    what = noun("rows" if len(t.shape) > 1 else "elements", rows)
    verb = "are" if len(set(rows)) > 1 else "is"
    writes = stores_of(evs, acc.tensor)
    counts = store_counts(an, stores, writes, sizes) if stores else "; nothing stores to it"
    ev = next((e for e in evs if e.node is ld.node and el in set(interp.touched(acc, e.env))), None)
    if ev is not None:  # the reading program and the index-tensor values of this run
        vals = an.values(sizes)
        by = " by " + an.who(
            {
                k: v
                for k, v in ev.env.items()
                if k in an.pids
                or k == an.rank_var
                or any(k == x.var for x in (*ld.lanes, *ld.loops))
            }
        )
        data = _run_data(an, ld, stores, ev.env)
        shown = ", ".join(f"{k}={v}" for k, v in {**vals, **data}.items())
    else:
        vals = an.values({**sizes, **{k: v for k, v in cex.items() if k in an.global_data}})
        by, data, shown = "", {}, an.show(vals)
    text = (
        f"{what} of {acc.tensor} {verb} never written before "
        f"{'they are' if verb == 'are' else 'it is'} read at "
        f"{acc.loc.short}{by} when {shown} (e.g. element {list(el)}){counts}"
    )
    cx = {**vals, **data, **element_items(el)}
    return an.obligation(
        "coverage",
        ld,
        title,
        Answer("refuted", cex),
        violated=text,
        cex=cx,
        t0=t0,
        detail={"element": list(el), "index": plain(acc.element()[0], an)},
    )


def _run_data(an: Analysis, ld: Site, stores: list[Site], env: dict) -> dict[CexKey, int]:
    """``{"seq_lens[0]": 0, ...}``: the index-tensor elements a concrete run gave the reader's
    context and the stores' shared conditions (a loop over ``num_work[0]`` entries)."""
    names: set[str] = set()
    for f in reach(an, ld):
        names |= f.free_symbols()
    for s in an.sites:  # what the reader read before, in the same phase and loop iteration
        n = s.node
        if (
            isinstance(n, Access)
            and n.value is not None
            and s.order < ld.order
            and s.phase == ld.phase
            and len(s.loops) <= len(ld.loops)
            and all(a is b for a, b in zip(s.loops, ld.loops))
            and all(a is b for a, b in zip(s.lanes, ld.lanes))
        ):
            names.add(n.value)
    for s in stores:
        for f in reach(an, s):
            names |= f.free_symbols() & an.global_data
    out: dict[CexKey, int] = {}
    for n in sorted(names & set(an.data), key=lambda n: an.data[n].loc.line or 0):
        if n not in env:
            continue
        d = an.data[n]
        try:
            idx = tuple(x.evaluate(env) for x in d.index)
        except (shapes.ShapeError, ZeroDivisionError):
            continue
        out.setdefault(CexKey.cell(d.tensor, idx), int(env[n]))
    return out
