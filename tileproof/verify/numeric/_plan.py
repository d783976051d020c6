"""Everything decided before the numbers run: phases, fast paths, loop bounds, memory modes.

A :class:`Plan` is built once per (kernel, concrete sizes, ranks mode) from
the traced body — the same trace the lowering reads — and is then used by
every execution:

* **Phases.**  Top-level ``barrier("grid")`` and ``barrier("launch")`` calls split
  the body (a launch boundary orders memory like a grid barrier; no program waits).
* **Memory mode per phase and tensor.**  A tensor that a program reads back
  after writing it in the same phase gets a *private* per-program view
  (its own writes visible to it, others' not until the barrier); every other
  written tensor gets a *write log* applied after the phase.
* **Fast paths.**  Top-level accesses whose starts are data-independent and
  form a disjoint affine tiling (:mod:`._tiling`) become reshapes; masked ones
  too (their tiles may overhang the tensor: the mask and bounds are applied to
  the reshaped tiles, with the same flags as the general path).
* **Trip bounds.**  A ``while`` loop (``fori_loop`` with traced bounds) runs
  as a ``scan`` of a static length: the largest trip count over the launch
  and the declared value ranges, bounded soundly by interval arithmetic on
  the lowered model's loop bounds at the concrete sizes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from ... import shapes
from ...lowering import lower, trace
from ...model import Lanes as MLanes
from ...model import Loop as MLoop
from ...spec._errors import UNKNOWN, Location
from ...spec._primitives import size_value
from ._jaxpr import (
    NumericUnsupported,
    bind_eqn,
    eqn_has_kernel_ops,
    kernel_eqns,
    lanes_regions,
    raw_tensors,
    sub_jaxprs,
    unwrap,
)
from ._nested import descents, nested_sites, shared_jaxprs
from ._tiling import fit_tiling

__all__ = ["Phase", "Plan", "cost_hint", "get_plan", "np_dtype"]

PHASE_SCOPES = ("grid", "launch")  # barriers that end a phase: writes visible after them
PRIVATE_LIMIT = 1 << 27  # elements in all per-program private views of one tensor
INDEX_MAX = (1 << 31) - 1  # largest extent (per dimension) and writer id the executor indexes


def np_dtype(name: str):
    return jnp.bfloat16 if name == "bfloat16" else np.dtype(name)


def loc_of(eqn) -> Location:
    site = eqn.params.get("site")
    if isinstance(site, Location):
        return site
    try:
        from ...lowering._lower import _loc_of

        return _loc_of(eqn)
    except Exception:  # location is best effort
        return UNKNOWN


@dataclass
class Phase:
    index: int
    eqns: list
    barrier: object | None  # the tp_barrier eqn that ends it
    env_in: list = field(default_factory=list)  # vars from earlier phases it reads
    env_out: list = field(default_factory=list)  # vars it defines that later phases read
    private: set = field(default_factory=set)
    ordered: set = field(default_factory=set)  # tensors a program may write twice here
    written: set = field(default_factory=set)
    rw: set = field(default_factory=set)  # tensors both read and written in the phase
    fast_load: dict = field(default_factory=dict)  # id(eqn) -> Tiling
    fast_store: dict = field(default_factory=dict)  # id(eqn) -> (tensor, Tiling)
    guarded: set = field(default_factory=set)  # fast stores under a predicate (nested)
    owned: dict = field(default_factory=dict)  # private tensor -> leading dims = program id
    accumulate: dict = field(default_factory=dict)  # fast store in a loop -> (tile, dtype)


class _Traced:
    def __init__(self, kernel):
        self.kernel = kernel
        self.closed = trace(kernel)
        self._model = None
        self._model_error = None

    @property
    def model(self):
        if self._model is None and self._model_error is None:
            try:
                self._model = lower(self.kernel)
            except Exception as e:  # the executor may not need the model
                self._model_error = e
        return self._model


_TRACES: dict[int, _Traced] = {}
_PLANS: dict[tuple, Plan] = {}


def traced(kernel) -> _Traced:
    t = _TRACES.get(id(kernel))
    if t is None or t.kernel is not kernel:
        t = _Traced(kernel)
        _TRACES[id(kernel)] = t
    return t


def cost_hint(kernel) -> int:
    """How much a numeric check of ``kernel`` costs, relatively: the equations of its traced
    body, sub-jaxprs included (0 if it does not trace).

    The executor's program, and so its compilation at every size point (most of a cold
    ``tileproof check``), grows with the body: on the catalog this orders the kernels as
    their measured numeric times do, which lets a process pool start the longest first."""
    try:
        closed = traced(kernel).closed
    except Exception:  # a body that does not trace fails fast
        return 0

    def count(j) -> int:
        return sum(1 + sum(count(s) for s in sub_jaxprs(e)) for e in unwrap(j).eqns)

    return count(closed)


def get_plan(kernel, sizes: dict[str, int], fast: bool = True) -> Plan:
    """The plan of ``kernel`` at ``sizes`` (cached); ``fast=False``: its fast paths may be
    left undecided (shapes only, say: deciding them compiles a small function), and are
    decided when a later call asks for them."""
    key = (id(kernel), tuple(sorted(sizes.items())))
    p = _PLANS.get(key)
    if p is None or p.kernel is not kernel:
        p = Plan(kernel, sizes, fast=False)
        _PLANS[key] = p
    if fast:
        p.ensure_fast()
    return p


class Plan:
    """Static decisions for executing ``kernel`` at ``sizes`` (see the module docstring)."""

    def __init__(self, kernel, sizes: dict[str, int], fast: bool = True):
        """``fast=False``: no fast paths (reshapes cut at these sizes), as a bucket's plan
        needs (:mod:`._bucket`: the accesses of every point it runs go the general way)."""
        missing = [s for s in kernel.sizes if s not in sizes]
        if missing:
            raise NumericUnsupported(f"sizes not given: {', '.join(missing)}", kernel.location)
        self.kernel = kernel
        self.sizes = {k: int(sizes[k]) for k in kernel.sizes}
        t = traced(kernel)
        self.traced = t
        self.closed = t.closed
        env = self.sizes
        self.shapes = {
            n: tuple(int(d.evaluate(env)) for d in decl.shape) for n, decl in kernel.tensors.items()
        }
        for n, s in self.shapes.items():
            if any(x < 0 for x in s):
                raise NumericUnsupported(
                    f"tensor {n} has a negative extent {s} at {self.sizes}", kernel.location
                )
            if any(x > INDEX_MAX for x in s):  # coordinates are int32 per dimension
                raise NumericUnsupported(
                    f"tensor {n} has an extent beyond 2**31 - 1 ({s}) at "
                    f"{self.sizes}; the executor indexes each dimension in 32 bits",
                    kernel.location,
                )
        self.grid = tuple(int(g.extent.evaluate(env)) for g in kernel.grid)
        self.grid_names = tuple(g.name for g in kernel.grid)
        self.G = int(np.prod(self.grid, dtype=np.int64)) if self.grid else 1
        self.has_ranks = kernel.ranks is not None
        self.R = int(kernel.ranks.size.evaluate(env)) if self.has_ranks else 1
        if self.R < 1:
            raise NumericUnsupported(f"rank count {self.R} < 1 at {self.sizes}", kernel.location)
        self.launch = (self.R, *self.grid)
        self.tracked = {n for n, d in kernel.tensors.items() if d.role != "input"}
        self.lanes_max = max(1, _lanes_product(unwrap(self.closed).eqns))
        if self.R * self.G * self.lanes_max > INDEX_MAX:  # writer keys are int32
            raise NumericUnsupported(
                f"{self.R} ranks x {self.G} programs x {self.lanes_max} lanes "
                f"at {self.sizes} is beyond the executor's 32-bit writer ids",
                kernel.location,
            )
        self.inside: set[int] = set()  # accesses whose tile is inside the tensor, always
        self.pads = self._pads(fast=False)  # every window padded: sound at any size
        self.trip: dict[int, int] = {}
        self.phases = self._phases()
        self._static = None
        self._fast_decided = False
        self._limit_checked = False
        if fast:
            self.ensure_fast()

    def ensure_fast(self) -> None:
        """Decide the fast paths (once), with what rests on these sizes alone: owned
        private views (:meth:`_owned`) and accesses whose static starts keep them inside
        their tensor (no bounds flag, no pad: :meth:`_pads`).  A bucket's plan
        (``fast=False``) runs other sizes too: none of it there."""
        if not self._fast_decided:
            self._fast_decided = True
            self._fast_paths()
            self._owned()
            self.pads = self._pads(fast=True)
            self.check_private_limit()

    # -- tensors
    def _pads(self, fast: bool = False) -> dict[str, tuple[int, ...]]:
        """Per tensor dimension, the padding its windows are cut from (both sides).

        A window is a ``dynamic_slice``, which clamps a start that overruns; padding by the
        tile extent keeps an overrunning tile in place, so its in-bounds elements hold the
        right values (out-of-bounds ones are flagged or masked off, and read 0).  A point
        index needs none: outside the tensor it puts *every* lane of the tile outside --
        except on a dimension of extent 0, where even a one-element window cannot be cut
        (the access is flagged out of bounds; the pad only lets the window exist).
        An access whose start on a dimension is a static value (:meth:`static_values`)
        that keeps the tile inside the tensor for every program needs no pad there: a
        per-program TPU buffer padded by its own extent on every side would be 3**rank
        times its size.
        """
        pads = {n: [0] * len(s) for n, s in self.shapes.items()}
        no_fast = not fast or os.environ.get("TILEPROOF_NO_FAST_PATH")
        static = None if no_fast else self.static_values()
        for e, _ in kernel_eqns(self.closed):
            if e.primitive.name in ("tp_load", "tp_store"):
                t = e.params["tensor"]
                p = pads[t]
                ops = e.invars[1:] if e.primitive.name == "tp_store" else e.invars
                inside = True
                for k, (kind, size) in enumerate(e.params["dims"]):
                    # (not for a bucket's plan: its extents differ between its points)
                    ok = fast and _inside(
                        ops[k], 1 if kind == "point" else size, self.shapes[t][k], static
                    )
                    inside &= ok
                    if kind != "point":
                        if not ok:
                            p[k] = max(p[k], size)
                    elif self.shapes[t][k] == 0:
                        p[k] = max(p[k], 1)
                if inside and fast:
                    self.inside.add(id(e))
        return {n: tuple(p) for n, p in pads.items()}

    # -- phases
    def _phases(self) -> list[Phase]:
        eqns = list(unwrap(self.closed).eqns)
        phases, cur = [], []
        for e in eqns:
            if e.primitive.name == "tp_barrier" and e.params["scope"] in PHASE_SCOPES:
                phases.append(Phase(len(phases), cur, e))
                cur = []
            else:
                cur.append(e)
        phases.append(Phase(len(phases), cur, None))
        for ph in phases:
            for e in ph.eqns:
                for s in sub_jaxprs(e):
                    _no_nested_grid_barrier(s)
        defined: dict = {}
        self.var_id: dict = {}  # vars that cross a barrier -> small ints (pytree keys)
        for ph in phases:
            for e in ph.eqns:
                for v in e.invars:
                    if not hasattr(v, "val") and v in defined and defined[v] != ph.index:
                        src = phases[defined[v]]
                        if v not in src.env_out:
                            src.env_out.append(v)
                        if v not in ph.env_in:
                            ph.env_in.append(v)
                for v in e.outvars:
                    defined[v] = ph.index
            # memory modes
            ph.private = raw_tensors(ph.eqns)
            for v in ph.env_in:
                self.var_id.setdefault(v, len(self.var_id))
            sites: dict[str, int] = {}
            looped: set[str] = set()
            for e in ph.eqns:
                for k, in_loop in kernel_eqns_of(e):
                    if k.primitive.name == "tp_store":
                        t = k.params["tensor"]
                        sites[t] = sites.get(t, 0) + 1
                        if in_loop:
                            looped.add(t)
            ph.written = set(sites)
            loaded = {
                k.params["tensor"]
                for e in ph.eqns
                for k, _ in kernel_eqns_of(e)
                if k.primitive.name == "tp_load"
            }
            ph.rw = loaded & ph.written  # reads to check against other programs' writes
            ph.ordered = {t for t, n in sites.items() if n > 1} | looped
        return phases

    def check_private_limit(self) -> None:
        """Refuse private views beyond :data:`PRIVATE_LIMIT` elements (an owned tensor's
        views are its slices: the tensor's own size).  Checked once, when the fast paths
        are decided or before a run (a bucket's plan, :func:`~._execute._run`)."""
        if self._limit_checked:
            return
        self._limit_checked = True
        for ph in self.phases:
            for t in ph.private:
                n = int(np.prod(self.shapes[t], dtype=np.int64))
                if t in ph.owned:
                    continue
                if n * self.G * self.R * self.lanes_max > PRIVATE_LIMIT:
                    raise NumericUnsupported(
                        f"tensor {t} is read back by the programs that write it in one phase; "
                        f"that needs a private view per program ({self.R * self.G} x {n} elements), "
                        f"over the executor's limit of {PRIVATE_LIMIT} at sizes {self.sizes}",
                        self.kernel.location,
                        "Run with smaller sizes.",
                    )

    # -- static (data-independent) integers, per (rank, program)
    def static_values(self) -> dict:
        """Concrete ``[R, G]`` values of integer scalars that depend on no data: at the top
        level, and inside the branches, calls and single-trip loops of :mod:`._nested`
        (their variables bound to the static outer values they alias)."""
        if self._static is not None:
            return self._static
        jx = unwrap(self.closed)
        consts = dict(zip(jx.constvars, self.closed.consts))
        order: list = []  # equations, or (inner variable, outer atom) aliases, in order
        static: set = set(consts)
        shared = shared_jaxprs(jx.eqns)
        plan = self

        def scalar_int(v) -> bool:
            aval = v.aval
            return getattr(aval, "shape", None) == () and (
                jnp.issubdtype(aval.dtype, jnp.integer) or aval.dtype == jnp.bool_
            )

        def walk(eqns, top: bool) -> None:
            inside_lanes = _lanes_members(eqns)
            for i, e in enumerate(eqns):
                name = e.primitive.name
                if i in inside_lanes:
                    continue
                ok_in = all(hasattr(v, "val") or v in static for v in e.invars)
                one_int = len(e.outvars) == 1 and scalar_int(e.outvars[0])
                if name in (
                    "tp_size",
                    "tp_program_id",
                    "tp_num_programs",
                    "tp_rank_id",
                    "tp_num_ranks",
                ):
                    if name == "tp_rank_id" and not self.has_ranks:
                        continue
                    static.add(e.outvars[0])
                    order.append(e)
                elif (
                    ok_in
                    and one_int
                    and not name.startswith("tp_")
                    and not eqn_has_kernel_ops(e)
                    and not e.effects
                ):
                    static.add(e.outvars[0])
                    order.append(e)
                elif eqn_has_kernel_ops(e) and not name.startswith("tp_"):
                    for j, pairs, _once in descents(plan, e, shared):
                        for inner, outer in pairs:
                            if not scalar_int(inner):
                                continue
                            if hasattr(outer, "val"):
                                if np.ndim(outer.val) == 0:
                                    static.add(inner)
                                    order.append((inner, outer))
                            elif outer in static:
                                static.add(inner)
                                order.append((inner, outer))
                        walk(unwrap(j).eqns, False)

        walk(jx.eqns, True)

        def one(rank, pid):
            env = dict(consts)
            pids = _unflatten(pid, plan.grid)
            for e in order:
                if isinstance(e, tuple):
                    inner, outer = e
                    env[inner] = jnp.asarray(outer.val) if hasattr(outer, "val") else env[outer]
                    continue
                vals = [v.val if hasattr(v, "val") else env[v] for v in e.invars]
                name = e.primitive.name
                if name == "tp_size":
                    out = jnp.int32(size_value(e.params, plan.sizes))
                elif name == "tp_program_id":
                    out = pids[e.params["axis"]]
                elif name == "tp_num_programs":
                    out = jnp.int32(plan.grid[e.params["axis"]])
                elif name == "tp_rank_id":
                    out = rank
                elif name == "tp_num_ranks":
                    out = jnp.int32(plan.R)
                else:
                    out = bind_eqn(e, vals)[0]
                env[e.outvars[0]] = out
            return [env[_defined(e)] for e in order]

        with jax.ensure_compile_time_eval():
            vals = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(
                jnp.arange(self.R, dtype=jnp.int32), jnp.arange(self.G, dtype=jnp.int32)
            )
        self._static = {_defined(e): np.asarray(v) for e, v in zip(order, vals)}
        return self._static

    def _fast_paths(self) -> None:
        """Mark the accesses that run as reshapes (:mod:`._tiling`): at the top level of a
        phase, and nested where they run at most once per program (:mod:`._nested`); a
        nested store runs under the predicate of its branch or loop, so it is placed as a
        masked one (``Phase.guarded``)."""
        if os.environ.get("TILEPROOF_NO_FAST_PATH"):
            return
        self._exited = False
        shared = shared_jaxprs(unwrap(self.closed).eqns)
        for ph in self.phases:
            inside_lanes = _lanes_members(ph.eqns)
            stores: dict[str, list] = {}
            for e in ph.eqns:
                for k, _ in kernel_eqns_of(e):
                    if k.primitive.name == "tp_store":
                        stores.setdefault(k.params["tensor"], []).append(k)
            for i, e in enumerate(ph.eqns):
                name = e.primitive.name
                if any(k.primitive.name == "tp_exit" for k, _ in kernel_eqns_of(e)):
                    # an exit_if, also one inside a call (a jitted helper): the unmasked
                    # top-level stores after it would ignore the programs that left
                    self._exited = True
                if i in inside_lanes:
                    continue
                if name in ("tp_load", "tp_store"):
                    self._fast_site(ph, e, stores, nested=False)
                elif not name.startswith("tp_") and eqn_has_kernel_ops(e):
                    for k, once in nested_sites(self, e, shared):
                        self._fast_site(ph, k, stores, nested=True, once=once)

    def _fast_site(self, ph: Phase, e, stores: dict, nested: bool, once: bool = True) -> None:
        name = e.primitive.name
        masked = e.params["has_mask"]
        t = e.params["tensor"]
        if t in ph.private:
            return
        if name == "tp_store" and (self._exited or len(stores.get(t, ())) != 1):
            return
        ops = e.invars[1:] if name == "tp_store" else e.invars
        nd = len(e.params["dims"])
        static = self.static_values()
        cols = []
        for v in ops[:nd]:
            if hasattr(v, "val"):
                cols.append(np.full((self.R, self.G), int(v.val), dtype=np.int64))
            elif v in static:
                cols.append(np.broadcast_to(static[v], (self.R, self.G)).astype(np.int64))
            else:
                return
        starts = np.stack(cols, axis=-1) if cols else np.zeros((self.R, self.G, 0), np.int64)
        # a masked access may overhang the tensor (its masked-off lanes); a masked store
        # need not cover it, but two programs must never share a tile.  A nested store is
        # masked by its predicate: the same rules (an unmasked one's overhang is flagged
        # out of bounds and cut off when the tiles are placed)
        guarded = name == "tp_store" and (masked or nested)
        til = fit_tiling(
            starts,
            self.launch,
            e.params["dims"],
            self.shapes[t],
            exact=name == "tp_store" and not guarded,
            overhang=masked or guarded,
        )
        if til is None or (guarded and not til.disjoint):
            return
        if name == "tp_load":
            ph.fast_load[id(e)] = til
        else:
            ph.fast_store[id(e)] = (t, til)
            if nested:
                ph.guarded.add(id(e))
            if not once:  # in a loop of several trips: each iteration's write over the last
                ph.accumulate[id(e)] = (
                    tuple(n for kind, n in e.params["dims"] if kind == "ds"),
                    e.invars[0].aval.dtype,
                )

    def _owned(self) -> None:
        """Private tensors that are per-program memory: every access of the phase indexes
        the leading ``k`` dimensions (their extents' product is the program count) by
        the program's own id, as a point (the VMEM buffers and scratch of the TPU rules).

        Such a tensor's private view is the program's own slice (``Phase.owned``), not a
        copy of the whole tensor per program (programs x tensor elements: quadratic in the
        grid); no other program touches the slice, so no race is possible on it and its
        reads need no read-write check.  Decided from the concrete start operands of every
        access (static values, :mod:`._nested`); any access whose starts are not known, or
        that leaves its slice for one program, keeps the whole-tensor view."""
        if os.environ.get("TILEPROOF_NO_FAST_PATH") or self.has_ranks or self.lanes_max > 1:
            return
        for ph in self.phases:
            for t in sorted(ph.private):
                k = self._owner_dims(ph, t)
                if k is not None:
                    ph.owned[t] = k

    def _owner_dims(self, ph: Phase, t: str) -> int | None:
        """The leading dimensions that are the program id, or None (with one program, 0:
        the whole tensor is its own)."""
        if self.G == 1:
            return 0
        shape = self.shapes[t]
        k, n = 0, 1
        while k < len(shape) and n < self.G:
            n *= shape[k]
            k += 1
        if n != self.G or k == 0:
            return None
        static = self.static_values()
        pid = np.arange(self.G, dtype=np.int64)
        strides = np.cumprod((1, *shape[k - 1 : 0 : -1]))[::-1] if k > 1 else np.ones(1, np.int64)
        found = False
        for e in ph.eqns:
            for a, _ in kernel_eqns_of(e):
                if a.primitive.name not in ("tp_load", "tp_store"):
                    continue
                if a.params["tensor"] != t:
                    continue
                dims = a.params["dims"]
                ops = a.invars[1:] if a.primitive.name == "tp_store" else a.invars
                if len(dims) < k or any(kind != "point" for kind, _ in dims[:k]):
                    return None
                lin = np.zeros(self.G, np.int64)
                for j, v in enumerate(ops[:k]):
                    if hasattr(v, "val"):
                        col = np.full(self.G, int(v.val), np.int64)
                    elif v in static:
                        col = np.broadcast_to(static[v], (self.R, self.G))[0].astype(np.int64)
                    else:
                        return None
                    if (col < 0).any() or (col >= shape[j]).any():
                        return None
                    lin = lin + col * int(strides[j])
                if not np.array_equal(lin, pid):
                    return None
                found = True
        return k if found else None

    # -- loop trip bounds
    def trip_bound(self, eqn) -> int:
        key = id(eqn)
        if key not in self.trip:
            self._bound_loops()
        if key not in self.trip:
            raise NumericUnsupported(
                "cannot bound the trip count of this loop (the lowering has no model of it)",
                loc_of(eqn),
                "Write it as lax.fori_loop(lo, hi, ...) with bounds from sizes, "
                "program ids or index tensors with declared value ranges.",
            )
        t = self.trip[key]
        if t is None:
            raise NumericUnsupported(
                f"the trip count of this loop is unbounded at sizes {self.sizes}",
                loc_of(eqn),
                "Declare value ranges (values=...) on the index tensors its bounds read.",
            )
        return t

    def _bound_loops(self) -> None:
        loops = []
        _walk_loops(unwrap(self.closed), loops)
        model = self.traced.model
        nodes: list = []
        if model is not None:
            _model_loops(model.body, [], nodes)
        j = 0
        for eqn in loops:
            loc = loc_of(eqn)
            k = j
            while k < len(nodes) and nodes[k][0].loc != loc:
                k += 1
            if k == len(nodes):
                continue
            node, outer, lanes = nodes[k]
            j = k + 1
            self.trip[id(eqn)] = self._trip(model, node, outer, lanes)

    def _trip(self, model, node, outer, lanes) -> int | None:
        from ...shapes._interval import INF, interval

        box: dict = {s: (v, v) for s, v in self.sizes.items()}
        for (name, _), n in zip(model.grid, self.grid):
            box[name] = (0, max(n - 1, 0))
        if model.ranks is not None:
            box[model.ranks[0]] = (0, self.R - 1)
        for var, n in lanes:
            box[var] = (0, n - 1)
        for d in model.data.values():
            box[d.name] = _data_interval(d, self.sizes)
        for lp in outer:
            lo = interval(lp.lo, box)[0]
            hi = interval(lp.hi, box)[1]
            box[lp.var] = (lo, hi - 1)
        trip = node.hi - node.lo
        try:
            hi = interval(trip, box)[1]
        except Exception:  # an expression interval arithmetic cannot handle
            return None
        if hi in (INF, -INF) or (isinstance(hi, float) and math.isnan(hi)):
            return None
        hi = max(int(hi), 0)
        if hi > 1:
            exact = self._trip_exact(model, trip, box, outer)
            if exact is not None:
                hi = min(hi, max(exact, 0))
        return hi

    def _trip_exact(self, model, trip, box, outer) -> int | None:
        """The exact largest trip count (``shapes.bounds``, z3), or None where it is not at hand.

        Interval arithmetic forgets correlations (``min(128, n - 128*i)`` against ``i``'s
        range); the exact bound keeps loops from running mostly-masked iterations.
        """
        bounds = getattr(shapes, "bounds", None)
        if bounds is None or os.environ.get("TILEPROOF_NO_EXACT_TRIPS"):
            return None
        env = {k: shapes.as_expr(v) for k, v in self.sizes.items()}
        facts = []
        for name, (lo, hi) in box.items():
            if name in self.sizes or lo in (-math.inf, math.inf):
                continue
            facts.append(shapes.ge(shapes.sym(name), int(lo)))  # literal: declares the lower bound
            if hi not in (-math.inf, math.inf):
                facts.append(shapes.le(shapes.sym(name), int(hi)))
        for d in model.data.values():
            facts.append(d.range.subs(env))
        for lp in outer:
            v = shapes.sym(lp.var)
            facts += [shapes.ge(v, lp.lo.subs(env)), shapes.lt(v, lp.hi.subs(env))]
        expr = trip.subs(env)
        if not expr.free_symbols():
            return None  # a constant: the interval is exact already
        if not expr.free_symbols() <= {n for n in box} or any(
            not f.free_symbols() <= set(box) for f in facts
        ):
            return None
        try:
            _lo, top = bounds(expr, facts)
        except Exception:  # no z3 here, or a resource limit: keep the interval bound
            return None
        return None if top is None else int(top)


# ----------------------------------------------------------------------------- helpers


def _inside(v, size: int, extent: int, static: dict | None) -> bool:
    """Whether a tile of ``size`` at start operand ``v`` lies inside ``[0, extent)`` for
    every program (a literal, or a static value); False when the start is not known."""
    if hasattr(v, "val"):
        vals = np.asarray(v.val, np.int64)
    elif static is not None and v in static:
        vals = np.asarray(static[v], np.int64)
    else:
        return False
    return bool(np.all(vals >= 0) and np.all(vals + size <= extent))


def _defined(item):
    """The variable an item of the static order defines (an equation's output, an alias)."""
    return item[0] if isinstance(item, tuple) else item.outvars[0]


def kernel_eqns_of(e):
    if e.primitive.name.startswith("tp_"):
        yield e, False
        return
    loop = e.primitive.name in ("while", "scan")
    for s in sub_jaxprs(e):
        yield from kernel_eqns(s, loop)


def _unflatten(pid, grid):
    out, rest = [], pid
    for n in reversed(grid):
        out.append(rest % n)
        rest = rest // n
    return list(reversed(out))


def _no_nested_grid_barrier(j) -> None:
    for e in unwrap(j).eqns:
        if e.primitive.name == "tp_barrier" and e.params["scope"] in PHASE_SCOPES:
            raise NumericUnsupported(
                f"a {e.params['scope']} barrier inside a loop, branch or call: the executor runs "
                "phases split at the top level of the body only",
                loc_of(e),
            )
        for s in sub_jaxprs(e):
            _no_nested_grid_barrier(s)


def _lanes_product(eqns, outer: int = 1) -> int:
    best = outer
    regions = lanes_regions(eqns)
    depth_n = [outer]
    for i, e in enumerate(eqns):
        if i in regions:
            depth_n.append(depth_n[-1] * e.params["n"])
            best = max(best, depth_n[-1])
        elif e.primitive.name == "tp_lanes_end":
            depth_n.pop()
        for s in sub_jaxprs(e):
            best = max(best, _lanes_product(unwrap(s).eqns, depth_n[-1]))
    return best


def _lanes_members(eqns) -> set[int]:
    inside = set()
    for b, end in lanes_regions(eqns).items():
        inside.update(range(b, end + 1))
    return inside


def _walk_loops(jx, out: list) -> None:
    """Loop equations in the lowering's order (pre-order; cond's true branch first)."""
    for e in jx.eqns:
        name = e.primitive.name
        if name == "while":
            out.append(e)
            _walk_loops(unwrap(e.params["body_jaxpr"]), out)
        elif name == "scan":
            out.append(e)
            _walk_loops(unwrap(e.params["jaxpr"]), out)
        elif name == "cond":
            brs = e.params["branches"]
            order = [brs[1], brs[0]] if len(brs) == 2 else list(brs)
            for b in order:
                _walk_loops(unwrap(b), out)
        else:
            for s in sub_jaxprs(e):
                _walk_loops(unwrap(s), out)


def _model_loops(nodes, outer: list, out: list, lanes: tuple = ()) -> None:
    from ...model import Branch

    for n in nodes:
        if isinstance(n, MLoop):
            out.append((n, list(outer), lanes))
            _model_loops(n.body, [*outer, n], out, lanes)
        elif isinstance(n, MLanes):
            _model_loops(n.body, outer, out, (*lanes, (n.var, n.n)))
        elif isinstance(n, Branch):
            _model_loops(n.then, outer, out, lanes)
            _model_loops(n.orelse, outer, out, lanes)


def linear_bound(f, var: str, env: dict) -> tuple[float, float]:
    """Bounds on ``var`` from the top-level comparisons of ``f`` (sizes in ``env``)."""
    from ...shapes._interval import INF

    lo, hi = -INF, INF
    stack = [f]
    while stack:
        g = stack.pop()
        if isinstance(g, shapes.BoolOp) and g.kind == "and":
            stack.extend(g.args)
            continue
        if not isinstance(g, shapes.Cmp) or var not in g.free_symbols():
            continue
        d = g.difference()
        if not _linear_in(d, var):
            continue
        try:
            k = d.evaluate({**env, var: 0})
            c = d.evaluate({**env, var: 1}) - k
            if d.evaluate({**env, var: 2}) != k + 2 * c or c == 0:
                continue
        except (ZeroDivisionError, KeyError, shapes.ShapeError):
            continue
        # c*v + k  op  0
        op = g.op
        if c < 0:
            c, k = -c, -k
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[op]
        if op in (">=", "==", ">"):  # c*v >= -k  (> becomes >= -k + 1)
            lo = max(lo, _ceil(-k + (1 if op == ">" else 0), c))
        if op in ("<=", "==", "<"):
            hi = min(hi, (-k - (1 if op == "<" else 0)) // c)
    return lo, hi


def _linear_in(d, var: str) -> bool:
    """``d`` mentions ``var`` only as a plain first-degree symbol (no //, %, min, products)."""
    for m, _c in d.terms:
        for a, p in m:
            if isinstance(a, shapes._expr.Sym):
                if a.name == var and (p != 1 or len(m) != 1):
                    return False
            elif var in shapes.Expr.atom(a).free_symbols():
                return False
    return True


def _ceil(a: int, b: int) -> int:
    return -((-a) // b)


def _data_interval(d, sizes) -> tuple:
    from ...shapes._interval import INF

    lo, hi = linear_bound(d.range, d.name, sizes)
    blo, bhi = -(2 ** (d.bits - 1)), 2 ** (d.bits - 1) - 1
    lo = blo if lo == -INF else max(lo, blo)
    hi = bhi if hi == INF else min(hi, bhi)
    return (lo, hi)
