"""``barrier``: every participant reaches every barrier equally often, and all fit on the machine.

Uniformity, for a barrier ``b`` with enclosing loops ``L_1..L_m`` (those
private to a participant) and path ``Path`` (enclosing branch conditions,
early-exit guards included).  Two arbitrary participants ``x1``, ``x2`` (two
programs for ``grid`` scope; two lanes of one program for ``lanes`` scope)
share the iteration *numbers* ``t_j`` (the loop index is ``lo_j + t_j``):

    forall sizes, x1, x2, t.  Dom /\\ 0 <= t /\\ Reach(x1, t) => Reach(x2, t)
    Reach(x, t) := /\\_j t_j < hi_j(x) - lo_j(x)  /\\  Path(x, lo(x) + t)

By symmetry (``x1``, ``x2`` arbitrary) both reach ``b`` at exactly the same
iterations, hence the same number of times; with barriers in program order
that is also the same order.  An early exit before the barrier is part of
``Path``, so a program that leaves early diverges unless all leave alike.

A ``launch`` boundary (the end of one launch, the start of the next) is a
phase boundary for the other obligations and has neither obligation: nobody
waits at it, and the lowering only admits it at the top level of the body.

Residency, for a launch with a grid barrier: every program must be resident
at once.  With ``P`` the product of the grid extents, ``C`` the cores and
``U`` the programs of unfenced concurrent tasks:

    forall sizes. Dom => P <= C          (start="together", or no such tasks)
    forall sizes. Dom => P <= C - U      (start="waves" next to unfenced tasks)
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Access, Barrier
from ...report import Obligation
from ...report._keys import CexKey, with_quantities
from ._context import Analysis, Answer, Instance, Site, loop_range

__all__ = ["check"]


def check(an: Analysis) -> list[Obligation]:
    out = []
    # a launch boundary has no participants waiting: no uniformity, no residency
    bars = [s for s in an.sites if isinstance(s.node, Barrier) and s.node.scope != "launch"]
    for s in bars:
        out.append(_uniform(an, s))
    grid = [s for s in bars if s.node.scope == "grid"]
    if grid:
        out.append(_residency(an, grid[0]))
    return out


# ---------------------------------------------------------------------------- uniformity


def participants(an: Analysis, site: Site, scope: str):
    """(per-instance names, private loops, the lanes region or None)."""
    if scope == "grid":
        return set(an.per_instance), list(site.loops), None
    region = site.lanes[-1]
    inner = an.by_node[id(region)]
    loops = list(site.loops[len(inner.loops) :])
    names = {region.var} | {ln.var for ln in site.lanes[len(inner.lanes) :]}
    names |= {lp.var for lp in loops}
    for n in an.data:  # data read inside the region differ per lane
        load = next((s for s in an.sites if isinstance(s.node, Access) and s.node.value == n), None)
        if load is not None and any(ln is region for ln in load.lanes):
            names.add(n)
    return names, loops, region


def reach(an: Analysis, site: Site, inst: Instance, loops, ts) -> tuple[list, list]:
    """(ranges of the instance's ids, Reach(x, t)) with loop indices ``lo + t``."""
    ids, path, _sub = reach_sub(an, site, inst, loops, ts)
    return ids, path


def reach_sub(an: Analysis, site: Site, inst: Instance, loops, ts):
    """:func:`reach` and the substitution of the private loop indices (``i -> lo + t``)."""
    sub: dict[str, shapes.Expr] = {}
    trips = []
    for lp, t in zip(loops, ts):
        lo, hi = inst(lp.lo).subs(sub), inst(lp.hi).subs(sub)
        sub[inst.name(lp.var)] = lo + t
        trips.append(shapes.lt(t, hi - lo))
    ids = [inst(f) for f in an.ranges()]
    private = {lp.var for lp in loops}
    for lp in site.loops:  # shared loops keep their ranges
        if lp.var not in private:
            ids += [inst(f) for f in loop_range(lp)]
    for ln in site.lanes:
        v = inst(shapes.sym(ln.var))
        ids += [shapes.ge(v, 0), shapes.lt(v, ln.n)]
    path = [inst(c).subs(sub) for c in site.conds]
    return [f.subs(sub) for f in ids], trips + path, sub


def _uniform(an: Analysis, site: Site) -> Obligation:
    t0 = time.perf_counter()
    bar: Barrier = site.node
    who = "programs" if bar.scope == "grid" else "lanes"
    title = f"all {who} reach the {bar.scope} barrier at {bar.loc.short} alike"
    if bar.scope == "lanes" and not site.lanes:
        return Obligation("barrier", "proved", title + " (outside lanes(): one lane)", bar.loc)
    names, loops, _region = participants(an, site, bar.scope)
    i1 = an.instance(None, "1", names=names)
    i2 = an.instance(None, "2", names=names)
    ts = [shapes.sym(f"_t{j}") for j in range(len(loops))]
    ids1, reach1 = reach(an, site, i1, loops, ts)
    ids2, reach2 = reach(an, site, i2, loops, ts)
    q = shapes.conj(*reach2)
    hyps = ids1 + ids2 + [shapes.ge(t, 0) for t in ts] + reach1
    hyps += an.data_consistency(i1, i2, [*hyps, q])
    assume = an.assume(hyps, query=q)
    ans = an.decide(q, assume)
    if ans.status != "refuted":
        return an.obligation("barrier", site, title, ans, t0=t0)
    cex = an.minimise(q, assume, ans.cex)
    sizes, (x1, x2) = an.split(cex, "1", "2")
    what = "program" if bar.scope == "grid" else "lane"
    id_names = set(an.pids) | ({an.rank_var} if an.rank_var else set())
    if bar.scope == "lanes":
        id_names = {ln.var for ln in site.lanes}
    a = {k: v for k, v in x1.items() if k in id_names}
    b = {k: v for k, v in x2.items() if k in id_names}
    iters = {}
    for lp, t in zip(loops, ts):
        iters[lp.var] = cex.get(t.as_symbol(), 0)
    at = "".join(
        f" at iteration {n} (from 0) of the loop at line {lp.loc.line}"
        for lp, n in zip(loops, iters.values())
    )
    why = _why(an, site, i2, loops, ts, cex)
    text = (
        f"{_ids(what, b)} skips the {bar.scope} barrier at {bar.loc.short}{at} that "
        f"{_ids(what, a)} reaches{why}, when {an.show(sizes)}: they would wait forever"
    )
    cx = an.primed(sizes, [x1, x2])
    cx.update({CexKey.iteration(v): n for v, n in iters.items()})
    return an.obligation(
        "barrier",
        site,
        title,
        ans,
        violated=text,
        cex=cx,
        t0=t0,
        hint="Hoist the barrier out of program-dependent control flow, or make "
        "every participant take the same path to it.",
    )


def _ids(what: str, vals: dict) -> str:
    if not vals:
        return f"another {what}"
    return f"{what} " + ", ".join(f"{k}={v}" for k, v in vals.items())


def _why(an: Analysis, site: Site, inst: Instance, loops, ts, cex) -> str:
    """Which part of Reach fails for the second participant: an exit, a branch or a loop."""
    sub: dict[str, shapes.Expr] = {}
    for lp, t in zip(loops, ts):
        lo, hi = inst(lp.lo).subs(sub), inst(lp.hi).subs(sub)
        sub[inst.name(lp.var)] = lo + t
        if not shapes.lt(t, hi - lo).evaluate(cex):
            n = (hi - lo).evaluate(cex)
            return f" (its loop at line {lp.loc.line} runs only {max(n, 0)} times)"
    for (br, side), c in zip(site.branches, site.conds):
        if not inst(c).subs(sub).evaluate(cex):
            if br.exit:
                return f" (it left early at line {br.loc.line})"
            return (
                f" (the condition {br.cond if side else shapes.negate(br.cond)} at line "
                f"{br.loc.line} is false for it)"
            )
    return ""


# ----------------------------------------------------------------------------- residency


def _residency(an: Analysis, site: Site) -> Obligation:
    t0 = time.perf_counter()
    launch = an.model.launch
    loc = site.loc
    title = f"all programs waiting at the grid barrier at {loc.short} are resident together"
    if launch is None or getattr(launch, "cores", None) is None:
        # nobody asked for this to be skipped: without a machine it cannot be proved (fail closed)
        return Obligation(
            "barrier",
            "unknown",
            title,
            loc,
            reason="no machine model: declare launch=tp.Launch(...) (a grid "
            "barrier inside one launch needs every program resident at "
            "once, which depends on the machine's cores and how it starts "
            "programs)",
            hint="Declare the machine with launch=tp.Launch(cores=N, ...), or "
            "skip barrier obligations in [tool.tileproof.skip] with a reason.",
            seconds=time.perf_counter() - t0,
        )
    programs = shapes.as_expr(1)
    for _, e in an.model.grid:
        programs = programs * e
    tasks = [t for t in launch.concurrent if not t.fenced]
    busy = shapes.as_expr(0)
    for t in tasks:
        busy = busy + t.programs
    waves = launch.start == "waves" and tasks
    capacity = launch.cores - busy if waves else launch.cores
    q = shapes.le(programs, capacity)
    ans = an.decide(q, an.domain)
    if ans.status != "refuted":
        return an.obligation("barrier", site, title, ans, t0=t0)
    cex = an.minimise(q, an.domain, ans.cex)
    sizes = an.values({k: v for k, v in cex.items() if an.is_size(k)})
    p, c = programs.evaluate(cex), launch.cores.evaluate(cex)
    if waves:
        u = busy.evaluate(cex)
        names = ", ".join(f"{t.name} ({t.programs.evaluate(cex)} programs)" for t in tasks)
        text = (
            f"{p} programs must all be resident at the grid barrier at {loc.short}, but "
            f"programs start in waves and the unfenced concurrent tasks {names} may hold "
            f"{u} of the {c} cores: only {c} - {u} = {c - u} are free, so the barrier "
            "can hang"
        )
        hint = (
            "Launch all programs together (start='together') or fence the concurrent "
            "tasks (Task(..., fenced=True))."
        )
        cx = with_quantities(sizes, programs=p, cores=c, busy=u)
    else:
        text = (
            f"{p} programs must all be resident at the grid barrier at {loc.short}, but the "
            f"machine has {c} cores"
        )
        hint = "Launch at most as many programs as cores (a persistent grid-stride kernel)."
        cx = with_quantities(sizes, programs=p, cores=c)
    if sizes:
        text += f" (when {an.show(sizes)})"
    return an.obligation(
        "barrier", site, title, Answer("refuted", cex), violated=text, cex=cx, t0=t0, hint=hint
    )
