"""The program-level interpreter: one program's share of a phase, written for ``vmap``.

:func:`interp` evaluates a traced body's equations for *one* program (scalar
program id, rank, lane); the phase runner vmaps it over all programs and
ranks, so nothing here loops over programs in Python.  Standard primitives
are re-bound as they are (vmap batches them; custom derivative rules are
kept).  Kernel operations get their meaning here:

* ``tp_load`` reads a tile from the phase-start snapshot (or the program's
  private view), with out-of-bounds and poisoned-read flags; masked-off and
  out-of-range elements read 0.
* ``tp_store`` appends to the program's write log (or updates its private view).
* a loop with kernel operations inside becomes a ``lax.scan`` of a static
  length with an ``active`` mask, so reverse-mode AD works and each
  iteration's writes land in the log with an iteration axis.
* a ``cond`` with kernel operations runs every branch with its predicate
  folded into the masks, and selects the results.
* ``lanes`` regions are vmapped over lane ids; lanes barriers split them.
* ``sendrecv`` gathers the value over the rank axis (``all_gather``), so
  ranks may be a vmapped axis or real devices under ``shard_map``.

Everything that can be wrong at run time is recorded as a flag
(:mod:`._flags`), masked by the predicate under which the program executes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ...lowering._jaxcompat import scan_operands
from ...spec._primitives import size_value
from ._flags import (
    ITER,
    Info,
    Record,
    counted_record,
    detailed,
    first_true,
    fold_packed,
    fold_records,
    make_record,
    pack,
    set_ids,
    unpack,
)
from ._jaxpr import (
    NumericUnsupported,
    bind_eqn,
    consts_of,
    eqn_has_kernel_ops,
    has_kernel_ops,
    kernel_eqns,
    lanes_regions,
    unwrap,
)
from ._memory import (
    LogEntry,
    ReadEntry,
    coords,
    gather_window,
    in_bounds,
    merge_lanes,
    poison_value,
    put_window,
    tile_shape,
    window,
)
from ._plan import Plan, _unflatten, loc_of
from ._vecloop import scan_vec, vectorizable, while_vec

__all__ = ["RANK_AXIS", "Ctx", "interp"]

RANK_AXIS = "tp_ranks"
_CALL_KEYS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


class Ctx:
    """What one program (or lane) carries while it runs a phase."""

    def __init__(self, plan: Plan, phase, rank, pid, alive, snap, fast_in, dyn=None):
        self.plan, self.phase = plan, phase
        self.rank, self.pid = rank, pid
        # ``dyn``: a bucketed run's sizes as data (:mod:`._bucket`); None: ``plan``'s own
        self.dyn = dyn
        if dyn is None:
            self.pids = _unflatten(pid, plan.grid)
        else:  # a padding program may lie past an empty grid: no division by 0 for it
            self.pids = _unflatten(pid, [jnp.maximum(n, 1) for n in dyn.grid_dims()])
        # a program of the real launch (False: one of a bucket's padding programs, which
        # reads zeros, so that no value, flag or gradient depends on it)
        self.real = jnp.bool_(True) if dyn is None else dyn.real(rank, pid)
        self.lane = None
        self.nlanes = 0
        self.lane_key = jnp.int32(0)
        self.alive = alive
        self.pred = alive
        self.snap = snap  # tensor -> (padded data, padded written | None)
        self.priv: dict = {}  # tensor -> (padded data, written, dirty)
        self.logs: list = []
        self.flags: list = []
        self.clock = jnp.int32(0)
        self.fast_in = fast_in  # id(eqn) -> (tiles, written tiles | None)
        self.fast_out: dict = {}
        self.acc: dict = {}  # id(store) -> (tile, mask): accumulated fast stores (loops carry it)
        self.depth = 0
        self.poison = "nan"

    def fork(self, **kw) -> Ctx:
        c = object.__new__(Ctx)
        c.__dict__.update(self.__dict__)
        c.logs, c.flags = [], []
        c.priv = dict(self.priv)
        c.acc = dict(self.acc)
        c.depth = self.depth + 1
        c.__dict__.update(kw)
        return c

    def join(self, sub: Ctx) -> None:
        self.logs += sub.logs
        self.flags += sub.flags
        self.priv = sub.priv
        self.acc = sub.acc
        self.clock = sub.clock
        self.fast_out.update(sub.fast_out)

    def start_acc(self) -> None:
        """The phase's accumulated fast stores (``Phase.accumulate``) before any write."""
        self.acc = {
            k: (jnp.zeros(tile, dt), jnp.zeros(tile, bool))
            for k, (tile, dt) in self.phase.accumulate.items()
        }

    def store_out(self, k):
        """What fast store ``k`` hands out of the program: its tile (unmasked, top level),
        or its tile and mask (masked, guarded, accumulated).  A guarded store that did not
        run (in a branch a known value ruled out, see :func:`_cond`) writes nothing: an
        all-false mask."""
        ph = self.phase
        if k in ph.accumulate:
            return self.acc[k]
        if k in self.fast_out:
            return self.fast_out[k]
        if k not in ph.guarded:  # pragma: no cover - an unmasked top-level store always runs
            raise KeyError(k)
        tile = ph.fast_store[k][1].tile
        return jnp.zeros(tile, bool), jnp.zeros(tile, bool)  # placed nowhere

    def ids(self) -> list:
        lane = self.lane_key if self.lane is not None else -1
        return [self.rank, self.pid, lane, -1, -1, -1]

    def shape(self, t: str) -> tuple:
        """``t``'s extents: the plan's, or a bucketed run's real ones (traced scalars)."""
        if self.dyn is None:
            return self.plan.shapes[t]
        return self.dyn.shape(t)

    def writer(self):
        return (self.rank * self.plan.G + self.pid) * self.plan.lanes_max + self.lane_key


