"""``ring``: every rank folds every chunk exactly once; sends and receives pair up; no edge is crossed.

Names: ``r`` the rank, ``n`` the rank count (symbolic: never enumerated),
``prov`` a fold's provenance (the rank its chunk came from, an expression
over ``r`` and loop indices), ``Part(r)`` the early-exit guards before the
folds (ranks that return at once take no part).  On a closed ``ring``
ranks and provenance are taken mod ``n``; on an open ``mesh`` they are not.

* fold coverage:   ``forall r, c. Dom /\\ Part(r) /\\ 0 <= c < n => \\/_F \\/_w W_F,w(r, c)``
  with ``W`` the fold ``F`` at a witness step (the loop index solved from
  ``prov = c``, e.g. ``prov = r - s`` gives ``s = r - c``) reached, its
  condition true, and ``prov = c``;
* fold uniqueness: two fold instances of one rank with the same chunk are one
  (same fold node, same loop indices);
* chunks exist (mesh): ``Ctx_F /\\ cond_F => 0 <= prov < n``;
* sends:  ``forall r, t. Reach(r, t) /\\ send(r) => [mesh: 0 <= dst < n]``
  and rank ``d = dst(r)`` reaches the same step (same iteration numbers
  ``t``; an early exit or a gate is part of reaching) with ``recv(d)`` and
  ``src(d) = r``;
* receives: symmetric, with ``src`` in place of ``dst``.

Where a symbolic query is undecided and ``n`` is the only size, the
properties are also checked concretely for ``n <= 8``; the verdict then
stays ``unknown`` ("checked for n <= 8: no violation; not proved for all n").
"""

from __future__ import annotations

import time

from ... import shapes
from ...model import Comm, Fold, Loop
from ...model import _interp as interp
from ...report import Obligation
from ...report._keys import with_quantities
from ._barrier import reach_sub
from ._context import Analysis, Answer, Instance, Site, all_eq, loop_range
from ._witness import Dim, solve

__all__ = ["check"]

F = shapes.disj()
BOUND = 8


def check(an: Analysis) -> list[Obligation]:
    comms = [s for s in an.sites if isinstance(s.node, Comm)]
    folds = [s for s in an.sites if isinstance(s.node, Fold)]
    if an.rank_var is None:
        return []
    out: list[Obligation] = []
    usable = [f for f in folds if f.node.prov is not None]
    fold_obs: list[tuple[Obligation, list[Site]]] = []  # and the folds each is about
    twice: Obligation | None = None
    if folds and len(usable) == len(folds):
        fold_obs.append((_fold_exists(an, usable), usable))
        twice = _fold_unique(an, usable)
        fold_obs.append((twice, usable))
        # on a closed ring every rank's chunk exists, but a fold of a value that never
        # arrived folds poison on either topology
        fold_obs += [
            (_chunk_exists(an, f), [f])
            for f in usable
            if an.topology == "mesh" or (f.node.when is not None and f.node.when != f.node.cond)
        ]
    elif folds:
        out.append(
            Obligation(
                "ring",
                "unknown",
                "every rank folds every chunk exactly once",
                folds[0].loc,
                reason="a fold's provenance is unknown (see the "
                "unsupported construct reported at that line)",
            )
        )
    steps = (
        [
            (s, _carried(an, s, k))
            for s in an.sites
            if isinstance(s.node, Loop)
            for k in range(len(s.node.ring_valid))
        ]
        if usable
        else []
    )
    for c in comms:
        if an.topology == "mesh":
            out.append(_edge(an, c, "send"))
            out.append(_edge(an, c, "recv"))
        out.append(_match(an, c, "send"))
        out.append(_match(an, c, "recv"))
    open_steps = [(s, o) for s, o in steps if o.status != "proved"]
    # a fold inside or after a loop whose induction step is open leans on it
    leaning = [o for o, fs in fold_obs if any(f.order > s.order for f in fs for s, _ in open_steps)]
    _bounded(
        an, [*(o for o, _ in fold_obs if not any(o is x for x in leaning)), *out], comms, usable
    )
    if open_steps:
        _lean_on(leaning, twice, open_steps[0][1])
    return [*(o for o, _ in fold_obs), *(o for _, o in steps), *out]


# ------------------------------------------------------------------------------ helpers


def _n(an):
    return an.rank_size


def _norm(an: Analysis, e: shapes.Expr) -> shapes.Expr:
    return shapes.mod(e, _n(an)) if an.topology == "ring" else e


