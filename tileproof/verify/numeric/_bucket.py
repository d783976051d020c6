"""One compilation for many size points: buckets, with the real sizes passed as data.

Compiling the executor is most of a numeric check on a CPU (seconds per point, the
run itself a fraction of one).  The traced body does not depend on the sizes — they
enter it through ``tp_size``, ``program_id``/``num_programs`` and the tensors'
extents — so the points of a kernel can share one executable:

* every tensor is padded to the *bucket* shape, per dimension the largest extent of
  the points; the launch has the largest program and rank counts, each loop the
  largest trip bound;
* the real sizes travel as int32 data (:class:`Dyn`): the size values, the grid, the
  rank count, the tensors' extents and each loop's trip bound at this point;
* bounds are checked against the real extents, so an access outside them is flagged
  (and reads 0, writes nothing) exactly as at the point's own shapes, and an access
  inside the padding is never a silent success;
* the programs (and ranks) past the real launch are dead from the start: they read
  zeros, write nothing, flag nothing, and the barrier check ignores them;
* loop iterations past the point's trip bound do nothing (``_interp._while``), so the
  loop-bound check fires exactly when it fires at the point;
* outputs are compared on the real region (the padding of an output is never written
  and is cut off), and the unwritten-output check looks at the real region only;
* what a point's own executor decides from sizes known while tracing is decided from
  the traced sizes or not at all: a branch on a size runs both sides under their
  predicates (``_interp._cond``), a vectorised loop stops at the point's trip bound
  (``_vecloop.while_vec``), and there are no gated blocks (``_gate``: which programs
  enter is computed at concrete sizes), no fast paths (reshapes cut at one point's
  shapes) and no static values (the bucket's plan refuses them).

Only the counts-only executor runs bucketed (:func:`~._flags.counts_only`): whenever a
count is non-zero, or the values or gradients do not match, the point runs again on
its own (:mod:`._check`), so every message — the first offender, the static trip bound
it names, the errors — is exactly the one a run at the point's own shapes gives.
Fail closed: a point whose plan cannot be made (an unbounded loop, a tensor over a
limit) or a bucket that cannot be compiled or run is left to the per-point path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._execute import _named, _run, compile_lowered
from ._flags import Flags, counts_only
from ._jaxpr import NumericUnsupported, eqn_has_kernel_ops, sub_jaxprs, unwrap
from ._plan import INDEX_MAX, PRIVATE_LIMIT, Plan, traced
from ._sizes import CAP_ELEMENTS, CAP_PROGRAMS

__all__ = ["Bucket", "Dyn", "buckets_for"]

# a bucket's largest tensor may be this many times the per-point cap: the padded run of a
# small point costs a little more, a compilation (seconds) much more
BUCKET_ELEMENTS = 2 * CAP_ELEMENTS


class Dyn:
    """The real sizes of one point, as traced int32 values, inside a bucket's executor."""

    def __init__(self, bucket: Bucket, arrays: Mapping):
        self.bucket, self.a = bucket, arrays

    def size(self, eqn):
        return self.a["size"][self.bucket.size_index[id(eqn)]]

    def grid_dims(self) -> tuple:
        g = self.a["grid"]
        return tuple(g[k] for k in range(len(self.bucket.plan.grid)))

    def ranks(self):
        return self.a["R"]

    def shape(self, t: str) -> tuple:
        s = self.a["shape"][t]
        return tuple(s[k] for k in range(len(self.bucket.plan.shapes[t])))

    def trip(self, eqn):
        return self.a["trip"][self.bucket.trip_index[id(eqn)]]

    def real(self, rank, pid):
        """Whether ``(rank, pid)`` is a program of the point's launch."""
        return (rank < self.a["R"]) & (pid < self.a["G"])

    def launch_mask(self):
        p = self.bucket.plan
        r = jnp.arange(p.R, dtype=jnp.int32)[:, None] < self.a["R"]
        g = jnp.arange(p.G, dtype=jnp.int32)[None, :] < self.a["G"]
        return r & g

    def region(self, t: str):
        """The point's elements of ``t`` within its bucket shape."""
        shape = self.bucket.plan.shapes[t]
        ok = jnp.ones(shape, bool)
        for k, n in enumerate(self.shape(t)):
            ix = jax.lax.broadcasted_iota(jnp.int32, shape, k)
            ok = ok & (ix < n)
        return ok


def _while_loops(j, out: list) -> None:
    """Every ``while`` with kernel operations inside (those :func:`~._interp._while` runs)."""
    for e in unwrap(j).eqns:
        if e.primitive.name == "while" and eqn_has_kernel_ops(e):
            out.append(e)
        for s in sub_jaxprs(e):
            _while_loops(s, out)


