"""Loops whose iterations do not depend on each other run as one ``vmap`` over the iterations.

A loop with kernel operations inside is a ``lax.scan`` of its static trip bound
(:mod:`._interp`): one iteration after the other, each a handful of device operations
(issue 13: ``compressor_pool`` spent most of its time in 64-iteration loops over rows,
each iteration a few tiny gathers and writes).  But within a phase a program's loads
read the memory of the phase's start (its writes land in the write log, applied after
the phase), so when an iteration's only inputs from earlier iterations are

* carried values that the body passes through unchanged, and
* counters that the body advances by a constant (``fori_loop``'s index),

iteration ``t`` sees exactly what the sequential run gives it: the counter at
``init + t*step`` and the rest as they were.  Its loads, stores and flags are then the
same as in the sequential run, only computed for all iterations at once, with the
iteration as a batch axis where the scan stacked it:

* the predicate of iteration ``t`` is the loop's ``active`` mask, the running AND of
  the condition over iterations ``0..t`` (a ``while``'s condition is evaluated at every
  counter value up front; it must be free of kernel operations);
* write logs and records get the iteration axis that the scan's stacked outputs had,
  so races, last-write order and the first offender named are the same;
* the write clock (the order of a program's own writes) of iteration ``t`` starts at
  ``clock + t*S``, where ``S`` bounds the writes of one iteration (:func:`store_bound`):
  the order of the sequential run, with gaps.

A program's private view (a tensor it reads back after writing it in the phase) is
what iterations would pass each other, so a loop in a phase with private views stays a
scan, and so does a body whose tiles over all iterations would exceed
:data:`VEC_LIMIT` elements (memory grows with the iterations batched).
``TILEPROOF_NO_VEC_LOOPS=1`` runs every loop as a scan (to compare the two).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from ._flags import ITER, Info, fold_records, make_record, set_ids
from ._jaxpr import NumericUnsupported, has_kernel_ops, kernel_eqns, sub_jaxprs, unwrap

__all__ = ["VEC_LIMIT", "carry_kinds", "scan_vec", "store_bound", "vectorizable", "while_vec"]

# the most tile elements a vectorised loop may hold at once (all programs, iterations, lanes)
VEC_LIMIT = 1 << 27


def carry_kinds(body, nconsts: int, ncarry: int) -> list[tuple[str, int]] | None:
    """Per carried value of a loop body: ``("pass", 0)`` (returned unchanged) or
    ``("count", step)`` (returned as itself plus an integer literal); None if any carried
    value is anything else (an iteration depends on the one before)."""
    jx = unwrap(body)
    ins = jx.invars[nconsts : nconsts + ncarry]
    outs = jx.outvars[:ncarry]
    defs = {v: e for e in jx.eqns for v in e.outvars}
    kinds = []
    for a, b in zip(ins, outs):
        if b is a:
            kinds.append(("pass", 0))
            continue
        e = defs.get(b)
        step = _counter_step(e, a) if e is not None else None
        if step is None:
            return None
        kinds.append(("count", step))
    return kinds


def _counter_step(e, var) -> int | None:
    if e.primitive.name != "add" or len(e.invars) != 2:
        return None
    aval = e.outvars[0].aval
    if getattr(aval, "shape", None) != () or not jnp.issubdtype(aval.dtype, jnp.integer):
        return None
    x, y = e.invars
    if x is var and hasattr(y, "val"):
        return int(np.asarray(y.val))
    if y is var and hasattr(x, "val"):
        return int(np.asarray(x.val))
    return None


def store_bound(j, plan) -> int:
    """An upper bound on the stores one run of ``j`` makes (each advances the write clock):
    every branch counted, loops at their static trip bounds."""
    n = 0
    for e in unwrap(j).eqns:
        name = e.primitive.name
        if name == "tp_store":
            n += 1
        elif name == "while":
            inner = store_bound(e.params["body_jaxpr"], plan)
            n += plan.trip_bound(e) * inner if inner else 0
        elif name == "scan":
            n += e.params["length"] * store_bound(e.params["jaxpr"], plan)
        else:
            n += sum(store_bound(s, plan) for s in sub_jaxprs(e))
    return n


def tile_volume(j, plan) -> int:
    """The most tile elements one run of ``j`` holds at once if every loop in it were
    vectorised (tiles of its loads and stores times the trip bounds around them)."""
    best = 0
    for e in unwrap(j).eqns:
        name = e.primitive.name
        if name in ("tp_load", "tp_store"):
            best = max(best, int(np.prod([s for k, s in e.params["dims"] if k == "ds"] or [1])))
        elif name == "while":
            inner = tile_volume(e.params["body_jaxpr"], plan)
            # a loop without loads or stores holds no tile: its bound is not asked for (a
            # bucket's plan knows the bounds of the loops with kernel operations only)
            best = max(best, plan.trip_bound(e) * inner if inner else 0)
        elif name == "scan":
            best = max(best, e.params["length"] * tile_volume(e.params["jaxpr"], plan))
        else:
            for s in sub_jaxprs(e):
                best = max(best, tile_volume(s, plan))
    return best


def vectorizable(body, nconsts: int, ncarry: int, trips: int, ctx) -> list | None:
    """The carry kinds if the loop may run as a vmap over its ``trips`` iterations."""
    if trips <= 0 or ctx.priv or os.environ.get("TILEPROOF_NO_VEC_LOOPS"):
        return None
    kinds = carry_kinds(body, nconsts, ncarry)
    if kinds is None:
        return None
    plan = ctx.plan
    try:
        volume = trips * tile_volume(body, plan) * plan.R * plan.G * plan.lanes_max
    except NumericUnsupported:  # an inner loop without a bound: the scan reports it
        return None
    if volume > VEC_LIMIT:
        return None
    return kinds


def _at(init, kinds, k) -> list:
    """The carried values after ``k`` iterations (``k`` an int32 scalar or vector)."""
    out = []
    for v, (kind, step) in zip(init, kinds):
        if kind == "count":
            v = jnp.asarray(v)
            out.append(v + (k * step).astype(v.dtype))
        else:
            out.append(v)
    return out


def while_vec(e, vals, ctx, kinds, trips: int, interp, pure, limit=None) -> list:
    """A ``while`` (see :func:`~._interp._while`) whose iterations are independent.

    ``limit``: a bucketed run's trip bound of this point (traced, at most ``trips``, the
    bucket's): the iterations from ``limit`` on are inactive, and the loop-bound check asks
    whether the condition still holds after ``limit`` active iterations -- exactly the scan
    of ``limit`` iterations that the point's own run makes."""
    p = e.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    cconsts, bconsts, init = vals[:nc], vals[nc : nc + nb], list(vals[nc + nb :])
    stride = store_bound(p["body_jaxpr"], ctx.plan)
    ts = jnp.arange(trips, dtype=jnp.int32)

    def cond_at(k):
        return jnp.asarray(pure(p["cond_jaxpr"], [*cconsts, *_at(init, kinds, k)])[0], bool)

    c = jax.vmap(cond_at)(ts)
    active = jnp.cumprod(c.astype(jnp.int32)) > 0  # the running AND: a loop that ended stays ended
    if limit is not None:
        active = active & (ts < limit)

    keys = acc_keys(p["body_jaxpr"], ctx)

    def one(k, act):
        sub = ctx.fork(pred=ctx.pred & act, clock=ctx.clock + k * stride, acc=fresh_acc(ctx, keys))
        interp(p["body_jaxpr"], [*bconsts, *_at(init, kinds, k)], sub)
        return sub.logs, [set_ids(r, ITER, k) for r in sub.flags], [sub.acc[a] for a in keys]

    logs, recs, accs = jax.vmap(one)(ts, active)
    merge_acc(ctx, keys, accs)
    ctx.logs += logs
    ctx.flags += fold_records(recs)
    done = jnp.sum(active, dtype=jnp.int32)
    if limit is None:
        still = ctx.pred & active[-1] & cond_at(jnp.int32(trips))
    else:  # every one of the point's ``limit`` iterations ran, and the condition still holds
        still = ctx.pred & (done == limit) & cond_at(jnp.asarray(limit, jnp.int32))
    from ._interp import _no_elem, loc_of

    ctx.flags.append(
        make_record(Info("loop_bound", None, loc_of(e), 0, str(trips)), still, _no_elem, ctx.ids())
    )
    ctx.clock = ctx.clock + trips * stride
    return _at(init, kinds, done)