# ----------------------------------------------------------------------------- walking


def _read(env, atom):
    if hasattr(atom, "val"):
        return np.asarray(atom.val, dtype=atom.aval.dtype)
    return env[atom]


def interp(j, args, ctx: Ctx, consts=None) -> list:
    jx = unwrap(j)
    env = dict(zip(jx.constvars, consts_of(j) if consts is None else consts))
    env.update(zip(jx.invars, args))
    run_eqns(jx.eqns, env, ctx, set(v for v in jx.outvars if not hasattr(v, "val")))
    return [_read(env, v) for v in jx.outvars]


def run_eqns(eqns, env: dict, ctx: Ctx, live_after: set) -> None:
    regions = lanes_regions(eqns)
    i = 0
    while i < len(eqns):
        e = eqns[i]
        if i in regions:
            end = regions[i]
            after = set(live_after)
            for later in eqns[end + 1 :]:
                after.update(v for v in later.invars if not hasattr(v, "val"))
            _lanes(e, eqns[i + 1 : end], env, ctx, after)
            i = end + 1
            continue
        outs = eval_eqn(e, [_read(env, v) for v in e.invars], ctx)
        for v, o in zip(e.outvars, outs):
            env[v] = o
        i += 1


def eval_eqn(e, vals, ctx: Ctx) -> list:
    name = e.primitive.name
    if name.startswith("tp_"):
        return _kernel_op(e, name, vals, ctx)
    if not eqn_has_kernel_ops(e):
        if _foldable(e, vals):
            with jax.ensure_compile_time_eval():
                return bind_eqn(e, vals)
        return bind_eqn(e, vals)
    if name == "while":
        return _while(e, vals, ctx)
    if name == "scan":
        return _scan(e, vals, ctx)
    if name == "cond":
        return _cond(e, vals, ctx)
    for k in _CALL_KEYS:
        if k in e.params:
            return interp(e.params[k], vals, ctx)
    raise NumericUnsupported(
        f"kernel operations inside a {name!r} are not supported by the numeric executor", loc_of(e)
    )


def _foldable(e, vals) -> bool:
    """Whether ``e`` is evaluated while tracing: every operand is known (literals, sizes,
    launch extents and what is computed from them) and every result is a scalar.

    Known scalars let :func:`_cond` run only the branch a size picks (``when(B*S >= 64)``)
    and :func:`~._memory.gather_window` slice at starts it knows; the values are the
    same, computed once on the host (scalars only: no large constant enters the program).
    """
    if e.effects or any(isinstance(v, jax.core.Tracer) for v in vals):
        return False
    return all(getattr(v.aval, "shape", None) == () for v in e.outvars)