def _same_rank(an: Analysis, a: shapes.Expr, b: shapes.Expr) -> shapes.Formula:
    return shapes.eq(_norm(an, a), _norm(an, b))


def _strip(an: Analysis, e: shapes.Expr) -> shapes.Expr:
    """On a closed ring, ``X % n`` inside a provenance is ``X`` modulo ``n``: drop it to solve."""
    if an.topology != "ring":
        return e
    n = _n(an)

    def atom(a):
        if getattr(a, "kind", None) == "mod" and a.args[1] == n:
            return _strip(an, a.args[0])
        return shapes.Expr.atom(a)

    return e._map_atoms(atom)


def _participates(an: Analysis, first: Site) -> list[shapes.Formula]:
    """Ranges of the ids and the early-exit guards before ``first`` (not renamed)."""
    conds = [c for (br, side), c in zip(first.branches, first.conds) if br.exit and side]
    return an.ranges() + conds


def _private(an: Analysis) -> set[str]:
    """Names private to one fold instance of a given rank (loops, lanes, data)."""
    return set(an.loop_vars) | set(an.lane_vars) | set(an.data)


def _fold_reach(an: Analysis, site: Site, inst: Instance) -> list[shapes.Formula]:
    node: Fold = site.node
    return [inst(f) for f in an.scope(site)] + [inst(node.cond)]


# ------------------------------------------------------------------------------- folds


def _fold_exists(an: Analysis, folds: list[Site]) -> Obligation:
    t0 = time.perf_counter()
    title = f"every rank folds every chunk c in [0, {_n(an)})"
    c = shapes.sym("_chunk")
    cands = []
    for i, f in enumerate(folds):
        inst = an.instance(None, f"w{i}", names=_private(an))
        unknowns = {inst.name(lp.var): (inst(lp.lo), inst(lp.hi)) for lp in f.loops}
        unknowns.update(
            {inst.name(ln.var): (shapes.as_expr(0), shapes.as_expr(ln.n)) for ln in f.lanes}
        )
        prov = inst(f.node.prov)
        subs = solve([Dim(_strip(an, prov), c, None)], unknowns)
        if an.topology == "ring":  # also bring each solved step into its loop's first n values
            more = []
            for w in subs:
                moved = dict(w)
                for k, (lo, _hi) in unknowns.items():
                    if k in w:
                        moved[k] = lo + shapes.mod(w[k] - lo, _n(an))
                more.append(moved)
            subs += more
        base = [*_fold_reach(an, f, inst), _same_rank(an, prov, c)]
        for w in subs:
            cands.append(shapes.conj(*(x.subs(w) for x in base)))
    q = shapes.disj(*cands)
    hyps = [*_participates(an, folds[0]), shapes.ge(c, 0), shapes.lt(c, _n(an))]
    assume = an.assume(hyps, query=q)
    ans = an.decide(q, assume)
    if ans.status != "refuted":
        return an.obligation("ring", folds[0], title, ans, t0=t0)
    cex = an.minimise(q, assume, ans.cex)
    ok, folded = _concrete_folds(an, cex)
    r = cex.get(an.rank_var, 0)
    chunk = cex.get("_chunk", 0)
    sizes = an.values({k: v for k, v in cex.items() if an.is_size(k)})
    if ok is None or chunk in folded.get(_ids_of(an, cex), []):
        return an.obligation(
            "ring",
            folds[0],
            title,
            Answer(
                "unknown",
                reason=f"no fold of chunk {chunk} by rank {r} found symbolically at "
                f"{an.show(sizes)}" + ("" if ok is None else ", but a concrete run folds it"),
            ),
            t0=t0,
        )
    text = (
        f"rank {r} never folds the chunk of rank {chunk} when {an.show(sizes)}"
        f" (it folds chunks {sorted(folded.get(_ids_of(an, cex), []))})"
    )
    cx = with_quantities({**sizes, an.key(an.rank_var): r}, chunk=chunk)
    return an.obligation(
        "ring",
        folds[0],
        title,
        ans,
        violated=text,
        cex=cx,
        t0=t0,
        hint="Run n - 1 steps in each direction and fold every received chunk.",
    )


def _ids_of(an: Analysis, env) -> tuple:
    ids = [env.get(p, 0) for p in an.pids]
    if an.rank_var not in an.extents:
        ids.append(env.get(an.rank_var, 0))
    return tuple(ids)