def _size_eqns(j, out: list) -> None:
    for e in unwrap(j).eqns:
        if e.primitive.name == "tp_size":
            out.append(e)
        for s in sub_jaxprs(e):
            _size_eqns(s, out)


class _Point:
    """What a bucket needs of one point: its plan (no fast paths) and its data values."""

    def __init__(self, kernel, env: Mapping[str, int], loops: list, sizes: list):
        from ...spec._primitives import size_value

        self.env = dict(env)
        self.plan = plan = Plan(kernel, self.env, fast=False)
        self.trips = [plan.trip_bound(e) for e in loops]  # NumericUnsupported: not bucketed
        self.sizes = [int(size_value(e.params, plan.sizes)) for e in sizes]
        if any(abs(v) > INDEX_MAX for v in [*self.sizes, *self.trips]):
            raise NumericUnsupported("a size beyond int32", kernel.location)

    def arrays(self, kernel) -> dict:
        p = self.plan
        return {
            "size": np.asarray(self.sizes, np.int32).reshape(-1),
            "grid": np.asarray(p.grid, np.int32).reshape(-1),
            "G": np.int32(p.G),
            "R": np.int32(p.R),
            "shape": {t: np.asarray(s, np.int32).reshape(-1) for t, s in p.shapes.items()},
            "trip": np.asarray(self.trips, np.int32).reshape(-1),
        }


class Bucket:
    """Points that share one executable (per mode); see the module docstring."""

    def __init__(self, kernel, points: list[_Point], loops: list, sizes: list):
        self.kernel = kernel
        self.points = {tuple(sorted(p.env.items())): p for p in points}
        self.trip_index = {id(e): i for i, e in enumerate(loops)}
        self.size_index = {id(e): i for i, e in enumerate(sizes)}
        first = points[0].plan
        plan = Plan(kernel, dict(first.sizes), fast=False)
        plan.shapes = {
            t: tuple(max(p.plan.shapes[t][k] for p in points) for k in range(len(s)))
            for t, s in first.shapes.items()
        }
        plan.grid = tuple(
            max(p.plan.grid[k] for p in points) for k in range(len(first.grid))
        )  # only a bound: programs are unflattened with the real grid (Dyn.grid_dims)
        plan.G = max(p.plan.G for p in points)
        plan.R = max(p.plan.R for p in points)
        plan.launch = (plan.R, *plan.grid)
        plan.pads = plan._pads()
        plan.trip = {id(e): max(p.trips[i] for p in points) for i, e in enumerate(loops)}
        # never bounded again at the first point's sizes (that would overwrite the maxima):
        # a loop asked about that is not here is refused (NumericUnsupported)
        plan._bound_loops = _no_bounds
        # nor are values "known while tracing" taken from it: its sizes are one point's, its
        # grid the largest (gates and fast paths, the users of static values, are off here)
        plan.static_values = _no_static_values
        if plan.R * plan.G * plan.lanes_max > INDEX_MAX:
            raise NumericUnsupported("bucket beyond 32-bit writer ids", kernel.location)
        for ph in plan.phases:
            for t in ph.private:
                n = int(np.prod(plan.shapes[t], dtype=np.int64))
                if n * plan.G * plan.R * plan.lanes_max > PRIVATE_LIMIT:
                    raise NumericUnsupported("bucket over the private-view limit", kernel.location)
        self.plan = plan
        self._compiled: dict = {}
        self.seconds: dict = {}  # mode -> [compilation seconds, seconds of the last run]
        self.broken = False  # a compilation or run failed: the points run on their own

    def worth(self, mode: str = "forward") -> bool:
        """Whether the next point should still run here.  The padded run costs about the same
        at every point of the bucket (the padding programs are executed, masked), and a
        point's own compilation often costs half the bucket's or less (its fast paths make a
        smaller program): once the padded run takes more than a quarter of the bucket's
        compilation, the remaining points are cheaper on their own.  Either way the answers
        are the same (only the cost differs)."""
        got = self.seconds.get(mode)
        return not self.broken and (got is None or got[1] < got[0] / 4)

    def has(self, env: Mapping[str, int]) -> bool:
        return tuple(sorted(env.items())) in self.points

    # -- padding
    def _pad(self, name: str, x):
        x = np.asarray(x)
        want = self.plan.shapes[name]
        if tuple(x.shape) == want:
            return x
        return np.pad(x, [(0, b - s) for s, b in zip(x.shape, want)])

    def _cut(self, env, name: str, x):
        shape = self.points[tuple(sorted(env.items()))].plan.shapes[name]
        return np.asarray(x)[tuple(slice(0, n) for n in shape)]  # on the host: no compilation

    def _compile(self, key, fn, *args):
        hit = self._compiled.get(key)
        mode = key[0]
        self.broken = True  # until this run has come back
        if hit is None:
            t0 = time.perf_counter()
            hit = compile_lowered(jax.jit(fn).lower(*args))
            self._compiled[key] = hit
            self.seconds[mode] = [time.perf_counter() - t0, 0.0]
        t0 = time.perf_counter()
        out = jax.block_until_ready(hit(*args))
        self.seconds[mode][1] = time.perf_counter() - t0
        self.broken = False
        return out

    # -- runs
    def forward(self, env: Mapping[str, int], inputs) -> tuple[dict, bool]:
        """Outputs (the real region) and whether every run-time count is zero."""
        point = self.points[tuple(sorted(env.items()))]
        named = _named(self.kernel, inputs)
        padded = {n: self._pad(n, v) for n, v in named.items()}
        arrays = point.arrays(self.kernel)

        def run(inputs, arrays):
            with counts_only(True):
                outs, flags = _run(self.plan, inputs, None, "nan", Dyn(self, arrays))
            return outs, Flags(flags.records, flags.meta, False)

        outs, flags = self._compile(("forward", _precision()), run, padded, arrays)
        self.last_flags = flags  # the counts of this run, per check site (differential tests)
        return {n: self._cut(env, n, v) for n, v in outs.items()}, flags.ok

    def gradients(self, env: Mapping[str, int], primal: dict, rest: dict, cot: dict) -> dict:
        """``vjp`` of the executor's floating outputs at ``primal`` for ``cot`` (the real
        region of each input's gradient), as :func:`~._check._grads` takes it."""
        point = self.points[tuple(sorted(env.items()))]
        arrays = point.arrays(self.kernel)
        plan = self.plan
        outs = tuple(sorted(cot))

        def grads(primal, rest, cot, arrays):
            def f(d):
                with counts_only(True):
                    o, _ = _run(plan, {**rest, **d}, None, "zero", Dyn(self, arrays))
                return {n: o[n] for n in outs}

            out, pull = jax.vjp(f, primal)
            return pull({n: cot[n].astype(out[n].dtype) for n in out})[0]

        args = (
            {n: self._pad(n, v) for n, v in primal.items()},
            {n: self._pad(n, v) for n, v in rest.items()},
            {n: self._pad(n, v) for n, v in cot.items()},
            arrays,
        )
        g = self._compile(("grads", outs, _precision()), grads, *args)
        return {n: self._cut(env, n, v) for n, v in g.items()}