def _pure(j, args) -> list:
    """Evaluate a jaxpr with no kernel operations."""
    jx = unwrap(j)
    env = dict(zip(jx.constvars, consts_of(j)))
    env.update(zip(jx.invars, args))
    for e in jx.eqns:
        env.update(zip(e.outvars, bind_eqn(e, [_read(env, v) for v in e.invars])))
    return [_read(env, v) for v in jx.outvars]


def _select(pred, new, old):
    new = jnp.asarray(new).astype(jnp.asarray(old).dtype)
    return lax.select(jnp.broadcast_to(pred, jnp.shape(old)), new, jnp.asarray(old))


# ----------------------------------------------------------------------------- control flow


def _while(e, vals, ctx: Ctx) -> list:
    """A ``while`` as a ``scan`` of the static trip bound with an ``active`` mask.

    Kernel operations in the condition (a bound loaded from memory, ``i < lens[b]``) are
    ordinary reads at each evaluation: bounds-checked, poison-checked and logged for
    read-write races like any load, under the predicate that the condition is evaluated
    at all — once per iteration while the loop runs, plus the evaluation that ends it.
    Stores in a condition are refused."""
    p = e.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    cconsts, bconsts, init = vals[:nc], vals[nc : nc + nb], vals[nc + nb :]
    cond_ops = has_kernel_ops(p["cond_jaxpr"])
    if cond_ops and any(k.primitive.name not in _COND_OPS for k, _ in kernel_eqns(p["cond_jaxpr"])):
        raise NumericUnsupported(
            "kernel operations other than loads in a while loop's condition "
            "(a store or a barrier there) are not supported",
            loc_of(e),
        )
    trips = ctx.plan.trip_bound(e)
    # a bucketed run: ``trips`` is the largest bound of the bucket's points and ``limit`` this
    # point's (data); the iterations from ``limit`` on are no-ops (nothing runs, the carry and
    # ``active`` stay), so the loop ends exactly as a scan of ``limit`` iterations does
    limit = None if ctx.dyn is None else ctx.dyn.trip(e)
    if not cond_ops and trips != 1:  # one trip runs inline (below)
        kinds = vectorizable(p["body_jaxpr"], nb, len(init), trips, ctx)
        if kinds is not None:
            return while_vec(e, vals, ctx, kinds, trips, interp, _pure, limit)
    init = [jnp.asarray(v) for v in init]

    def cond(carry, active, priv, clock, acc):
        """The condition's value and the context its loads ran in (None: no kernel ops)."""
        if not cond_ops:
            return _pure(p["cond_jaxpr"], [*cconsts, *carry])[0], None
        sub = ctx.fork(pred=ctx.pred & active, priv=priv, clock=clock, acc=acc)
        return interp(p["cond_jaxpr"], [*cconsts, *carry], sub)[0], sub

    def step(state, t):
        carry, active, priv, clock, acc = state
        live = active if limit is None else active & (t < limit)
        c, csub = cond(carry, live, priv, clock, acc)
        act = live & c
        if csub is not None:
            priv, clock, acc = csub.priv, csub.clock, csub.acc
        sub = ctx.fork(pred=ctx.pred & act, priv=priv, clock=clock, acc=acc)
        new = interp(p["body_jaxpr"], [*bconsts, *carry], sub)
        carry = [_select(act, n, o) for n, o in zip(new, carry)]
        logs = sub.logs if csub is None else csub.logs + sub.logs
        flags = sub.flags if csub is None else csub.flags + sub.flags
        keep = act if limit is None else jnp.where(t < limit, act, active)
        return (carry, keep, sub.priv, sub.clock, sub.acc), (logs, iter_records(flags, t, infos))

    state = (init, jnp.bool_(True), ctx.priv, ctx.clock, ctx.acc)
    infos: list = []
    if trips == 1:  # one iteration at most: run inline (no scan), so that a fast store in
        # the body can hand its tile out (:mod:`._nested`); the same values and flags
        (carry, active, priv, clock, acc), (logs, packed) = step(state, jnp.int32(0))
        packed = packed[None]
    else:
        (carry, active, priv, clock, acc), (logs, packed) = lax.scan(
            step, state, jnp.arange(trips, dtype=jnp.int32)
        )
    recs = loop_records(infos, packed)
    c, csub = cond(carry, active, priv, clock, acc)  # the evaluation after the last iteration
    still = ctx.pred & active & c
    ctx.flags.append(
        make_record(Info("loop_bound", None, loc_of(e), 0, str(trips)), still, _no_elem, ctx.ids())
    )
    ctx.priv, ctx.clock, ctx.acc = priv, clock, acc
    ctx.logs += logs
    ctx.flags += recs
    if csub is not None:
        ctx.priv, ctx.clock, ctx.acc = csub.priv, csub.clock, csub.acc
        ctx.logs += csub.logs
        ctx.flags += [set_ids(r, ITER, trips if limit is None else limit) for r in csub.flags]
    return carry


