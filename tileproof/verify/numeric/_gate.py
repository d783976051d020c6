"""Top-level ``when`` blocks that few programs enter run on those programs only.

The executor runs a phase as one ``vmap`` over every program of the launch, and a
``cond`` under ``vmap`` runs its branches for every program, masked (issue 13:
``decode_split_k`` does its page loop in 512 of its 4096 programs — the others have
``head_block >= Hkv*num_groups`` or ``split >= NS`` — and ``compressor_pool`` its
projection in 2 of 32, yet every program loaded and multiplied the tiles).

Which programs can enter such a block is often known before anything runs: the
condition is a conjunction, and some conjuncts depend only on program ids, ranks and
sizes (:meth:`~._plan.Plan.static_values` evaluates them for every program).  A
program where one of those is false takes the ``cond``'s first branch, and when that
branch holds no kernel operation and the ``cond`` returns nothing, the block does
nothing at all for that program: no write, no flag.  So the phase is cut into
segments at such blocks: the segments between them run over every program as before,
each block over the programs that may enter it (with its full condition still
applied).  The memory semantics are unchanged — every segment reads the memory of the
phase's start, and their writes go to the same log — and so are the findings: the
programs of a block keep their launch order, and every record names the program by its
own ids.  A program's write clock passes from segment to segment (skipping a block
leaves a gap in it, which keeps the order of its writes).

Phases with private views, ranks on devices (``shard_map``), and blocks with
``sendrecv`` (a collective over all ranks) or ``exit_if`` are not cut.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._interp import RANK_AXIS, Ctx, run_eqns
from ._jaxpr import eqn_has_kernel_ops, has_kernel_ops, kernel_eqns
from ._plan import kernel_eqns_of

__all__ = ["GATE_MAX", "phase_gates", "run_segments"]

GATE_MAX = 0.5  # a block is run apart when at most this fraction of the programs may enter it
_NO_GATE_OPS = ("tp_sendrecv", "tp_exit", "tp_barrier")


def phase_gates(plan, ph) -> dict[int, np.ndarray]:
    """``{index of a top-level cond in the phase: flat [R*G] bool of the programs that may
    enter it}`` for the blocks worth running apart (see the module docstring)."""
    from ._plan import _lanes_members

    try:
        static = plan.static_values()
    except Exception:  # no static values: nothing is cut
        return {}
    inside = _lanes_members(ph.eqns)
    defs = {v: e for e in ph.eqns for v in e.outvars}
    out = {}
    n = plan.R * plan.G
    for i, e in enumerate(ph.eqns):
        if e.primitive.name != "cond" or i in inside or e.outvars or not eqn_has_kernel_ops(e):
            continue
        brs = e.params["branches"]
        if has_kernel_ops(brs[0]):
            continue
        if any(k.primitive.name in _NO_GATE_OPS for b in brs for k, _ in kernel_eqns(b)):
            continue
        need = _necessary(e.invars[0], static, defs, (plan.R, plan.G))
        if need is None or need.sum() > GATE_MAX * n:
            continue
        out[i] = need.reshape(-1)
    return out


def _necessary(v, static, defs, shape, depth: int = 0):
    """A ``[R, G]`` bool that is True wherever the scalar ``v`` may be non-zero (None: no
    program can be ruled out): ``v`` itself when it is static, else the conjuncts of the
    ``and`` (through an int conversion) that computes it which are."""
    if hasattr(v, "val"):
        return np.broadcast_to(np.asarray(v.val) != 0, shape)
    if v in static:
        return np.broadcast_to(np.asarray(static[v]) != 0, shape)
    e = defs.get(v)
    if e is None or depth > 16:
        return None
    name = e.primitive.name
    if name == "convert_element_type" and e.invars[0].aval.dtype == jnp.bool_:
        return _necessary(e.invars[0], static, defs, shape, depth + 1)
    if name == "and" and e.outvars[0].aval.dtype == jnp.bool_:
        parts = [_necessary(x, static, defs, shape, depth + 1) for x in e.invars]
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        out = parts[0]
        for p in parts[1:]:
            out = out & p
        return out
    return None


def _unpick(store, flat, R: int, G: int):
    """A gated block's masked fast-store ``(tiles, mask)`` of the programs ``flat`` that
    ran it -> ``[R, G, *tile]``, an all-false mask for the programs that did not."""
    value, m = store  # a store nested in a block is guarded: always a tile and its mask
    full_v = jnp.zeros((R * G, *value.shape[1:]), value.dtype).at[flat].set(value)
    full_m = jnp.zeros((R * G, *m.shape[1:]), bool).at[flat].set(m)
    return full_v.reshape(R, G, *value.shape[1:]), full_m.reshape(R, G, *m.shape[1:])


def _uses(eqns) -> set:
    return {v for e in eqns for v in e.invars if not hasattr(v, "val")}


def run_segments(plan, ph, gates, batched: dict, known: dict, alive, fast: dict, snap, poison):
    """Run a phase cut at its gated blocks.

    ``batched``: vars from earlier phases with their ``[R, G, ...]`` values; ``known``:
    those known while tracing; ``fast``: ``id(eqn) -> (tiles, written tiles)`` of the
    phase's fast loads.  Returns ``(env_out values by var, known env_out values by var,
    alive, logs, records, fast-store values by id(eqn))``.
    """
    R, G = plan.R, plan.G
    consts = dict(zip(plan.closed.jaxpr.constvars, plan.closed.consts))
    segs: list[tuple[list, np.ndarray | None]] = []
    cur: list = []
    for i, e in enumerate(ph.eqns):
        if i in gates:
            if cur:
                segs.append((cur, None))
            segs.append(([e], gates[i]))
            cur = []
        else:
            cur.append(e)
    if cur:
        segs.append((cur, None))
    batched = dict(batched)
    known = dict(known)
    clock = jnp.zeros((R, G), jnp.int32)
    logs: list = []
    flags: list = []
    stores: dict = {}
    for si, (eqns, gate) in enumerate(segs):
        later = set(ph.env_out)
        for eqns2, _ in segs[si + 1 :]:
            later |= _uses(eqns2)
        used = _uses(eqns)
        ins = [v for v in batched if v in used]
        # fast accesses of the segment, also nested ones (see _nested); a fast store has
        # one site, so it lies in one segment
        sites = [id(k) for e in eqns for k, _ in kernel_eqns_of(e)]
        seg_fast = {k: fast[k] for k in sites if k in fast}
        fkeys = sorted(seg_fast)
        skeys = sorted(k for k in sites if k in ph.fast_store)
        defined = [v for e in eqns for v in e.outvars if v in later]
        known_out: dict = {}
        dyn_out: list = []

        def seg(
            rank,
            pid,
            in_vals,
            alive_p,
            clock_p,
            fast_vals,
            eqns=eqns,
            ins=ins,
            fkeys=fkeys,
            skeys=skeys,
            defined=defined,
            known_out=known_out,
            dyn_out=dyn_out,
            later=later,
        ):
            ctx = Ctx(plan, ph, rank, pid, alive_p, snap, dict(zip(fkeys, fast_vals)))
            ctx.poison = poison
            ctx.clock = clock_p
            ctx.start_acc()
            local = dict(consts)
            local.update(known)
            local.update(zip(ins, in_vals))
            run_eqns(eqns, local, ctx, set(later))
            known_out.clear()
            dyn_out.clear()
            for v in defined:
                if isinstance(local[v], jax.core.Tracer):
                    dyn_out.append(v)
                else:
                    known_out[v] = local[v]
            outs = [local[v] for v in dyn_out]
            return (
                outs,
                ctx.alive,
                ctx.clock,
                ctx.logs,
                ctx.flags,
                [ctx.store_out(k) for k in skeys],
            )

        in_vals = [batched[v] for v in ins]
        fvals = [seg_fast[k] for k in fkeys]
        if gate is None:
            progs = jax.vmap(seg, in_axes=(None, 0, 0, 0, 0, 0))
            f = jax.vmap(progs, in_axes=(0, None, 0, 0, 0, 0), axis_name=RANK_AXIS)
            ranks = jnp.arange(R, dtype=jnp.int32)
            pids = jnp.arange(G, dtype=jnp.int32)
            outs, alive, clock, lg, fl, st = f(ranks, pids, in_vals, alive, clock, fvals)
            batched.update(zip(dyn_out, outs))
            known.update(known_out)
            stores.update(zip(skeys, st))
        else:
            idx = np.nonzero(gate)[0]
            if idx.size == 0:  # no program enters the block: its fast stores write nothing
                for k in skeys:
                    blank = jnp.zeros((R, G, *ph.fast_store[k][1].tile), bool)
                    stores[k] = (blank, blank)
                continue
            flat = jnp.asarray(idx, jnp.int32)

            def pick(x, flat=flat):
                return x.reshape((R * G, *x.shape[2:]))[flat]

            ranks = jnp.asarray(idx // G, jnp.int32)
            pids = jnp.asarray(idx % G, jnp.int32)
            fvals = [tuple(None if x is None else pick(x) for x in fv) for fv in fvals]
            outs, _alive, clk, lg, fl, st = jax.vmap(seg)(
                ranks, pids, [pick(x) for x in in_vals], pick(alive), pick(clock), fvals
            )
            clock = clock.reshape(-1).at[flat].set(clk).reshape(R, G)
            # the block's fast stores (nested in it, so masked: a tile and its mask) of the
            # programs that ran it; the others did not enter the block: nothing written
            stores.update((k, _unpick(v, flat, R, G)) for k, v in zip(skeys, st))
        logs += lg
        flags += fl
    return batched, known, alive, logs, flags, stores
