"""``reads`` (a reduction reads all of its input) and the declared writes of updated inputs.

Both ask whether every element of a declared *region* of a tensor is touched by some
access, the way ``coverage`` asks it of an output:

* ``reads``, input ``t`` declared ``reduced=R``:
  ``forall sizes, e, data. Dom /\\ 0 <= e < shape(t) /\\ R(e) => \\/_L \\/_w W_L,w(e)``
  over the loads ``L`` of ``t``.  A floor-divided split of a reduction
  (``pages_per_split = n_pages // num_splits``) leaves tail elements that no program
  folds, even though every output element is written: only this obligation sees it.
* ``coverage``, input ``t`` declared ``updated=True, writes=R``: the same over the
  stores of ``t`` (an in-place update that skips a row leaves the old value there,
  which no output obligation notices).

``W_L,w(e)``: the access ``L`` at the *witness* ``w`` (program ids, lane ids and loop
indices obtained from ``e`` by inverting the index map, :mod:`._witness`) is reached,
unmasked, and touches ``e``.  Unlike an output's coverage, the witness may depend on
data its program reads (a split's page count from the sequence length): those values
are universally quantified, tied to the region's own reads of the same entries
(functional consistency), so a proof holds for every admissible input.

A region may read index tensors (``Region("i1 < cdiv(n, 64)", n=("cache_seqlens",
"i0"))``); each read is a fresh name with its declared and dtype ranges (the declared
range only where the read is in bounds).  A refutation is re-checked by running the
model concretely at the counterexample's sizes and data: ``violated`` only when no
execution touches the element, else ``unknown``.  An access whose index map cannot be
inverted gives no witness: a concrete run at small sizes may still find an element
never touched (``violated``); otherwise the verdict is ``unknown`` — never ``proved``.
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access
from ...model import _interp as interp
from ...model._data import Oracle
from ...report import Obligation
from ...report._keys import CexKey, element_items
from ...spec._decl import Region, index_names
from ._context import Analysis, Answer, Site, all_eq
from ._divisions import proves_without_divisions
from ._writers import access_dims, decide_witnesses, invert, reach, unknown_ranges

__all__ = ["WRITES", "check", "check_writes"]


def check(an: Analysis) -> list[Obligation]:
    """``reads``: every element of a ``reduced=`` region is read by some program."""
    out = []
    for name, t in an.model.tensors.items():
        region = getattr(t, "reduced", None)
        # a front end's inferred region (tileproof.pallas) says itself where it applies
        applies = getattr(region, "applies", None)
        if isinstance(region, Region) and (applies is None or applies(an.model, name)):
            out.append(_region(an, name, region, "load", "reads"))
    return out


def check_writes(an: Analysis) -> list[Obligation]:
    """``coverage``: every element of an updated input's ``writes=`` region is written."""
    out = []
    for name, t in an.model.tensors.items():
        region = getattr(t, "writes", None)
        if isinstance(region, Region) and getattr(t, "updated", False):
            out.append(_region(an, name, region, "store", "coverage"))
    return out


class _Writes:
    """The writes check as a module-like object (``check(an)``) for the coverage kind."""

    check = staticmethod(check_writes)


WRITES = _Writes()


# ----------------------------------------------------------------------------- regions