def _concrete_folds(an: Analysis, cex):
    """``(True, {program: [chunks folded]})`` at the counterexample's sizes, or ``(None, {})``."""
    sizes = {k: v for k, v in cex.items() if an.is_size(k)}
    try:
        evs = interp.events(an.model, sizes, want=lambda n: isinstance(n, Fold))
    except (interp.RunError, ZeroDivisionError, shapes.ShapeError):
        return None, {}
    out: dict = {}
    n = _n(an).evaluate(sizes)
    for ev in evs:
        node = ev.node
        if node.cond.evaluate(ev.env):
            p = node.prov.evaluate(ev.env)
            out.setdefault(ev.program, []).append(p % n if an.topology == "ring" else p)
    return True, out


def _fold_unique(an: Analysis, folds: list[Site]) -> Obligation:
    t0 = time.perf_counter()
    title = "no rank folds a chunk twice"
    answers = []
    for a in folds:
        for b in folds:
            if b.order < a.order:
                continue
            i1 = an.instance(None, "1", names=_private(an))
            i2 = an.instance(None, "2", names=_private(an))
            hyps = _fold_reach(an, a, i1) + _fold_reach(an, b, i2)
            hyps.append(_same_rank(an, i1(a.node.prov), i2(b.node.prov)))
            hyps += an.data_consistency(i1, i2, hyps)
            if a is b:
                names = [lp.var for lp in a.loops] + [ln.var for ln in a.lanes]
                q = all_eq([i1(shapes.sym(x)) for x in names], [i2(shapes.sym(x)) for x in names])
            else:
                q = F
            assume = an.assume(hyps, query=q)
            ans = an.decide(q, assume)
            if ans.status == "refuted":
                cex = an.minimise(q, assume, ans.cex)
                sizes, (x1, x2) = an.split(cex, "1", "2")
                ids = {an.key(k): v for k, v in cex.items() if k in an.pids or k == an.rank_var}
                chunk = _norm(an, i1(a.node.prov)).evaluate(cex)
                text = (
                    f"rank {cex.get(an.rank_var)} folds the chunk of rank {chunk} twice: at "
                    f"{a.loc.short}{_at(an, x1)} and at {b.loc.short}{_at(an, x2)}, when "
                    f"{an.show(sizes)}"
                )
                cx = with_quantities({**an.primed(sizes, [x1, x2]), **ids}, chunk=chunk)
                return an.obligation("ring", a, title, ans, violated=text, cex=cx, t0=t0)
            answers.append(ans)
    bad = next((x for x in answers if x.status != "proved"), None)
    return an.obligation("ring", folds[0], title, bad or Answer("proved"), t0=t0)


def _at(an: Analysis, vals) -> str:
    parts = [f"{an.label(k)}={v}" for k, v in vals.items() if k in an.loop_vars]
    return f" ({', '.join(parts)})" if parts else ""


def _chunk_exists(an: Analysis, f: Site) -> Obligation:
    t0 = time.perf_counter()
    node: Fold = f.node
    title = (
        f"the fold at {f.loc.short} folds only chunks of existing ranks"
        if an.topology == "mesh"
        else f"the fold at {f.loc.short} folds only chunks that arrived"
    )
    # forall ... . when => (arrived /\ 0 <= prov < n): where the body folds, a chunk of an
    # existing rank really arrived (``cond`` is ``when`` and the arrival condition)
    when = node.when if node.when is not None else node.cond
    # on a closed ring a provenance is a rank mod n: it always exists (only arrival counts)
    q = (
        node.cond
        if an.topology == "ring"
        else shapes.conj(node.cond, shapes.ge(node.prov, 0), shapes.lt(node.prov, _n(an)))
    )
    assume = an.assume(an.scope(f), [when], query=q)
    ans = an.decide(q, assume)
    if ans.status != "refuted":
        return an.obligation("ring", f, title, ans, t0=t0)
    cex = an.minimise(q, assume, ans.cex)
    vals = an.relevant(cex, node.prov, node.cond, when)
    if not node.cond.evaluate(cex):
        text = (
            f"the fold at {f.loc.short} folds poison: a value that was never sent to this "
            f"rank, or that its sender forwarded without having received it, when "
            f"{an.show(vals)}"
        )
    else:
        text = (
            f"the fold at {f.loc.short} folds the chunk of rank {node.prov.evaluate(cex)}, "
            f"which does not exist on the open mesh (nothing was received), when "
            f"{an.show(vals)}"
        )
    return an.obligation(
        "ring",
        f,
        title,
        ans,
        violated=text,
        cex=with_quantities(vals, chunk=_norm(an, node.prov).evaluate(cex)),
        t0=t0,
        hint="Guard the fold with the condition under which the chunk arrived.",
    )


