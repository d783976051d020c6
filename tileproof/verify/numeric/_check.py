"""``check_numeric``: the tiled execution against the reference, over chosen sizes.

For each size point (:func:`choose_sizes`) it draws inputs, executes the
tiled schedule, and compares

1. the run-time findings — any out-of-bounds access, poisoned read, race,
   unwritten output, loop past its bound, barrier divergence or unmatched
   ring traffic is a ``mismatch``;
2. the outputs with ``kernel.reference`` (called with the input arrays in
   declaration order; it returns the outputs as a tuple in declaration order,
   a dict by name, or a single array);
3. gradients: ``jax.vjp`` of the tiled execution and of the reference for a
   random cotangent, for every floating input, at the first
   :data:`GRADIENT_POINTS` points (each costs a second compilation, of both
   vjps together);
4. a declared backward spec (``kernel.backward``: a kernel whose inputs are
   named after the forward's inputs, its outputs (their values) and
   ``d<output>`` (cotangents), and whose outputs are ``d<input>``), executed
   and compared with the reference's vjp.

It stops at the first mismatch.  Matmuls run at ``highest`` precision on both
sides so a GPU's TF32 default does not show as a mismatch.

Compilations: the points of a kernel share one compilation of the counts-only
executor, and the gradient points one of its vjp, where their sizes can be
passed as data (:mod:`._bucket`; ``TILEPROOF_NO_BUCKETS=1`` compiles every point
on its own).  A finding or a mismatch at a point is always worded from the
point's own run, so results and messages do not depend on the buckets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

from ...report import NumericResult
from ...report._status import legacy
from ._compare import Comparison, compare, merge_tolerances
from ._execute import executor, run_compiled
from ._inputs import NoInputs, draw_inputs
from ._jaxpr import NumericUnsupported
from ._sizes import CAP_ELEMENTS, CAP_PROGRAMS, _bounds, choose_sizes, cost, device_cap_elements

__all__ = ["check_numeric"]

_DEFAULT_BUDGET = 6
GRADIENT_POINTS = 2  # size points whose gradients are compared (the first ones: given, defaults)


def _float(decl) -> bool:
    return decl.dtype in ("float16", "float32", "float64", "bfloat16")


def _ref_outputs(kernel, result) -> dict:
    names = kernel.outputs
    if isinstance(result, Mapping):
        missing = [n for n in names if n not in result]
        if missing:
            raise NumericUnsupported(
                f"the reference of {kernel.name} returns no {', '.join(missing)}", kernel.location
            )
        return {n: result[n] for n in names}
    if isinstance(result, (tuple, list)):
        if len(result) != len(names):
            raise NumericUnsupported(
                f"the reference of {kernel.name} returns {len(result)} values for "
                f"{len(names)} outputs ({', '.join(names)})",
                kernel.location,
            )
        return dict(zip(names, result))
    if len(names) == 1:
        return {names[0]: result}
    raise NumericUnsupported(
        f"the reference of {kernel.name} returns one array for {len(names)} outputs",
        kernel.location,
    )


def _worst(cs: list[Comparison]) -> tuple[float, float]:
    fin = [c for c in cs if c.max_abs_err is not None]
    return (
        max((c.max_abs_err for c in fin), default=0.0),
        max((c.max_rel_err for c in fin), default=0.0),
    )


def check_numeric(
    kernel,
    *,
    sizes: Mapping[str, int] | Iterable[Mapping[str, int]] | None = None,
    extra_sizes: Iterable[Mapping[str, int]] = (),
    budget: int = 6,  # _DEFAULT_BUDGET
    budget_s: float | None = None,
    seed: int = 0,
    tolerances: Mapping | None = None,
    gradients: bool | None = None,
    devices: int | None = None,
    only: bool = False,
    on_point=None,
) -> NumericResult:
    """Run ``kernel``'s tiled schedule against its reference (values and gradients).

    ``sizes``/``extra_sizes``: points tried first (a static counterexample
    may name program ids too; only sizes are kept, missing ones completed);
    ``budget``: further points chosen from the domain; ``budget_s``: stop
    starting new points after this many seconds; ``tolerances``: per-dtype
    ``(rtol, atol)`` overrides (see :mod:`._compare`); ``gradients``: compare
    gradients too (default: yes); ``devices``: run a ranked kernel's ranks on the first
    ``devices`` devices (``shard_map``) at every point whose rank count fits, vmapped at
    the others; ``only``: run exactly the given ``sizes`` (no chosen points, not the
    spec's own): what the rerun command of a mismatch does; ``on_point(sizes, run)``:
    called after each point (progress).

    Point ``i`` draws its inputs from seed ``seed + i`` alone (see :func:`point_seed`), so
    ``--sizes P --seed S`` with ``only`` reproduces any point exactly; a mismatch's
    ``detail["rerun"]`` holds that point, its seed and the small index tensors' values.

    A spec sets its own defaults with ``numeric={...}``: ``"sizes"`` (points
    tried first), ``"budget"``, ``"gradients"``, ``"tolerances"`` and
    ``"derive"`` (inputs computed from others, see :func:`draw_inputs`).
    """
    t0 = time.perf_counter()
    opts = kernel.numeric
    if opts.get("skip"):  # the one skip a user asks for: numeric={"skip": "why"}
        return NumericResult("skipped", message=f"numeric={{'skip': ...}}: {opts['skip']}")
    if kernel.reference is None:
        return NumericResult(
            "error",
            message=f"kernel {kernel.name} declares no reference, so "
            "nothing can be compared (declare reference=..., or skip numerics "
            "with numeric={'skip': 'why'})",
        )  # the spec's own numeric settings come first, call arguments on top
    extra: list = []
    for group in (sizes,) if only else (opts.get("sizes"), sizes, extra_sizes):
        if group is None:
            continue
        extra += [group] if isinstance(group, Mapping) else list(group)
    tol = merge_tolerances(opts.get("tolerances"), tolerances)
    if gradients is None:
        gradients = bool(opts.get("gradients", True))
    if "budget" in opts and budget == _DEFAULT_BUDGET:
        budget = int(opts["budget"])
    dropped: list = []
    pins: dict = {}
    try:
        points = choose_sizes(
            kernel, extra=extra, budget=0 if only else budget, seed=seed, dropped=dropped, pins=pins
        )
    except NumericUnsupported as e:
        return NumericResult(
            "error", message=f"no size points: {e}", seconds=time.perf_counter() - t0
        )
    if only:  # sizes below a symbol's lower bound (1 unless assumed) are no point of the domain
        bounds = _bounds(kernel)
        points = [
            p for p in points[: len(extra)] if all(_within(bounds.get(k), v) for k, v in p.items())
        ]
        # exactly the pins the given point names ("seq_lens[0]": 0), none chosen here
        from ._sizes import _pins_of

        given = {}
        for e in extra:
            pe = _pins_of(kernel, e)
            at = {k: int(v) for k, v in e.items() if k in kernel.sizes}
            for p in points:
                if pe and all(p.get(k) == v for k, v in at.items()):
                    given.setdefault(tuple(sorted(p.items())), pe)
        pins = given
        if not points and not dropped:
            return NumericResult(
                "error",
                message=f"sizes {', '.join(_fmt(e) for e in extra)} "
                "are not admissible (the kernel's assumptions exclude them)",
                seconds=time.perf_counter() - t0,
            )
    devs = _devices(kernel, devices)
    if not points:
        return NumericResult(
            "error",
            message="no admissible sizes within the numeric cap of "
            f"{CAP_ELEMENTS} elements per tensor and {CAP_PROGRAMS} programs: "
            "nothing was run",
            seconds=time.perf_counter() - t0,
            detail={"over_cap": dropped},
        )
    cover = _Coverage(kernel)
    buckets = _buckets(kernel, points, devs)
    # the gradient points (the first ones, often the smallest) share a bucket of their own:
    # the vjp's padded run then costs what theirs costs, not what the largest point's does
    grad_buckets = _buckets(kernel, points[:GRADIENT_POINTS], devs) if gradients else {}
    tried, runs = [], []
    oom: list = []  # production-size points the device ran out of memory on
    worst_abs = worst_rel = 0.0
    grad_worst = [0.0, 0.0]
    grad_checked = False
    grad_points = 0
    status, message = "matched", ""
    rerun = None
    for i, env in enumerate(points):
        if budget_s is not None and tried and time.perf_counter() - t0 > budget_s:
            break
        tried.append(env)
        t1 = time.perf_counter()
        try:
            # gradients cost a second compilation of the executor (and its transpose): compare
            # them at the first points only (the given ones, the authors' sizes, the smallest);
            # values and run-time flags are checked at every point
            rng = np.random.default_rng(point_seed(seed, i))
            pin = pins.get(tuple(sorted(env.items())))
            run = _one(
                kernel,
                env,
                rng,
                point_seed(seed, i),
                tol,
                gradients and grad_points < GRADIENT_POINTS,
                pin,
                cover,
                _fit(kernel, env, devs),
                buckets.get(tuple(sorted(env.items()))),
                grad_buckets.get(tuple(sorted(env.items()))),
            )
            run["pins"] = {
                f"{n}[{','.join(map(str, at))}]": int(v) for (n, at), v in (pin or {}).items()
            }
        except NoInputs as e:  # e.g. more distinct values wanted than the range has: next point
            tried.pop()
            runs.append({"sizes": env, "skipped": str(e)})
            continue
        except NumericUnsupported as e:  # a construct the executor does not run: not a pass
            return NumericResult(
                "error",
                tried,
                message=f"at sizes {_fmt(env)}: not run: {e}",
                seconds=time.perf_counter() - t0,
                detail={"runs": runs},
            )
        except Exception as e:  # a report, not a crash: the reference or the body failed here
            first = str(e).splitlines()[0] if str(e) else ""
            if _out_of_memory_beyond_cap(kernel, env, e):
                # a production-size point the device's free memory seemed to admit, and the
                # device refused: a limit of the machine, said in the result -- not a pass of
                # that point and not a failure of the kernel; the other points still run
                tried.pop()
                oom.append(env)
                runs.append({"sizes": env, "not_run": f"out of device memory: {first}"})
                continue
            msg = f"at sizes {_fmt(env)}: the run failed: {type(e).__name__}: {first}"
            return NumericResult(
                "error", tried, message=msg, seconds=time.perf_counter() - t0, detail={"runs": runs}
            )
        run["seconds"] = time.perf_counter() - t1
        run["seed"] = point_seed(seed, i)
        runs.append(run)
        if on_point is not None:
            on_point(env, run)
        worst_abs = max(worst_abs, run["max_abs_err"])  # NaN-free: compare() maps NaN to inf
        worst_rel = max(worst_rel, run["max_rel_err"])
        if run.get("grad") is not None:
            grad_checked = True
            grad_points += 1
            grad_worst[0] = max(grad_worst[0], run["grad"]["max_abs_err"])
            grad_worst[1] = max(grad_worst[1], run["grad"]["max_rel_err"])
        if run["problems"]:
            status = "mismatch"
            message = f"at sizes {_fmt(env)}: " + "; ".join(run["problems"][:3])
            if len(run["problems"]) > 3:
                message += f"; and {len(run['problems']) - 3} more"
            rerun = {
                "sizes": dict(env),
                "seed": run["seed"],
                "index": run.get("index", {}),
                "pins": run.get("pins", {}),
            }
            break
    if not tried:
        return NumericResult(
            "error",
            message=("nothing could be run" if oom else "no inputs could be drawn")
            + " at any chosen size: "
            + "; ".join(r.get("skipped") or r.get("not_run", "") for r in runs),
            seconds=time.perf_counter() - t0,
            detail={"runs": runs},
        )
    grads = None
    if gradients:
        # not compared: nothing differentiable (no float input or output), or the values
        # mismatched before any gradient was taken; the JSON's status says "skipped" for both
        differentiable = any(_float(kernel.tensors[n]) for n in kernel.inputs) and any(
            _float(kernel.tensors[n]) for n in kernel.outputs
        )
        outcome = (
            ("not_run" if differentiable else "not_applicable")
            if not grad_checked
            else (
                "mismatch"
                if any(r.get("grad", {}) and not r["grad"]["ok"] for r in runs)
                else "matched"
            )
        )
        grads = {
            "status": legacy(outcome),
            "outcome": outcome,
            "max_abs_err": _finite(grad_worst[0]) if grad_checked else None,
            "max_rel_err": _finite(grad_worst[1]) if grad_checked else None,
        }
    if dropped:
        note = "; ".join(
            f"not run at {_fmt(e)}: over the numeric cap of {device_cap_elements()} elements "
            f"per tensor and {CAP_PROGRAMS} programs"
            for e in dropped[:2]
        )
        message = f"{message}; {note}" if message else note
    if oom:
        note = "; ".join(
            f"not run at {_fmt(e)}: out of device memory (the authors' sizes; "
            f"the smaller points ran{_shared_device()})"
            for e in oom[:2]
        )
        message = f"{message}; {note}" if message else note
    detail = {"runs": runs, "over_cap": dropped, "out_of_memory": oom, "conditions": cover.report()}
    if devs is not None:
        detail["placements"] = {
            p: sum(1 for r in runs if r.get("placement") == p) for p in ("devices", "vmapped")
        }
    if rerun is not None:
        detail["rerun"] = rerun
    return NumericResult(
        status,
        tried,
        _finite(worst_abs),
        _finite(worst_rel),
        grads,
        message,
        time.perf_counter() - t0,
        detail,
    )


class _Coverage:
    """Which sides of the model's conditions the runs exercised (:mod:`._conditions`)."""

    def __init__(self, kernel):
        from ._conditions import conditions
        from ._plan import traced

        self.an, self.conds, self.seen, self.partial = None, [], {}, False
        try:
            model = traced(kernel).model
            if model is not None:
                from ..static._context import Analysis

                self.an = Analysis(model)
                self.conds = conditions(self.an)
        except Exception:  # the report is a help: no model, no conditions
            self.an = None

    def add(self, env, inputs) -> None:
        if self.an is None or not self.conds:
            return
        from ._conditions import covered

        got = covered(self.an, self.conds, env, inputs=inputs)
        if got is None:
            self.partial = True
            return
        for i, sides in got.items():
            self.seen.setdefault(i, set()).update(sides)

    def report(self) -> list[dict]:
        from ._conditions import impossible_sides

        out = []
        for c in self.conds:
            seen = self.seen.get(c.index, set())
            missed = [s for s in ("true", "false", "boundary") if s not in seen]
            try:  # a side no admissible point reaches is no gap of the run
                gone = impossible_sides(self.an, c, missed) if missed else []
            except Exception:  # the report is a help
                gone = []
            row = c.describe(seen, gone)
            if self.partial:  # a run too large to replay: what it missed is unknown
                row = {k: (None if v is False else v) for k, v in row.items()}
            out.append(row)
        return out


def _within(bound, v: int) -> bool:
    lo, hi = bound if bound is not None else (None, None)
    return (lo is None or lo <= v) and (hi is None or v <= hi)


def point_seed(seed: int, i: int) -> int:
    """The seed of point ``i``'s inputs (and cotangents): the rerun command passes it as
    ``--seed`` with that point alone, which is point 0 there, so it must depend on nothing
    else.  Its parity picks the index-tensor variant (shuffled or with replacement)."""
    return seed + i


_INDEX_SHOWN = 16  # index tensors up to this many elements are printed in a mismatch


def _index_values(kernel, inputs) -> dict:
    """The index tensors a mismatch depends on (lengths, starts, page tables), when small."""
    out = {}
    for n in kernel.inputs:
        decl = kernel.tensors[n]
        if decl.is_index and np.size(inputs[n]) <= _INDEX_SHOWN:
            out[n] = np.asarray(inputs[n]).tolist()
    return out


def _devices(kernel, devices: int | None) -> list | None:
    """The first ``devices`` devices for a ranked kernel (None: ranks stay a vmapped axis)."""
    if devices is None or kernel.ranks is None:
        return None
    have = jax.devices()
    if len(have) < devices:
        raise NumericUnsupported(
            f"--devices {devices} asks for {devices} devices, but JAX sees {len(have)} "
            f"({jax.default_backend()})",
            kernel.location,
        )
    return list(have[:devices])


def _shared_device() -> str:
    """What to add to an out-of-memory note when ``tileproof check`` ran kernels in several
    processes on one device (it sets ``TILEPROOF_SHARED_DEVICE`` to their number)."""
    try:
        jobs = int(os.environ.get("TILEPROOF_SHARED_DEVICE", "1"))
    except ValueError:
        return ""
    if jobs <= 1:
        return ""
    return f"; {jobs} processes shared the device: --jobs 1 gives this kernel all of it"


def _out_of_memory_beyond_cap(kernel, env, e: Exception) -> bool:
    """``e`` is the device's out-of-memory error at a point larger than the CPU cap.

    Such points run only because the device's free memory seemed to admit them
    (:func:`~._sizes.device_cap_elements` budgets per element of the largest tensor, an
    estimate); at the ordinary sizes an out-of-memory error stays a failed run."""
    text = f"{type(e).__name__}: {e}"
    if "RESOURCE_EXHAUSTED" not in text and "Out of memory" not in text:
        return False
    c = cost(kernel, env)
    return c is not None and c[0] > CAP_ELEMENTS


def _fit(kernel, env, devs) -> list | None:
    """``devs`` when this point's rank count fits on them, else None (ranks vmapped)."""
    if devs is None:
        return None
    ranks = int(kernel.ranks.size.evaluate(dict(env)))
    return devs if ranks <= len(devs) else None


def _finite(x: float) -> float | None:
    """Errors for the JSON report: a NaN or infinite error (poison in the output) is None."""
    return float(x) if np.isfinite(x) else None


def _fmt(env) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items()) or "(none)"