def _region_facts(an: Analysis, name: str, region: Region):
    """``(element, facts, reads, shown)``: the element symbols, the facts that put it in
    the region (ranges, the condition, the ranges of the region's reads), the reads as
    ``(name, tensor, index)`` and, per read, ``(symbol, tensor, index)`` for messages."""
    t = an.model.tensors[name]
    rank = len(t.shape)
    es = [shapes.sym(f"_e{k}") for k in range(rank)]
    ren = dict(zip(index_names(rank), es))
    facts: list[shapes.Formula] = []
    for e, n in zip(es, t.shape):
        facts += [shapes.ge(e, 0), shapes.lt(e, n)]
    reads, shown = [], []
    rsym = {}
    for r, (tensor, idx) in region.read_map.items():
        v = shapes.sym(f"_rg_{r}")
        rsym[r] = v
        src = an.model.tensors[tensor]
        index = tuple(x.subs(ren) for x in idx)
        reads.append((v.as_symbol(), tensor, index))
        shown.append((v.as_symbol(), tensor, index))
        bits = 8 * src.itemsize
        facts += [shapes.ge(v, -(2 ** (bits - 1))), shapes.le(v, 2 ** (bits - 1) - 1)]
        inside = shapes.conj(
            *(shapes.conj(shapes.ge(x, 0), shapes.lt(x, n_)) for x, n_ in zip(index, src.shape))
        )
        facts.append(inside)  # a region reads its tensors in bounds (else it names nothing)
        if src.values is not None:
            facts.append(src.values.subs({"v": v}))
    facts.append(region.cond.subs({**ren, **rsym}))
    return es, facts, reads, shown


def _candidates(an: Analysis, site: Site, element, tag: str) -> tuple[list, str]:
    """``(candidates, why)``: ``(formula, instance, witness, quotients)`` per candidate of
    ``site`` touching ``element``, and why there are none (if so)."""
    inst = an.instance(site, tag)
    acc: Access = site.node
    unknowns = unknown_ranges(an, site, inst)
    base = [inst(f) for f in reach(an, site)]
    equal = all_eq([inst(x) for x in acc.element()], element)
    quot, dims = access_dims(an, site, inst, element, unknowns)
    equal = quot.rewrite(equal)
    base = [quot.rewrite(f) for f in base] + quot.facts()
    unknowns = quot.unknowns(unknowns)
    cands, why = invert(an, acc, dims, unknowns, quot)
    if why:
        return [], why
    out = []
    for w in cands:
        f = shapes.conj(*(x.subs(w) for x in base), equal.subs(w))
        if f.free_symbols() & set(unknowns):
            continue  # an unknown left undetermined: no candidate
        out.append((f, inst, w, quot))
    if not out:
        return [], f"no candidate for the {acc.kind} at {acc.loc.short}"
    return out, ""


def _region(an: Analysis, name: str, region: Region, kind: str, ob_kind: str) -> Obligation:
    t0 = time.perf_counter()
    t = an.model.tensors[name]
    verb = "read" if kind == "load" else "written"
    where = "" if region.is_all else f" in its declared region ({_text(region)})"
    what = name if kind == "load" else f"updated input {name}"
    title = f"every element of {what}{where} is {verb}" + (
        " (the reduction reads all of it)" if ob_kind == "reads" else ""
    )
    loc = getattr(region, "where", None)
    if loc is None or not getattr(loc, "line", 0):
        loc = getattr(t, "where", None) or an.model_location()
    try:
        region.check(an.model.tensors, name, len(t.shape))
    except Exception as e:  # a malformed region proves nothing
        return _at(Obligation(ob_kind, "unknown", title, loc, reason=str(e)), loc)
    sites = [
        s
        for s in an.sites
        if isinstance(s.node, Access) and s.node.tensor == name and s.node.kind == kind
    ]
    es, facts, reads, shown = _region_facts(an, name, region)
    cands, hyps, whys = [], list(facts), []
    for i, s in enumerate(sites):
        got, why = _candidates(an, s, es, f"w{i}")
        if why:
            whys.append(why)
        for k, (f, inst, w, quot) in enumerate(got):
            if k:  # each candidate its own execution: rename its instance apart
                f, inst, w, quot = _renamed(an, s, f"w{i}", k, f, inst, w, quot)
            cands.append(f)
            cons = an.data_consistency(inst, inst, [f], extra=reads)
            hyps += [quot.rewrite(c).subs(w) for c in cons]
    q = shapes.disj(*cands)
    assume = an.assume(hyps, query=q)
    if whys and len(whys) == len(sites):
        return _at(_search(an, name, region, sites, title, ob_kind, whys[0], t0), loc)
    if not cands:
        ans = an.decide(shapes.disj(), assume)
        if ans.status != "refuted":
            return _at(an.obligation(ob_kind, None, title, ans, t0=t0), loc)
        q = shapes.disj()
    elif proves_without_divisions(an, q, assume, domain=an.domain, sizes=an.sizes):
        ans = Answer("proved")
    else:
        ans = decide_witnesses(an, cands, q, assume)
    if ans.status == "unknown" and ans.cex:  # e.g. a witness divides by a zero split size
        ob = _confirm(an, name, sites, title, ob_kind, t0, ans.cex, es, shown, kind, facts)
        if ob.status == "violated":  # the concrete run at those values misses the element
            return _at(ob, loc)
    if ans.status != "refuted":
        if ans.status == "unknown":
            ans = Answer("unknown", reason=f"the witness method could not decide: {ans.reason}")
        return _at(an.obligation(ob_kind, sites[0] if sites else None, title, ans, t0=t0), loc)
    cex = an.minimise(q, assume, ans.cex)
    return _at(_confirm(an, name, sites, title, ob_kind, t0, cex, es, shown, kind, facts), loc)