_COND_OPS = (
    "tp_load",
    "tp_size",
    "tp_program_id",
    "tp_num_programs",
    "tp_lane_id",
    "tp_num_lanes",
    "tp_rank_id",
    "tp_num_ranks",
)


def _scan(e, vals, ctx: Ctx) -> list:
    p = e.params
    consts, init, xs = scan_operands(p, vals)
    ncar, length = len(init), p["length"]
    if not p.get("reverse", False) and length != 1:  # one trip runs inline (below)
        kinds = vectorizable(p["jaxpr"], len(consts), ncar, length, ctx)
        if kinds is not None:
            return scan_vec(e, consts, init, xs, ctx, kinds, interp)
    init = [jnp.asarray(v) for v in init]

    def step(state, x):
        carry, priv, clock, acc = state
        xs_t, t = x
        sub = ctx.fork(priv=priv, clock=clock, acc=acc)
        outs = interp(p["jaxpr"], [*consts, *carry, *xs_t], sub)
        carry = [jnp.asarray(o).astype(c.dtype) for o, c in zip(outs[:ncar], carry)]
        return (carry, sub.priv, sub.clock, sub.acc), (
            outs[ncar:],
            sub.logs,
            iter_records(sub.flags, t, infos),
        )

    infos: list = []
    if length == 1:  # run inline (see _while); the outputs get their axis of one
        (carry, priv, clock, acc), (ys, logs, packed) = step(
            (init, ctx.priv, ctx.clock, ctx.acc), ([jnp.asarray(x)[0] for x in xs], jnp.int32(0))
        )
        ys = [jnp.asarray(y)[None] for y in ys]
        packed = packed[None]
    else:
        (carry, priv, clock, acc), (ys, logs, packed) = lax.scan(
            step,
            (init, ctx.priv, ctx.clock, ctx.acc),
            (list(xs), jnp.arange(length, dtype=jnp.int32)),
            length=length,
            reverse=p.get("reverse", False),
        )
    recs = loop_records(infos, packed)
    ctx.priv, ctx.clock, ctx.acc = priv, clock, acc
    ctx.logs += logs
    ctx.flags += recs
    return [*carry, *ys]


def iter_records(flags: list[Record], t, infos: list):
    """One loop iteration's records, folded to one row each with the iteration as their
    ``ITER`` id, packed into one array (``infos`` receives their static halves)."""
    recs = [set_ids(r, ITER, t) for r in fold_records(flags)]
    infos[:] = [r.info for r in recs]
    return pack(recs) if recs else jnp.zeros((0, 1), jnp.int32)


def loop_records(infos: list, packed) -> list[Record]:
    """The records of a loop: its iterations' packed rows ``[trips, n, K]`` folded (the
    first iteration with a hit named, counts summed)."""
    if not infos:
        return []
    return unpack(infos, fold_packed(packed, 1))


def _cond(e, vals, ctx: Ctx) -> list:
    brs = e.params["branches"]
    ops = vals[1:]
    if not isinstance(vals[0], jax.core.Tracer):  # known while tracing: only that branch runs
        # (the others would run with a false predicate: no write, no flag)
        b = int(np.clip(int(np.asarray(vals[0])), 0, len(brs) - 1))
        sub = ctx.fork()
        out = interp(brs[b], ops, sub)
        ctx.join(sub)
        return out
    idx = jnp.clip(jnp.asarray(vals[0]).astype(jnp.int32), 0, len(brs) - 1)
    outs = []
    for b, br in enumerate(brs):
        sub = ctx.fork(pred=ctx.pred & (idx == b))
        outs.append(interp(br, ops, sub))
        ctx.join(sub)
    if not outs[0]:
        return []
    if len(brs) == 1:
        return outs[0]
    return [lax.select_n(idx, *[jnp.asarray(o[k]) for o in outs]) for k in range(len(outs[0]))]