def _buckets(kernel, points, devs) -> dict:
    """Buckets of points that share one compilation (:mod:`._bucket`); none when the ranks
    run on devices, or with ``TILEPROOF_NO_BUCKETS=1`` (every point compiled on its own)."""
    if devs is not None or len(points) < 2 or os.environ.get("TILEPROOF_NO_BUCKETS") == "1":
        return {}
    from ._bucket import buckets_for

    try:
        return buckets_for(kernel, points)
    except Exception:  # fail closed: every point on its own
        return {}


def _one(
    kernel,
    env,
    rng,
    variant,
    tol,
    gradients,
    pins=None,
    cover=None,
    devs=None,
    bucket=None,
    grad_bucket=None,
) -> dict:
    at_sizes = getattr(kernel.reference, "at_sizes", None)  # a front end's size-specific reference
    if at_sizes is not None:
        kernel = replace(kernel, reference=at_sizes(env))
    inputs = draw_inputs(kernel, env, rng, variant, pins)
    if cover is not None:
        cover.add(env, inputs)
    names = kernel.inputs
    run: dict = {
        "sizes": env,
        "problems": [],
        "findings": [],
        "max_abs_err": 0.0,
        "max_rel_err": 0.0,
        "index": _index_values(kernel, inputs),
        "placement": "devices" if devs is not None else "vmapped",
    }
    ref_fn = _jitted_reference(kernel)
    with jax.default_matmul_precision("highest"):
        outs, findings, bucketed = _forward(kernel, env, inputs, devs, bucket)
        ref = _ref_outputs(kernel, ref_fn(*[jnp.asarray(inputs[n]) for n in names]))
    comps = [compare(n, outs[n], ref[n], tol, kernel.tensors[n].dtype) for n in kernel.outputs]
    if bucketed and not all(c.ok for c in comps):
        # a mismatch is worded from the point's own run (its errors to the last bit)
        bucketed = False
        with jax.default_matmul_precision("highest"):
            outs, flags = _execute(kernel, env, inputs, devs)
            findings = flags.findings()
        comps = [compare(n, outs[n], ref[n], tol, kernel.tensors[n].dtype) for n in kernel.outputs]
    run["findings"] = [f.message for f in findings]
    run["problems"] += [f.message for f in findings]
    run["problems"] += [c.message for c in comps if not c.ok]
    run["max_abs_err"], run["max_rel_err"] = _worst(comps)
    run["where"] = {c.name: c.where for c in comps}
    if run["problems"] or not gradients:
        return run
    float_in = [n for n in names if _float(kernel.tensors[n])]
    float_out = [n for n in kernel.outputs if _float(kernel.tensors[n])]
    if not float_in or not float_out:
        return run
    cot = {
        n: rng.standard_normal(np.shape(ref[n])).astype(np.asarray(ref[n]).dtype) for n in float_out
    }
    rest = {n: jnp.asarray(inputs[n]) for n in names if n not in float_in}
    primal = {n: jnp.asarray(inputs[n]) for n in float_in}

    def exec_out(d, rest):
        # its flags are the forward run's (checked above) and unused here: counts only
        fn0 = executor(kernel, env, poison="zero", devices=devs, detail=False)
        out = fn0({**rest, **d})[0]
        return {n: out[n] for n in float_out}

    def ref_out(d, rest):
        both = {**rest, **d}
        out = _ref_outputs(kernel, kernel.reference(*[both[n] for n in names]))
        return {n: out[n] for n in float_out}

    def gcompare(g_exec, g_ref):
        return [
            compare(f"d{n}", g_exec[n], g_ref[n], tol, kernel.tensors[n].dtype) for n in float_in
        ]

    gcomps = None
    if grad_bucket is not None and grad_bucket.worth("grads"):
        # the executor's vjp bucketed, the reference's at the point's shapes
        try:
            with jax.default_matmul_precision("highest"):
                g_exec = grad_bucket.gradients(
                    env,
                    {n: inputs[n] for n in float_in},
                    {n: inputs[n] for n in names if n not in float_in},
                    cot,
                )
                g_ref = _ref_grads(ref_out, primal, rest, cot)
            gcomps = gcompare(g_exec, g_ref)
        except Exception:  # fail closed: the point's own compilation decides
            gcomps = None
        if gcomps is not None and not all(c.ok for c in gcomps):
            gcomps = None  # a mismatch is worded from the point's own run
    if gcomps is None:
        with jax.default_matmul_precision("highest"):
            g_exec, g_ref = _grads(exec_out, ref_out, primal, rest, cot, devs)
        gcomps = gcompare(g_exec, g_ref)
    ga, gr = _worst(gcomps)
    ok = all(c.ok for c in gcomps)
    run["grad"] = {"ok": ok, "max_abs_err": ga, "max_rel_err": gr}
    for c in gcomps:
        if not c.ok:
            run["problems"].append("gradient " + c.message)
    if ok and kernel.backward is not None:
        run["problems"] += _backward(kernel, env, inputs, ref, cot, g_ref, tol)
    return run