def _renamed(an, site, tag, k, f, inst, w, quot):
    new = f"{tag}_{k}"
    suffix = f"__{tag}"
    names = set(f.free_symbols())
    for key, val in w.items():
        names.add(key)
        names |= val.free_symbols()
    ren = {n: shapes.sym(n[: -len(tag)] + new) for n in names if n.endswith(suffix)}
    inst2 = an.instance(site, new)
    w2 = {(ren[key].as_symbol() if key in ren else key): val.subs(ren) for key, val in w.items()}
    return f.subs(ren), inst2, w2, quot.renamed(ren)


def _text(region: Region) -> str:
    text = str(region.cond)
    for r, (tensor, idx) in region.read_map.items():
        text += f", {r} = {tensor}[{', '.join(map(str, idx))}]"
    return text


def _at(ob: Obligation, loc) -> Obligation:
    ob.location = loc
    return ob


# ------------------------------------------------------------------------ confirmation


def _touching(evs, name: str, kind: str, element) -> bool:
    return any(
        isinstance(ev.node, Access)
        and ev.node.tensor == name
        and ev.node.kind == kind
        and interp.covers(ev.node, ev.env, element)
        for ev in evs
    )


def _data_of(an: Analysis, cex: dict) -> dict[str, int]:
    out = {}
    for k, v in cex.items():
        base = k.partition("__")[0]
        if base in an.data:
            out.setdefault(base, int(v))
    return out


def _confirm(an, name, sites, title, ob_kind, t0, cex, es, shown, kind, facts) -> Obligation:
    """Re-run the model concretely at the counterexample: violated only if its sizes are
    admissible, its element lies in the region, and no access of that kind touches it."""
    sizes = {k: int(v) for k, v in cex.items() if an.is_size(k)}
    try:
        if not (all(f.evaluate(sizes) for f in an.domain) and all(f.evaluate(cex) for f in facts)):
            raise interp.TooLarge("the counterexample is not admissible")
        element = tuple(int(e.evaluate(cex)) for e in es)
        cells = {}
        shown_vals = {}
        for sym, tensor, index in shown:
            at = tuple(int(x.evaluate(cex)) for x in index)
            cells[(tensor, at)] = int(cex[sym])
            shown_vals[CexKey.cell(tensor, at)] = int(cex[sym])
        evs = interp.events(an.model, sizes, data=_data_of(an, cex), cells=cells)
        # the run must have used the region's values: else the counterexample is not this run
        used = {
            (ev.node.tensor, tuple(d.start.evaluate(ev.env) for d in ev.node.dims)): ev.env[
                ev.node.value
            ]
            for ev in evs
            if isinstance(ev.node, Access) and ev.node.value is not None
        }
        if any(used.get(key, val) != val for key, val in cells.items()):
            raise interp.TooLarge("the run read other values than the counterexample's")
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError, KeyError) as e:
        return an.obligation(
            ob_kind,
            sites[0] if sites else None,
            title,
            Answer(
                "unknown",
                reason=f"no witness found for an element of {name} at "
                f"{an.show(an.values(sizes))}; a concrete check was not possible ({e})",
            ),
            t0=t0,
        )
    return _verdict(an, name, sites, title, ob_kind, t0, sizes, element, evs, shown_vals, kind, cex)