def _lanes(begin, body, env: dict, ctx: Ctx, live_after: set) -> None:
    n = begin.params["n"]
    # split at this region's own lanes barriers (not those of nested regions)
    parts, cur, depth = [], [], 0
    for e in body:
        name = e.primitive.name
        depth += name == "tp_lanes_begin"
        depth -= name == "tp_lanes_end"
        if name == "tp_barrier" and e.params["scope"] == "lanes" and depth == 0:
            parts.append(cur)
            cur = []
        else:
            cur.append(e)
    parts.append(cur)
    defined_in = [{v for e in part for v in e.outvars} for part in parts]
    lane_env: dict = {}
    lane_ids = jnp.arange(n, dtype=jnp.int32)
    for k, part in enumerate(parts):
        later_uses = set(live_after)
        for part2 in parts[k + 1 :]:
            for e in part2:
                later_uses.update(v for v in e.invars if not hasattr(v, "val"))
        outs_v = [v for v in defined_in[k] if v in later_uses or v in lane_env]
        outs_v += [v for v in lane_env if v not in outs_v]
        ins_v = list(lane_env)
        keys = ctx.lane_key * n + lane_ids

        def lane_fn(lane, key, in_vals, part=part, outs_v=outs_v, ins_v=ins_v):
            child_priv = {t: (d, w, jnp.zeros_like(dirty)) for t, (d, w, dirty) in ctx.priv.items()}
            sub = ctx.fork(lane=lane, nlanes=n, lane_key=key, priv=child_priv)
            env2 = dict(env)
            env2.update(zip(ins_v, in_vals))
            run_eqns(part, env2, sub, set(outs_v))
            return [env2[v] for v in outs_v], sub.logs, sub.flags, sub.priv, sub.clock

        vals, logs, flags, priv, clock = jax.vmap(lane_fn)(
            lane_ids, keys, [lane_env[v] for v in ins_v]
        )
        lane_env = dict(zip(outs_v, vals))
        ctx.logs += logs
        ctx.flags += flags
        ctx.clock = clock[0]
        for t, view in list(ctx.priv.items()):
            merged, rec = merge_lanes(view, priv[t], keys, t, len(ctx.plan.shapes[t]), ctx.ids())
            rec.elem = tuple(e - p for e, p in zip(rec.elem, ctx.plan.pads[t]))
            rec.info = Info("race", t, loc_of(begin), len(ctx.plan.shapes[t]))
            ctx.priv[t] = merged
            ctx.flags.append(rec)
    for v in live_after:
        if v in lane_env:
            env[v] = lane_env[v][0]


# ----------------------------------------------------------------------------- kernel ops


def _kernel_op(e, name: str, vals, ctx: Ctx) -> list:
    p = e.params
    plan = ctx.plan
    if name == "tp_size":  # numpy scalars: known while tracing (see _foldable)
        if ctx.dyn is not None:  # a bucketed run: the point's size is data, never folded
            return [ctx.dyn.size(e)]
        return [np.int32(size_value(p, plan.sizes))]
    if name == "tp_program_id":
        return [ctx.pids[p["axis"]]]
    if name == "tp_num_programs":
        if ctx.dyn is not None:
            return [ctx.dyn.grid_dims()[p["axis"]]]
        return [np.int32(plan.grid[p["axis"]])]
    if name in ("tp_lane_id", "tp_num_lanes"):
        if ctx.lane is None:
            raise NumericUnsupported("lane_id() outside a lanes() region", loc_of(e))
        return [ctx.lane if name == "tp_lane_id" else np.int32(ctx.nlanes)]
    if name == "tp_rank_id":
        return [ctx.rank]
    if name == "tp_num_ranks":
        return [np.int32(plan.R) if ctx.dyn is None else ctx.dyn.ranks()]
    if name == "tp_load":
        return [_load(e, vals, ctx)]
    if name == "tp_store":
        _store(e, vals, ctx)
        return []
    if name == "tp_exit":
        if ctx.depth:
            raise NumericUnsupported("exit_if() inside a loop, branch or lanes region", loc_of(e))
        c = jnp.asarray(vals[0], bool)
        ctx.alive = ctx.alive & ~c
        ctx.pred = ctx.pred & ~c
        return []
    if name == "tp_barrier":
        raise NumericUnsupported(
            f"a {p['scope']} barrier here is not supported by the numeric "
            "executor (grid barriers at the top level of the body, lanes "
            "barriers at the top level of a lanes region)",
            loc_of(e),
        )
    if name == "tp_lane_part":
        tile, lane = vals
        part = tile.shape[p["axis"]] // p["n"]
        return [lax.dynamic_slice_in_dim(tile, lane * part, part, p["axis"])]
    if name == "tp_fold":
        return [vals[0]]
    if name in ("tp_claim", "tp_assert"):  # hints and rules the static obligations prove
        return []
    if name == "tp_sendrecv":
        return [_sendrecv(e, vals, ctx)]
    if name == "tp_unsupported":
        raise NumericUnsupported(p["what"], loc_of(e))
    raise NumericUnsupported(f"unknown kernel operation {name}", loc_of(e))