# -------------------------------------------------------------- validity across steps


def _carried(an: Analysis, site: Site, k: int) -> Obligation:
    """The induction step of a ring carry's validity (``lowering/_loops.py``).

    ``forall r, s. W(r, s + 1) => W2(r, s)`` over every rank and iteration, without the
    path conditions (an early exit does not stop the induction from talking about its rank):
    the carry's modelled validity at the next step holds only where the value the body
    returns really arrived, its sender's value included.  Proved, the folds' conditions are
    exact; otherwise :func:`_lean_on` keeps every fold verdict that relies on them from
    being proved.
    """
    t0 = time.perf_counter()
    node: Loop = site.node
    sent, nxt, got = node.ring_valid[k]
    fwd = f" and forwarded at {sent.short}" if sent is not None else ""
    title = (
        f"the ring value carried by the loop at {node.loc.short}{fwd} holds, at each "
        "step, a chunk that arrived at the step before (its sender's value too)"
    )
    hyps = an.ranges()
    for ln in site.lanes:
        hyps += [shapes.ge(shapes.sym(ln.var), 0), shapes.lt(shapes.sym(ln.var), ln.n)]
    for lp in (*site.loops, node):
        hyps += loop_range(lp)
    assume = an.assume(hyps, [nxt], query=got)
    ans = an.decide(got, assume)
    if ans.status != "refuted":
        return an.obligation("ring", site, title, ans, t0=t0)
    cex = an.minimise(got, assume, ans.cex)
    full = an.complete(got, assume, cex, [nxt, got])
    try:
        confirmed = full is not None and nxt.evaluate(full) and not got.evaluate(full)
    except (ZeroDivisionError, shapes.ShapeError, KeyError):
        confirmed = False
    if not confirmed:
        return an.obligation(
            "ring",
            site,
            title,
            Answer("unknown", reason="a counterexample to the induction step did not re-check"),
            t0=t0,
        )
    sizes = an.values({x: v for x, v in full.items() if an.is_size(x)})
    r = full.get(an.rank_var, 0)
    i = full.get(node.var)
    at = f"step {an.label(node.var)}={i}" if i is not None else "a step"
    why = (
        f"rank {r} ends {at} of the loop at {node.loc.short} holding poison where a one-step "
        f"view says a chunk arrived (its sender forwarded a value it had not received), "
        f"when {an.show(sizes)}"
    )
    return an.obligation(
        "ring",
        site,
        title,
        Answer("unknown", reason=why),
        t0=t0,
        hint="Send only where the value to forward arrived at the step before.",
    )


def _lean_on(fold_obs: list[Obligation], twice: Obligation | None, step: Obligation) -> None:
    """Fold verdicts computed with the one-step validity while the induction is open.

    That validity over-approximates where a chunk arrived, so a refuted "every chunk is
    folded" or "folds only chunks that arrived" stays refuted, and a proved "no chunk
    twice" stays proved; the other verdicts lean on the open step: ``unknown``.
    """
    for o in fold_obs:
        unique = o is twice
        if (o.status == "proved" and not unique) or (o.status == "violated" and unique):
            o.status = "unknown"
            o.counterexample = None
            o.reason = (
                f"it relies on ring values carried across loop iterations being valid "
                f"where they are forwarded, which is not proved: {step.reason}"
            )


# ------------------------------------------------------------------------------- comms


def _sides(an: Analysis, site: Site, partner_rank):
    """(hyps of rank r at step t, its substitution; query parts for the partner rank)."""
    loops = list(site.loops)
    ts = [shapes.sym(f"_t{j}") for j in range(len(loops))]
    me = Instance({}, "")
    ids1, reach1, sub1 = reach_sub(an, site, me, loops, ts)
    # the partner is the same lane of the other rank: a ring step inside ``lanes`` pairs
    # lane l of one rank with lane l of the other (the executor vmaps the lanes around its
    # exchange over the rank axis, and the lowering's arrival condition reads the sender's
    # path at this lane); a free partner lane was read for every value, out of range too,
    # and reported "rank 1 does not exist" for a correct ring
    lanes = {ln.var for ln in site.lanes}
    names = (_private(an) - lanes) | {an.rank_var}
    other = an.instance(None, "2", names=names)
    target = _norm(an, partner_rank.subs(sub1))
    other.mapping[an.rank_var] = target
    ids2, reach2, sub2 = reach_sub(an, site, other, loops, ts)
    hyps = ids1 + [shapes.ge(t, 0) for t in ts] + reach1
    return hyps, sub1, ids2, reach2, sub2, other, ts