def _no_bounds() -> None:
    """A bucket plan's ``_bound_loops``: its trip bounds are the points' maxima, set once."""


def _no_static_values() -> dict:
    raise NumericUnsupported("a bucket's sizes are data: no static values", None)


def _precision():
    return str(jax.config.jax_default_matmul_precision)


def buckets_for(kernel, points: Sequence[Mapping[str, int]]) -> dict:
    """``{point key: Bucket}`` for the points that share a bucket with another one.

    Greedy, in the points' order: a point joins the first bucket it fits (the padded
    largest tensor within :data:`BUCKET_ELEMENTS`, the launch within the program cap),
    else starts one.  A point whose own plan cannot be made, or beyond the CPU cap (a
    production size on a device), stays on its own."""
    closed = traced(kernel).closed
    loops: list = []
    _while_loops(closed, loops)
    sizes: list = []
    _size_eqns(closed, sizes)
    groups: list[list[_Point]] = []
    for env in points:
        try:
            pt = _Point(kernel, env, loops, sizes)
        except Exception:  # left to the per-point run, which says what is wrong
            continue
        if _biggest(pt.plan.shapes) > CAP_ELEMENTS or pt.plan.R * pt.plan.G > CAP_PROGRAMS:
            continue
        for g in groups:
            if _fits([*g, pt]):
                g.append(pt)
                break
        else:
            groups.append([pt])
    out: dict = {}
    for g in groups:
        if len(g) < 2:
            continue
        try:
            b = Bucket(kernel, g, loops, sizes)
        except Exception:  # fail closed: these points run on their own
            continue
        for p in g:
            out[tuple(sorted(p.env.items()))] = b
    return out


def _biggest(shapes: Mapping[str, tuple]) -> int:
    return max((int(np.prod(s, dtype=np.int64)) for s in shapes.values()), default=0)


def _fits(group: list[_Point]) -> bool:
    shapes = {
        t: tuple(max(p.plan.shapes[t][k] for p in group) for k in range(len(s)))
        for t, s in group[0].plan.shapes.items()
    }
    progs = max(p.plan.R for p in group) * max(p.plan.G for p in group)
    return _biggest(shapes) <= BUCKET_ELEMENTS and progs <= CAP_PROGRAMS