def _no_elem(_k):
    return ()


def _access_record(kind: str, t: str, site, bad, starts, dims, ctx: Ctx):
    """A record of a tile access: the element of flat tile position k is start + offset."""

    def elem_at(ix):
        idx = iter(ix)
        return [s + next(idx) if kind_ == "ds" else s for s, (kind_, _n) in zip(starts, dims)]

    bad = jnp.broadcast_to(bad, tile_shape(dims))
    return make_record(Info(kind, t, site, len(dims)), bad, elem_at, ctx.ids())


def _oob_record(kind: str, t: str, site, pred, starts, dims, shape, ctx: Ctx):
    """Out-of-bounds record of an unmasked access, from per-dimension vectors.

    ``in_bounds`` is a product of per-dimension conditions, so the count and the
    first bad element (row-major) need O(sum of tile extents), not O(tile size).
    """
    oks, sizes, pts_ok = [], [], jnp.bool_(True)
    for s, (k, n), ext in zip(starts, dims, shape):
        s = jnp.asarray(s, jnp.int32)
        if k == "ds":
            c = s + jnp.arange(n, dtype=jnp.int32)
            oks.append((c >= 0) & (c < ext))
            sizes.append(n)
        else:
            pts_ok = pts_ok & (s >= 0) & (s < ext)
    total = int(np.prod(sizes, dtype=np.int64)) if sizes else 1
    n_ok = jnp.asarray(pts_ok, jnp.int32)
    for ok in oks:
        n_ok = n_ok * jnp.sum(ok, dtype=jnp.int32)
    count = jnp.where(pred, total - n_ok, 0).astype(jnp.int32)
    if not detailed():
        return counted_record(Info(kind, t, site, len(dims)), count)
    # first bad index, dimension by dimension: at dim j (nothing bad chosen yet), index 0 if
    # it is bad there, or if a later dim has a bad index (then an element with index 0 here is
    # bad); otherwise the first bad index of this dim, with 0 in every later dim
    anybad = [~jnp.all(ok) for ok in oks]
    found = ~pts_ok
    idx = []
    for j, ok in enumerate(oks):
        rest = jnp.bool_(False)
        for b in anybad[j + 1 :]:
            rest = rest | b
        first_bad = first_true(~ok)
        here = jnp.where(found | ~ok[0] | rest, 0, first_bad)
        found = found | ~ok[0] | ~rest
        idx.append(here)
    idx_it = iter(idx)
    elem = tuple(
        jnp.asarray(s, jnp.int32) + next(idx_it) if k == "ds" else jnp.asarray(s, jnp.int32)
        for s, (k, _n) in zip(starts, dims)
    )
    ids = tuple(jnp.asarray(i, jnp.int32) for i in ctx.ids())
    return Record(Info(kind, t, site, len(dims)), count, ids, elem)