def _edge(an: Analysis, site: Site, way: str) -> Obligation:
    t0 = time.perf_counter()
    node: Comm = site.node
    peer = node.dst if way == "send" else node.src
    guard = node.send if way == "send" else node.recv
    title = (
        f"{way}s at {site.loc.short} stay on the open mesh "
        f"({'destination' if way == 'send' else 'source'} in [0, {_n(an)}))"
    )
    hyps, sub1, *_ = _sides(an, site, peer)
    p = peer.subs(sub1)
    q = shapes.conj(shapes.ge(p, 0), shapes.lt(p, _n(an)))
    assume = an.assume(hyps, [guard.subs(sub1)], query=q)
    ans = an.decide(q, assume)
    if ans.status != "refuted":
        return an.obligation("ring", site, title, ans, t0=t0)
    cex = an.minimise(q, assume, ans.cex)
    step = _step(an, site, cex)
    sizes = an.values({k: v for k, v in cex.items() if an.is_size(k)})
    r = cex.get(an.rank_var, 0)
    verb = "sends to" if way == "send" else "receives from"
    text = (
        f"rank {r} {verb} rank {p.evaluate(cex)} at {site.loc.short}{step}, past the open "
        f"edge of the mesh (ranks 0..{_n(an).evaluate(cex) - 1}), when {an.show(sizes)}"
    )
    return an.obligation(
        "ring",
        site,
        title,
        ans,
        violated=text,
        cex=with_quantities({**sizes, an.key(an.rank_var): r}, peer=p.evaluate(cex)),
        t0=t0,
        hint=f"Guard the {way} with the neighbour's existence.",
    )


def _step(an: Analysis, site: Site, cex) -> str:
    parts = [
        f"step {cex.get(f'_t{j}', 0)} of the loop at line {lp.loc.line} "
        f"({an.label(lp.var)}={lp.lo.evaluate(cex) + cex.get(f'_t{j}', 0)})"
        for j, lp in enumerate(site.loops)
        if _evaluable(lp.lo, cex)
    ]
    return (" at " + ", ".join(parts)) if parts else ""


def _evaluable(e, env) -> bool:
    try:
        e.evaluate(env)
        return True
    except (ZeroDivisionError, shapes.ShapeError):
        return False


def _match(an: Analysis, site: Site, way: str) -> Obligation:
    t0 = time.perf_counter()
    node: Comm = site.node
    peer = node.dst if way == "send" else node.src
    guard = node.send if way == "send" else node.recv
    title = (
        f"every send at {site.loc.short} has a matching receive"
        if way == "send"
        else f"every receive at {site.loc.short} has a matching send"
    )
    hyps, sub1, ids2, reach2, _sub2, other, _ts = _sides(an, site, peer)
    p = peer.subs(sub1)
    if an.topology == "mesh":
        hyps = [*hyps, shapes.ge(p, 0), shapes.lt(p, _n(an))]
    back = other(node.src if way == "send" else node.dst).subs(_sub2)
    their = other(node.recv if way == "send" else node.send).subs(_sub2)
    me = shapes.sym(an.rank_var)
    parts = [*ids2, *reach2, their, _same_rank(an, back, me)]
    q = shapes.conj(*parts)
    hyps = [*hyps, guard.subs(sub1)]
    hyps += an.data_consistency(Instance({}, ""), other, [*hyps, q])
    assume = an.assume(hyps, query=q)
    ans = an.decide(q, assume)
    if ans.status != "refuted":
        return an.obligation("ring", site, title, ans, t0=t0)
    cex = an.minimise(q, assume, ans.cex)
    r, d = cex.get(an.rank_var, 0), _norm(an, p).evaluate(cex)
    sizes = an.values({k: v for k, v in cex.items() if an.is_size(k)})
    why = _partner_why(an, site, parts, ids2, reach2, their, back, cex, way, d)
    verb = "sends to" if way == "send" else "expects a chunk from"
    text = (
        f"rank {r} {verb} rank {d} at {site.loc.short}{_step(an, site, cex)}, but {why}, "
        f"when {an.show(sizes)}"
    )
    return an.obligation(
        "ring",
        site,
        title,
        ans,
        violated=text,
        cex=with_quantities({**sizes, an.key(an.rank_var): r}, partner=d),
        t0=t0,
    )