def _forward(kernel, env, inputs, devs, bucket) -> tuple[dict, list, bool]:
    """Outputs, run-time findings and whether they come from ``bucket``'s shared executable.

    A bucketed run answers only when every count is zero; otherwise the point is executed
    on its own with details (the findings' words are that run's)."""
    if bucket is not None and bucket.worth():
        try:
            outs, ok = bucket.forward(env, inputs)
        except Exception:  # fail closed: the point's own compilation decides
            outs, ok = None, None
        if ok:
            return outs, [], True
        if ok is False:
            outs, flags = executor(kernel, env, devices=devs)(inputs)
            return outs, flags.findings(), False
    outs, flags = _execute(kernel, env, inputs, devs)
    return outs, flags.findings(), False


def _execute(kernel, env, inputs, devs=None):
    """Outputs and flags of the tiled execution at ``env``, compiled counts-only first.

    Most runs find nothing, and naming the first offender of every check site is a large
    part of the executor's program (:func:`~._flags.counts_only`); only when a count is
    non-zero is it executed again with details, so the findings read exactly as a
    detailed run words them (the outputs do not depend on the mode)."""
    outs, flags = run_compiled(
        executor(kernel, env, devices=devs, detail=False), inputs, devices=devs
    )
    if not flags.ok:
        outs, flags = executor(kernel, env, devices=devs)(inputs)
    return outs, flags