def _load(e, vals, ctx: Ctx):
    p = e.params
    t, dims = p["tensor"], p["dims"]
    nd = len(dims)
    starts = vals[:nd]
    shape = ctx.shape(t)
    site = loc_of(e)
    if t in ctx.phase.rw and t not in ctx.phase.owned:  # an owned slice: nobody else writes it
        m_read = ctx.pred if p["has_mask"] is False else ctx.pred & jnp.asarray(vals[nd], bool)
        st = (
            jnp.stack([jnp.asarray(x, jnp.int32) for x in starts])
            if starts
            else jnp.zeros((0,), jnp.int32)
        )
        inb_r = in_bounds(coords(starts, dims), shape, dims)
        ctx.logs.append(
            ReadEntry(
                (t, dims, site),
                st,
                jnp.broadcast_to(m_read & inb_r, tile_shape(dims)),
                jnp.asarray(ctx.writer(), jnp.int32),
            )
        )
    fast = ctx.fast_in.get(id(e))
    mask = jnp.asarray(vals[nd], bool) if p["has_mask"] else None
    if fast is not None and mask is None:
        tiles, wt = fast
        if wt is not None:
            ctx.flags.append(_access_record("poison", t, site, ctx.pred & ~wt, starts, dims, ctx))
        return tiles
    if fast is not None and ctx.phase.fast_load[id(e)].inside:
        # every program's tile lies inside the tensor (its starts are the concrete ones the
        # tiling was fitted to): no element is out of bounds, only the mask applies (no
        # bucketed run here: a bucket's plan has no fast paths)
        tiles, wt = fast
        want = ctx.pred & mask
        if wt is not None:
            ctx.flags.append(_access_record("poison", t, site, want & ~wt, starts, dims, ctx))
        return jnp.where(mask, tiles, jnp.zeros((), tiles.dtype))
    want = ctx.pred if mask is None else ctx.pred & mask
    if id(e) in ctx.plan.inside:  # static starts that keep the tile inside the tensor for
        # every program (Plan._pads): nothing can be out of bounds, nothing to flag
        m = True if mask is None else mask
    else:
        inb = in_bounds(coords(starts, dims), shape, dims)
        m = inb if mask is None else mask & inb
        if mask is None:
            ctx.flags.append(_oob_record("oob_load", t, site, ctx.pred, starts, dims, shape, ctx))
        else:
            ctx.flags.append(_access_record("oob_load", t, site, want & ~inb, starts, dims, ctx))
    if ctx.dyn is not None:  # a bucket's padding program reads zeros (see Ctx.real)
        m = ctx.real if isinstance(m, bool) else m & ctx.real
    if fast is not None:  # a masked tile of a reshape: the same mask, bounds and flags
        tiles, wt = fast
        if wt is not None:
            ctx.flags.append(_access_record("poison", t, site, want & m & ~wt, starts, dims, ctx))
        return _where0(m, tiles)
    if t in ctx.priv:  # a padded private view, or an owned one: the program's slice, its
        # own dims only (Plan._owned)
        d, w, _ = ctx.priv[t]
        k = ctx.phase.owned.get(t, 0)
        pads = ctx.plan.pads[t]
        val = window(d, starts[k:], pads[k:], dims[k:])
        wv = None if w is None else window(w, starts[k:], pads[k:], dims[k:])
    else:  # the tensor itself at the phase's start: no copy, a gather of the tile
        d, w = ctx.snap[t]
        val = gather_window(d, starts, dims)
        wv = None if w is None else gather_window(w, starts, dims)
    if w is not None:
        ctx.flags.append(_access_record("poison", t, site, want & m & ~wv, starts, dims, ctx))
    return _where0(m, val)


def _where0(m, val):
    """``val`` where ``m`` holds, 0 elsewhere (``m`` a literal True: ``val`` itself)."""
    if isinstance(m, (bool, np.bool_)) and m:
        return val
    return jnp.where(m, val, jnp.zeros((), val.dtype))