def _verdict(an, name, sites, title, ob_kind, t0, sizes, element, evs, shown_vals, kind, cex):
    if _touching(evs, name, kind, element):
        return an.obligation(
            ob_kind,
            sites[0] if sites else None,
            title,
            Answer(
                "unknown",
                reason=f"the witness method found no access to element {list(element)} "
                f"of {name} at {an.show(an.values(sizes))}, but a concrete run touches it",
            ),
            t0=t0,
        )
    vals = {**an.values(sizes), **shown_vals}
    text_vals = ", ".join(f"{k}={v}" for k, v in vals.items())
    runs = "; ".join(
        f"the {s.node.kind} at {s.loc.short} touches {acc} element{'s' * (acc != 1)}"
        for s in sites
        for acc in [
            sum(1 for ev in evs if ev.node is s.node for _el in interp.touched(s.node, ev.env))
        ]
    )
    if kind == "load":
        text = (
            f"element {list(element)} of {name} is never read when {text_vals}: the "
            f"reduction over it drops it (no program or loop iteration reads it)"
            + (f"; {runs}" if runs else "; nothing loads it")
        )
    else:
        text = (
            f"element {list(element)} of updated input {name} is never written when "
            f"{text_vals}, though its declared region says it must be"
            + (f"; {runs}" if runs else "; nothing stores to it")
        )
    cx = {**vals, **element_items(element)}
    return an.obligation(
        ob_kind,
        sites[0] if sites else None,
        title,
        Answer("refuted", cex),
        violated=text,
        cex=cx,
        t0=t0,
        detail={"element": list(element)},
    )


def _search(an, name, region, sites, title, ob_kind, why, t0) -> Obligation:
    """No witness at all: look, in one concrete run at small sizes, for an element of the
    region that no access touches (then violated), else unknown."""
    import itertools

    sizes = dict(an.example)
    kind = sites[0].node.kind
    t = an.model.tensors[name]
    try:
        oracle = Oracle(an.model, sizes, {})
        dims = [d.evaluate(sizes) for d in t.shape]
        total = 1
        for d in dims:
            total *= max(d, 0)
        if total > 1 << 16:
            raise interp.TooLarge(f"{total} elements")
        rank = len(dims)
        cells, found = {}, None
        for el in itertools.product(*(range(d) for d in dims)):
            env = {**sizes, **dict(zip(index_names(rank), el))}
            for r, (tensor, idx) in region.read_map.items():
                at = tuple(x.evaluate(env) for x in idx)
                env[r] = oracle.cell(tensor, at)
                cells[(tensor, at)] = env[r]
            if region.cond.evaluate(env):
                found = found or []
                found.append(el)
        evs = interp.events(an.model, sizes, cells=cells)
        missing = [el for el in found or [] if not _touching(evs, name, kind, el)]
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError) as e:
        return an.obligation(
            ob_kind, sites[0], title, Answer("unknown", reason=f"{why} ({e})"), t0=t0
        )
    if not missing:
        return an.obligation(
            ob_kind,
            sites[0],
            title,
            Answer(
                "unknown",
                reason=f"{why}; a concrete run at {an.show(an.values(sizes))} touches "
                "every element of the region",
            ),
            t0=t0,
        )
    return _verdict(
        an, name, sites, title, ob_kind, t0, sizes, missing[0], evs, {}, kind, dict(sizes)
    )