def _partner_why(an, site, parts, ids2, reach2, their, back, cex, way, d) -> str:
    def false(fs):
        return not all(f.evaluate(cex) for f in fs)

    if false(ids2):
        return f"rank {d} does not exist"
    exits = [(br, c) for (br, side), c in zip(site.branches, site.conds) if br.exit and side]
    trips = reach2[: len(site.loops)]
    if false(trips):
        return f"rank {d} runs fewer steps"
    conds = reach2[len(site.loops) :]
    if false(conds):
        if exits:
            return (
                f"rank {d} has left early (exit at line {exits[0][0].loc.line}): it is "
                "nobody's partner"
            )
        return f"rank {d} does not reach this step (a condition on its path is false)"
    if not their.evaluate(cex):
        return f"rank {d} does not {'receive' if way == 'send' else 'send'} there"
    return (
        f"rank {d} {'receives from' if way == 'send' else 'sends to'} rank "
        f"{_norm(an, back).evaluate(cex)} instead"
    )


# ------------------------------------------------------------------------ bounded check


def _bounded(an: Analysis, obs: list[Obligation], comms: list[Site], folds: list[Site]) -> None:
    """Undecided ring obligations: a concrete check for n <= BOUND, reported as such."""
    pending = [o for o in obs if o.status == "unknown"]
    name = _n(an).as_symbol()
    if not pending or name is None or set(an.sizes) - {name}:
        return
    if any(s.node.prov is None for s in an.sites if isinstance(s.node, Fold)):
        return
    problems: list[str] = []
    checked = 0
    for n in range(1, BOUND + 1):
        sizes = {name: n}
        try:
            if not all(f.evaluate(sizes) for f in an.domain):
                continue
            evs = interp.events(an.model, sizes, want=lambda x: isinstance(x, (Comm, Fold)))
        except (interp.RunError, ZeroDivisionError, shapes.ShapeError):
            return
        checked = n
        problems += _concrete_ring(an, evs, n, folds)
        if problems:
            break
    for o in pending:
        if problems:
            continue  # a concrete problem at small n: keep unknown, but say what was seen
        o.reason = f"checked for n <= {checked}: no violation; not proved for all n ({o.reason})"
        o.message += f" (checked for n <= {checked}; not proved for all n)"
    if problems:
        for o in pending:
            o.reason = f"a concrete run at {problems[0]} ({o.reason})"


def _concrete_ring(an: Analysis, evs, n: int, folds: list[Site]) -> list[str]:
    out = []
    folded: dict = {}
    key_of = {}
    for ev in evs:
        node = ev.node
        if isinstance(node, Fold) and node.cond.evaluate(ev.env):
            p = node.prov.evaluate(ev.env)
            folded.setdefault(ev.program, []).append(p % n if an.topology == "ring" else p)
        if isinstance(node, Comm):
            t = tuple(ev.env[lp.var] - lp.lo.evaluate(ev.env) for lp in an.by_node[id(node)].loops)
            key_of[(id(node), ev.env[an.rank_var], t)] = ev
    for prog, got in folded.items():
        if sorted(got) != list(range(n)):
            out.append(f"n={n}: program {prog} folds chunks {sorted(got)}")
    for (nid, r, t), ev in key_of.items():
        node = ev.node
        for way in ("send", "recv"):
            if not (node.send if way == "send" else node.recv).evaluate(ev.env):
                continue
            d = (node.dst if way == "send" else node.src).evaluate(ev.env)
            d = d % n if an.topology == "ring" else d
            peer = key_of.get((nid, d, t))
            ok = peer is not None and (
                peer.node.recv if way == "send" else peer.node.send
            ).evaluate(peer.env)
            if ok:
                back = (node.src if way == "send" else node.dst).evaluate(peer.env)
                ok = (back % n if an.topology == "ring" else back) == r
            if not ok:
                out.append(f"n={n}: rank {r}'s {way} at {node.loc.short} has no partner")
    return out