def _store(e, vals, ctx: Ctx) -> None:
    p = e.params
    t, dims = p["tensor"], p["dims"]
    nd = len(dims)
    value, starts = vals[0], vals[1 : 1 + nd]
    if id(e) in ctx.phase.fast_store and not p["has_mask"] and id(e) not in ctx.phase.guarded:
        ctx.fast_out[id(e)] = value
        return
    shape = ctx.shape(t)
    mask = jnp.asarray(vals[1 + nd], bool) if p["has_mask"] else None
    fast = ctx.phase.fast_store.get(id(e))
    if fast is not None and fast[1].inside:  # masked or guarded, every tile inside the
        # tensor (see _load): nothing out of bounds, the tile goes where the mask holds
        _fast_put(e, ctx, value, ctx.pred if mask is None else ctx.pred & mask, dims)
        return
    want = ctx.pred if mask is None else ctx.pred & mask
    if id(e) in ctx.plan.inside:  # never out of bounds (see _load)
        m = want
    else:
        inb = in_bounds(coords(starts, dims), shape, dims)
        site = loc_of(e)
        if mask is None:
            ctx.flags.append(_oob_record("oob_store", t, site, ctx.pred, starts, dims, shape, ctx))
        else:
            ctx.flags.append(_access_record("oob_store", t, site, want & ~inb, starts, dims, ctx))
        m = want & inb
    if id(e) in ctx.phase.fast_store:  # a masked (or nested: guarded) store of a disjoint
        # tiling: placed after the phase (no two programs share a tile: no race, no scatter)
        _fast_put(e, ctx, value, m, dims)
        return
    value = jnp.asarray(value)
    if t in ctx.priv:
        k = ctx.phase.owned.get(t, 0)  # an owned view is the program's slice (see _load)
        pads, st, dm = ctx.plan.pads[t][k:], starts[k:], dims[k:]
        d, w, dirty = ctx.priv[t]
        d = put_window(d, jnp.where(m, value, window(d, st, pads, dm)), st, pads, dm)
        w = put_window(w, m | window(w, st, pads, dm), st, pads, dm)
        if t not in ctx.phase.owned:  # an owned slice is merged without one
            dirty = put_window(dirty, m | window(dirty, st, pads, dm), st, pads, dm)
        ctx.priv[t] = (d, w, dirty)
    else:
        st = (
            jnp.stack([jnp.asarray(s, jnp.int32) for s in starts])
            if starts
            else jnp.zeros((0,), jnp.int32)
        )
        ctx.logs.append(
            LogEntry(
                (t, dims),
                value,
                st,
                jnp.broadcast_to(m, value.shape),
                jnp.asarray(ctx.writer(), jnp.int32),
                ctx.clock,
            )
        )
    ctx.clock = ctx.clock + 1


def _fast_put(e, ctx: Ctx, value, m, dims) -> None:
    """Hand a fast store's tile and mask out of the program; an accumulated one (in a loop
    of several trips, ``Phase.accumulate``) lands over the tile carried so far, where
    ``m`` holds: the last write of each element wins, as in program order."""
    tshape = tile_shape(dims)
    value = jnp.broadcast_to(jnp.asarray(value), tshape)
    m = jnp.broadcast_to(m, tshape)
    if id(e) in ctx.phase.accumulate:
        old, old_m = ctx.acc[id(e)]
        ctx.acc = {**ctx.acc, id(e): (jnp.where(m, value.astype(old.dtype), old), old_m | m)}
    else:
        ctx.fast_out[id(e)] = (value, m)


def _sendrecv(e, vals, ctx: Ctx):
    plan = ctx.plan
    if not plan.has_ranks:
        raise NumericUnsupported("sendrecv() in a kernel declared without ranks", loc_of(e))
    value, dst, src, send, recv = vals
    value = jnp.asarray(value)
    dst = jnp.asarray(dst, jnp.int32)
    src = jnp.asarray(src, jnp.int32)
    send = ctx.pred & jnp.asarray(send, bool)
    recv = ctx.pred & jnp.asarray(recv, bool)
    n = plan.R if ctx.dyn is None else ctx.dyn.ranks()
    me = ctx.rank
    all_v = lax.all_gather(value, RANK_AXIS)
    all_dst = lax.all_gather(dst, RANK_AXIS)
    all_src = lax.all_gather(src, RANK_AXIS)
    all_send = lax.all_gather(send, RANK_AXIS)
    all_recv = lax.all_gather(recv, RANK_AXIS)
    src_ok = (src >= 0) & (src < n)
    dst_ok = (dst >= 0) & (dst < n)
    s = jnp.clip(src, 0, n - 1)
    d = jnp.clip(dst, 0, n - 1)
    got = recv & src_ok & all_send[s] & (all_dst[s] == me)
    bad = poison_value(value.dtype) if ctx.poison == "nan" else jnp.zeros((), value.dtype)
    out = jnp.where(got, all_v[s], bad)
    site = loc_of(e)
    ids = ctx.ids()
    ctx.flags.append(
        make_record(Info("ring_recv", None, site), recv & ~got, _no_elem, [*ids[:4], src, -1])
    )
    ctx.flags.append(
        make_record(Info("ring_edge", None, site), send & ~dst_ok, _no_elem, [*ids[:4], dst, -1])
    )
    matched = all_recv[d] & (all_src[d] == me)
    ctx.flags.append(
        make_record(
            Info("ring_send", None, site), send & dst_ok & ~matched, _no_elem, [*ids[:4], dst, -1]
        )
    )
    return out
