"""Run a kernel's tiled schedule: phases in order, each vmapped over ranks and programs.

``execute(kernel, sizes, inputs)`` is a pure JAX function of the input
arrays (jit-compiled once per kernel and sizes): outputs and :class:`Flags`.
Memory semantics are strict (see :mod:`._memory`): buffers start poisoned,
writes become visible to other programs at the next grid barrier, two
writers of one element in a phase are a race, out-of-bounds accesses are
flagged rather than clamped.

With ranks, tensors are global (one memory, indexed by rank like the specs
do) and ranks are an outer batch axis over the programs: a named ``vmap``
axis by default, or real devices through ``shard_map`` (``devices=``), in
which case each device runs its rank's programs and ``sendrecv`` becomes a
collective between devices.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from ._flags import Flags, Info, Record, counts_only, fold_records
from ._gate import phase_gates, run_segments
from ._interp import RANK_AXIS, Ctx, run_eqns
from ._jaxpr import NumericUnsupported
from ._memory import (
    _BIG,
    ReadEntry,
    Writers,
    _element_record,
    apply_logs,
    end_pads,
    first_false_record,
    merge_private,
    pad,
    pad_end,
    poison_value,
    read_write_races,
    unpad,
)
from ._plan import Plan, get_plan, loc_of, np_dtype

__all__ = ["execute", "executor"]


def executor(
    kernel,
    sizes: Mapping[str, int],
    *,
    devices: Sequence | None = None,
    jit: bool = True,
    poison: str = "nan",
    detail: bool = True,
):
    """``f(inputs) -> (outputs, flags)`` for ``kernel`` at ``sizes``; ``inputs`` by name or in order.

    ``devices``: run the ranks of a ranked kernel on these devices (one rank
    per device, through ``shard_map``) instead of as a vmapped axis.
    ``poison``: what unwritten memory and values received from no one hold —
    ``"nan"`` (floats NaN, ints their minimum: shows in the values) or
    ``"zero"`` (for gradient runs: a value computed from garbage and then
    masked by ``where`` has a NaN-free gradient).  The flags are the same.
    ``detail=False``: the flags carry exact counts only (:func:`~._flags.counts_only`):
    a smaller program to compile; execute again with details to word a finding.
    """
    if poison not in ("nan", "zero"):
        raise ValueError(f"poison must be 'nan' or 'zero', not {poison!r}")
    plan = get_plan(kernel, dict(sizes))
    mesh = None
    if devices is not None:
        if not plan.has_ranks:
            raise NumericUnsupported("devices= needs a kernel declared with ranks", kernel.location)
        devs = list(devices)
        if len(devs) < plan.R:
            raise NumericUnsupported(
                f"{plan.R} ranks need {plan.R} devices, got {len(devs)}", kernel.location
            )
        mesh = Mesh(np.array(devs[: plan.R]), (RANK_AXIS,))
    key = (
        "jit" if jit else "eager",
        poison,
        detail,
        None if mesh is None else tuple(d.id for d in mesh.devices.flat),
    )
    cache = plan.__dict__.setdefault("_executors", {})
    if key in cache:
        return cache[key]

    def run(inputs):
        with counts_only(not detail):  # the records are made while this traces
            outs, flags = _run(plan, _named(kernel, inputs), mesh, poison)
        return outs, Flags(flags.records, flags.meta, detail)

    fn = jax.jit(run) if jit else run
    cache[key] = fn
    return fn


def compile_options(devices: Sequence | None = None) -> dict | None:
    """XLA options for the executor's compilation: the cheapest that compiles exactly.

    The numeric check is compile-bound: every size point compiles the executor
    (thousands of fused operations) and then runs it once.

    - On a CPU, ``xla_backend_optimization_level=0`` (LLVM's cheapest level) compiles it
      in about three quarters of the time and runs it two or three times slower, well
      below a second at the check's sizes.
    - On a GPU, XLA's autotuners (GEMM algorithms, Triton fusion emitters) time
      candidate kernels on the device while compiling; ``xla_gpu_autotune_level=0`` and
      ``xla_gpu_experimental_enable_fusion_autotuner=False`` take XLA's default choice
      instead.  Runs are not timed by the check, only compared.

    Integer arithmetic (indices, masks, flags) is exact either way; float results may
    differ in the last bits (reduction order, GEMM algorithm), far inside the
    tolerances.  ``benchmarks/numeric_production.py`` times plain ``jit`` with XLA's
    defaults; ``TILEPROOF_XLA_OPT=1`` keeps the defaults in the check too.  JAX takes
    them at a top-level compilation only (:func:`run_compiled`), not on a ``jit`` that
    others may nest."""
    if os.environ.get("TILEPROOF_XLA_OPT") == "1":
        return None
    devs = list(devices) if devices is not None else jax.devices()[:1]
    if not devs:
        return None
    platforms = {d.platform for d in devs}
    if platforms == {"cpu"}:
        return {"xla_backend_optimization_level": 0}
    if platforms == {"gpu"} or platforms <= {"cuda", "rocm", "gpu"}:
        return dict(_GPU_OPTIONS)
    return None


# options an older or newer XLA may not know: one it rejects is dropped (and remembered)
_GPU_OPTIONS: dict = {
    "xla_gpu_autotune_level": 0,
    "xla_gpu_experimental_enable_fusion_autotuner": False,
}


def run_compiled(fn, *args, devices: Sequence | None = None):
    """``fn(*args)`` for a jitted ``fn`` called at the top level, compiled with
    :func:`compile_options` (one call per compilation: the numeric check runs each
    executor once per size point).  An option the installed XLA does not know is
    dropped, never a failure of the check."""
    if compile_options(devices) is None or not hasattr(fn, "lower"):
        return fn(*args)
    return compile_lowered(fn.lower(*args), devices)(*args)


def compile_lowered(lowered, devices: Sequence | None = None):
    """``lowered.compile`` with :func:`compile_options` (a bucket's executable too,
    :mod:`._bucket`); an option the installed XLA rejects is dropped and remembered."""
    opts = compile_options(devices)
    if opts is None:
        return lowered.compile()
    while opts:
        try:
            compiled = lowered.compile(opts)
            break
        except Exception as e:  # only an option the installed XLA rejects is retried
            bad = [k for k in opts if k in str(e)]
            if not bad:
                raise
            for k in bad:
                opts.pop(k)
                _GPU_OPTIONS.pop(k, None)
    else:
        compiled = lowered.compile()
    return compiled


def execute(
    kernel,
    sizes: Mapping[str, int],
    inputs,
    *,
    devices: Sequence | None = None,
    poison: str = "nan",
):
    """Execute ``kernel`` at ``sizes`` on ``inputs``: ``(outputs dict, Flags)`` (see :func:`executor`)."""
    return executor(kernel, sizes, devices=devices, poison=poison)(_named(kernel, inputs))


def _named(kernel, inputs) -> dict:
    names = kernel.inputs
    if isinstance(inputs, Mapping):
        extra = set(inputs) - set(names)
        missing = [n for n in names if n not in inputs]
        if extra or missing:
            raise NumericUnsupported(
                f"inputs of {kernel.name} are {', '.join(names)}; "
                + (
                    f"missing {', '.join(missing)}"
                    if missing
                    else f"unknown {', '.join(sorted(extra))}"
                ),
                kernel.location,
            )
        return {n: inputs[n] for n in names}
    inputs = list(inputs)
    if len(inputs) != len(names):
        raise NumericUnsupported(
            f"{kernel.name} takes {len(names)} inputs ({', '.join(names)}), got {len(inputs)}",
            kernel.location,
        )
    return dict(zip(names, inputs))


# ----------------------------------------------------------------------------- the run


def _run(plan: Plan, inputs: dict, mesh, poison: str = "nan", dyn=None):
    """One execution: ``dyn`` (a bucketed run, :mod:`._bucket`) holds the real sizes as data
    when ``plan`` is a bucket's (its shapes, grid and trip bounds the largest of its points)."""
    k = plan.kernel
    if dyn is not None and (
        plan.inside or any(ph.fast_load or ph.fast_store or ph.owned for ph in plan.phases)
    ):
        # fast paths are reshapes cut at one point's concrete sizes, owned views and static
        # in-bounds accesses decided at them (a bucket's plan has none)
        raise NumericUnsupported("a bucketed run with fast paths", k.location)
    plan.check_private_limit()
    state = {}
    for name, decl in k.tensors.items():
        shape, dt = plan.shapes[name], np_dtype(decl.dtype)
        if decl.role == "input":
            x = jnp.asarray(inputs[name])
            if tuple(x.shape) != shape:
                raise NumericUnsupported(
                    f"input {name} has shape {tuple(x.shape)}, the spec says "
                    f"{shape} at sizes {plan.sizes}",
                    decl.where,
                )
            state[name] = (x.astype(dt), None)
        else:
            fill = poison_value(dt) if poison == "nan" else jnp.zeros((), dt)
            state[name] = (jnp.full(shape, fill, dt), jnp.zeros(shape, bool))
    env: dict = {}
    # a bucket's padding programs (and ranks) are dead from the start: they run nothing
    alive = jnp.ones((plan.R, plan.G), bool) if dyn is None else dyn.launch_mask()
    records: list[Record] = []
    writers = Writers(plan.G, plan.lanes_max)
    for ph in plan.phases:
        state, env, alive, recs = _phase(plan, ph, state, env, alive, mesh, writers, poison, dyn)
        records += recs
    for name in k.outputs:
        _, w = state[name]
        if w is not None:
            shape = plan.shapes[name]
            unwritten = ~w if dyn is None else ~w & dyn.region(name)
            records.append(
                _element_record(
                    Info("unwritten", name, None, len(shape)), unwritten, lambda _ix: [-1] * 6
                )
            )
    meta = (
        plan.grid_names,
        plan.grid,
        plan.has_ranks,
        tuple((n, s) for n, s in plan.shapes.items()),
    )
    return {n: state[n][0] for n in k.outputs}, Flags(records, meta)


def _phase(plan: Plan, ph, state, env, alive, mesh, writers: Writers, poison: str, dyn=None):
    loaded = set()
    for e in ph.eqns:
        from ._plan import kernel_eqns_of

        for ke, _ in kernel_eqns_of(e):
            if ke.primitive.name == "tp_load" and id(ke) not in ph.fast_load:
                loaded.add(ke.params["tensor"])
    snap = {}  # loads read the tensors themselves (end-padded only where a window is wider)
    for t in sorted(loaded - ph.private):
        d, w = state[t]
        ends = end_pads(plan.shapes[t], plan.pads[t])
        snap[t] = (pad_end(d, ends), None if w is None else pad_end(w, ends))
    priv0 = {}  # private views: padded copies (small: PRIVATE_LIMIT), or owned slices
    priv_axes = {}
    for t in sorted(ph.private):
        if t in ph.owned:  # each program's own slice (see Plan._owned), batched over programs
            d, w = (None if x is None else _slices(x, plan, ph.owned[t], t) for x in state[t])
            priv_axes[t] = 0
        else:
            d, w = state[t]
            pads = plan.pads[t]
            d, w = pad(d, pads), None if w is None else pad(w, pads)
            priv_axes[t] = None
        wp = jnp.ones(d.shape, bool) if w is None else w
        # an owned view needs no dirty mask: its slice is merged as it is
        dirty = jnp.zeros((plan.G, 0) if t in ph.owned else d.shape, bool)
        priv0[t] = (d, wp, dirty)
    fast_keys = sorted(ph.fast_load)
    fast_vals = []
    for eid in fast_keys:
        til = ph.fast_load[eid]
        t = _tensor_of(ph, eid)
        d, w = state[t]
        fast_vals.append((til.tiles(d), None if w is None else til.tiles(w)))
    store_keys = sorted(ph.fast_store)
    # values from earlier phases: per-program arrays, or scalars known while tracing
    # (sizes and what is computed from them: they stay known, see _interp._foldable)
    known_in = {v: env[plan.var_id[v]].value for v in ph.env_in if _is_known(env[plan.var_id[v]])}
    dyn_in = [v for v in ph.env_in if v not in known_in]
    env_in = [env[plan.var_id[v]] for v in dyn_in]
    known_out: dict = {}
    dyn_out: list = []

    def prog(rank, pid, env_vals, alive_p, fast, snap_vals, priv_vals):
        ctx = Ctx(plan, ph, rank, pid, alive_p, snap_vals, dict(zip(fast_keys, fast)), dyn)
        ctx.poison = poison
        ctx.priv = dict(priv_vals)
        ctx.start_acc()
        consts = dict(zip(plan.closed.jaxpr.constvars, plan.closed.consts))
        local = dict(consts)
        local.update(zip(dyn_in, env_vals))
        local.update(known_in)
        live = set(ph.env_out)
        run_eqns(ph.eqns, local, ctx, live)
        known_out.clear()
        dyn_out.clear()
        for v in ph.env_out:
            if isinstance(local[v], jax.core.Tracer):
                dyn_out.append(v)
            else:
                known_out[v] = _Known(local[v])
        outs = [local[v] for v in dyn_out]
        stores = [ctx.store_out(k) for k in store_keys]
        return outs, ctx.alive, ctx.logs, ctx.flags, ctx.priv, stores

    # a bucketed run (``dyn``) has no gates: which programs may enter a block is decided
    # from static values at concrete sizes, and a bucket's sizes are data (its plan's own
    # sizes are one point's, its grid the largest: a gate cut from them could skip a
    # program that a smaller point's launch numbers differently and that enters the block)
    gates = (
        {}
        if ph.private or mesh is not None or dyn is not None or os.environ.get("TILEPROOF_NO_GATES")
        else phase_gates(plan, ph)
    )
    progs = jax.vmap(prog, in_axes=(None, 0, 0, 0, 0, None, priv_axes))
    ranks = jnp.arange(plan.R, dtype=jnp.int32)
    pids = jnp.arange(plan.G, dtype=jnp.int32)
    args = (ranks, pids, env_in, alive, fast_vals, snap, priv0)
    if gates:  # blocks few programs enter run on those only (see _gate)
        got, kn, alive_out, logs, flags, st = run_segments(
            plan,
            ph,
            gates,
            dict(zip(dyn_in, env_in)),
            known_in,
            alive,
            dict(zip(fast_keys, fast_vals)),
            snap,
            poison,
        )
        dyn_out[:] = [v for v in ph.env_out if v not in kn]
        known_out.update((v, _Known(kn[v])) for v in ph.env_out if v in kn)
        res = ([got[v] for v in dyn_out], alive_out, logs, flags, {}, [st[k] for k in store_keys])
    elif mesh is None:
        f = jax.vmap(progs, in_axes=(0, None, 0, 0, 0, None, None), axis_name=RANK_AXIS)
        res = f(*args)
    else:
        R, Rep = PartitionSpec(RANK_AXIS), PartitionSpec()

        def local(*a):
            return jax.vmap(progs, in_axes=(0, None, 0, 0, 0, None, None))(*a)

        kw = {}
        import inspect

        params = inspect.signature(jax.shard_map).parameters
        if "check_vma" in params:
            kw["check_vma"] = False
        elif "check_rep" in params:
            kw["check_rep"] = False
        f = jax.shard_map(local, mesh=mesh, in_specs=(R, Rep, R, R, R, Rep, Rep), out_specs=R, **kw)
        res = f(*args)
    outs, alive_out, logs, flags, priv, stores = res
    env = dict(env)
    env.update(zip([plan.var_id[v] for v in dyn_out], outs))
    env.update((plan.var_id[v], k) for v, k in known_out.items())
    records = fold_records(flags)
    state = dict(state)
    # the writes of the phase
    by_tensor: dict[str, list] = {}
    reads: dict[str, list] = {}
    for entry in logs:
        (reads if isinstance(entry, ReadEntry) else by_tensor).setdefault(entry.meta[0], []).append(
            entry
        )
    wmaps = {}  # tensor -> per element (first, last) writing program of this phase
    for k, value in zip(store_keys, stores):
        t, til = ph.fast_store[k]
        d, w = state[t]
        m = None
        if isinstance(value, tuple):  # masked: each tile placed where its mask holds
            value, m = value
            put = til.place(m, False)
            d = jnp.where(put, til.place(value.astype(d.dtype), jnp.zeros((), d.dtype)), d)
            state[t] = (d, None if w is None else w | put)
        else:
            state[t] = (til.untile(value.astype(d.dtype)), None)
        if t in reads:
            who = jnp.broadcast_to(
                jnp.arange(plan.R * plan.G, dtype=jnp.int32).reshape(
                    (plan.R, plan.G) + (1,) * len(til.tile)
                ),
                value.shape,
            )
            if m is None:
                wmaps[t] = (til.untile(who), til.untile(who))
            else:
                wmaps[t] = (
                    til.place(jnp.where(m, who, _BIG), _BIG),
                    til.place(jnp.where(m, who, -1), -1),
                )
    for t in sorted(ph.private):
        d, w = state[t]
        pads = plan.pads[t]
        if t in ph.owned:  # the programs' slices are the tensor: nobody else wrote them
            k = ph.owned[t]
            vd, vw = (unpad(v, pads[k:], lead=2).reshape(plan.shapes[t]) for v in priv[t][:2])
            state[t] = (vd, None if w is None else vw)
            continue
        views = tuple(unpad(v, pads, lead=2) for v in priv[t])
        d, w, rec, wmaps[t] = merge_private(d, w, views, plan.shapes[t], writers, t)
        state[t] = (d, w)
        records.append(rec)
    for t, entries in sorted(by_tensor.items()):
        d, w = state[t]
        d, w, rec, wmaps[t] = apply_logs(
            d, w, entries, plan.shapes[t], t in ph.ordered, writers, t, need_wmap=t in reads
        )
        state[t] = (d, w)
        records.append(rec)
    for t, entries in sorted(reads.items()):
        if t in wmaps:
            records += read_write_races(entries, wmaps[t], plan.shapes[t], plan.G, plan.lanes_max)
    if ph.barrier is not None and ph.barrier.params["scope"] == "grid":  # a launch has no waiters
        waited = alive_out if dyn is None else alive_out | ~dyn.launch_mask()
        records.append(
            first_false_record(Info("barrier", None, loc_of(ph.barrier)), waited, (plan.R, plan.G))
        )
    return state, env, alive_out, records


class _Known:
    """A value one phase hands the next that is the same for every program and known
    while tracing (not a per-program array)."""

    def __init__(self, value):
        self.value = value


def _is_known(x) -> bool:
    return isinstance(x, _Known)


def _slices(x, plan: Plan, k: int, t: str):
    """An owned tensor as ``[programs, *rest]``, the rest padded like its windows."""
    rest = plan.shapes[t][k:]
    x = x.reshape((plan.G, *rest))
    pads = plan.pads[t][k:]
    if not any(pads):
        return x
    return jnp.pad(x, [(0, 0), *((p, p) for p in pads)])


def _tensor_of(ph, eid) -> str:
    from ._plan import kernel_eqns_of

    for e in ph.eqns:
        for k, _ in kernel_eqns_of(e):  # a fast load may be nested (see _nested)
            if id(k) == eid:
                return k.params["tensor"]
    raise KeyError(eid)  # pragma: no cover