def _grads(f, g, primal, rest, cot, devices=None) -> tuple[dict, dict]:
    """``vjp(f)(cot)`` and ``vjp(g)(cot)`` at ``primal``, as one jit-compiled function
    (one compilation per point for the executor's and the reference's gradients)."""

    def both(primal, rest, cot):
        def one(h):
            out, pull = jax.vjp(lambda d: h(d, rest), primal)
            return pull({n: cot[n].astype(out[n].dtype) for n in out})[0]

        return one(f), one(g)

    return run_compiled(
        jax.jit(both), primal, rest, {n: jnp.asarray(c) for n, c in cot.items()}, devices=devices
    )


def _ref_grads(g, primal, rest, cot, devices=None) -> dict:
    """``vjp(g)(cot)`` at ``primal``: the reference's half of :func:`_grads` (a bucketed run
    takes the executor's from its bucket)."""

    def one(primal, rest, cot):
        out, pull = jax.vjp(lambda d: g(d, rest), primal)
        return pull({n: cot[n].astype(out[n].dtype) for n in out})[0]

    return run_compiled(
        jax.jit(one), primal, rest, {n: jnp.asarray(c) for n, c in cot.items()}, devices=devices
    )


_REFS: dict[int, tuple] = {}


def _jitted_reference(kernel):
    hit = _REFS.get(id(kernel))
    if hit is None or hit[0] is not kernel.reference:
        hit = (kernel.reference, jax.jit(kernel.reference))
        _REFS[id(kernel)] = hit
    return hit[1]


def _backward(kernel, env, inputs, ref, cot, g_ref, tol) -> list[str]:
    bwd = kernel.backward
    feed = {}
    for n in bwd.inputs:
        if n in inputs:
            feed[n] = inputs[n]
        elif n in ref:
            feed[n] = np.asarray(ref[n])
        elif n.startswith("d") and n[1:] in cot:
            feed[n] = cot[n[1:]].astype(np.asarray(ref[n[1:]]).dtype)
        else:
            raise NumericUnsupported(
                f"input {n} of the backward spec {bwd.name} names no input, output or output "
                f"cotangent (d<output>) of {kernel.name}",
                bwd.location,
            )
    benv = {s: env[s] for s in bwd.sizes if s in env}
    with jax.default_matmul_precision("highest"):
        outs, flags = _execute(bwd, benv, feed)
    problems = [f"backward {bwd.name}: {f.message}" for f in flags.findings()]
    for n in bwd.outputs:
        if not n.startswith("d") or n[1:] not in g_ref:
            continue
        c = compare(n, outs[n], g_ref[n[1:]], tol, bwd.tensors[n].dtype)
        if not c.ok:
            problems.append(f"backward {bwd.name}: {c.message} (the reference's vjp)")
    return problems