def scan_vec(e, consts, init, xs, ctx, kinds, interp) -> list:
    """A forward ``scan`` (see :func:`~._interp._scan`) whose iterations are independent."""
    p = e.params
    length = p["length"]
    ncar = len(init)
    stride = store_bound(p["jaxpr"], ctx.plan)
    ts = jnp.arange(length, dtype=jnp.int32)

    keys = acc_keys(p["jaxpr"], ctx)

    def one(k, xs_t):
        sub = ctx.fork(clock=ctx.clock + k * stride, acc=fresh_acc(ctx, keys))
        outs = interp(p["jaxpr"], [*consts, *_at(init, kinds, k), *xs_t], sub)
        accs = [sub.acc[a] for a in keys]
        return outs[ncar:], sub.logs, [set_ids(r, ITER, k) for r in sub.flags], accs

    ys, logs, recs, accs = jax.vmap(one)(ts, list(xs))
    merge_acc(ctx, keys, accs)
    ctx.logs += logs
    ctx.flags += fold_records(recs)
    ctx.clock = ctx.clock + length * stride
    return [*_at(init, kinds, jnp.int32(length)), *ys]


def acc_keys(body, ctx) -> list[int]:
    """The accumulated fast stores (``Phase.accumulate``, see :mod:`._nested`) in a loop
    body: each iteration lays its tile over the one carried so far."""
    return sorted(id(k) for k, _ in kernel_eqns(body) if id(k) in ctx.phase.accumulate)


def fresh_acc(ctx, keys: list[int]) -> dict:
    """The carried tiles an iteration starts from: its own writes only (nothing masked in),
    so that :func:`merge_acc` can tell which iteration wrote an element last."""
    acc = dict(ctx.acc)
    for a in keys:
        old, old_m = acc[a]
        acc[a] = (jnp.zeros_like(old), jnp.zeros_like(old_m))
    return acc


def merge_acc(ctx, keys: list[int], accs) -> None:
    """Fold the accumulated tiles of a vectorised loop's iterations (``[trips, *tile]``
    values and masks, each iteration's own writes: :func:`fresh_acc`) over the tiles carried into it, as the sequential loop does: each
    element takes the value of the last iteration whose mask holds there, or keeps the
    carried one where none does."""
    if not keys:
        return
    acc = dict(ctx.acc)
    for a, (vals, ms) in zip(keys, accs):
        old, old_m = acc[a]
        n = ms.shape[0]
        last = n - 1 - jnp.argmax(jnp.flip(ms, 0), axis=0)  # the last iteration that wrote
        v = jnp.take_along_axis(vals, last[None], axis=0)[0]
        hit = jnp.any(ms, axis=0)
        acc[a] = (jnp.where(hit, v.astype(old.dtype), old), old_m | hit)
    ctx.acc = acc


def pure_cond(p) -> bool:
    """A ``while`` condition free of kernel operations (evaluated up front)."""
    return not has_kernel_ops(p["cond_jaxpr"])
