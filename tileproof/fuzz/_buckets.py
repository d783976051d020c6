"""Bucketed numeric runs against each point's own run, on generated kernels.

The numeric check compiles one executor per *bucket* of size points
(:mod:`tileproof.verify.numeric._bucket`): tensors padded to the largest extents,
the real sizes passed as data, and a clean bucketed run is the point's answer.  A
bucketed run that is clean where the point's own executor flags something (an
out-of-bounds access, a race, a poison read, an unwritten output, a loop past its
bound, a barrier exit) or whose outputs differ on the real region is unsound: the
check would report ``matched`` for a defect.  :func:`bucket_differential` runs both
at a few points of one kernel and reports every difference as a :class:`Problem`
(``disagreement``); ``error`` when the bucketed run crashes where the point's own
does not (the check falls back then, so that is a cost, not a soundness issue, but
still worth seeing).

``tests/test_numeric_bucket_fuzz.py`` runs a few kernels;
``benchmarks/fuzz_soak.py --buckets K`` runs many more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._desc import KernelDesc, build
from ._problem import Problem

__all__ = ["BucketReport", "bucket_differential", "flagged"]


@dataclass
class BucketReport:
    source: str
    points: list = field(default_factory=list)  # the points compared (bucketed and own)
    bucketed: bool = False  # whether the points shared a bucket at all
    flagged: int = 0  # points whose own run flags something (the defects exercised)
    gradients: int = 0  # points whose gradients were compared
    problems: list[Problem] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([*(str(p) for p in self.problems), "spec:", self.source])


def flagged(flags) -> set:
    """The check sites with a non-zero count: ``(kind, tensor, source line)``."""
    out = set()
    for r in flags.records:
        if int(np.asarray(r.count)):
            site = r.info.site
            out.add((r.info.kind, r.info.tensor, None if site is None else site.line))
    return out


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _kernel(desc) -> tuple:
    """The kernel and source of a :class:`KernelDesc`, a ring description or a kernel."""
    from ..spec import Kernel

    if isinstance(desc, Kernel):
        return desc, f"{desc.name} ({desc.location})"
    if isinstance(desc, KernelDesc):
        kern, src, _ = build(desc)
        return kern, src
    from ._ring import _build

    return _build(desc)


def ring_points(d) -> list[dict]:
    """The rank counts a ring description admits, as size points."""
    return [{"n": n} for n in range(max(1, d.min_n), d.box + 1)]


def _own_gradients(kern, env, primal: dict, rest: dict, cot: dict) -> dict:
    """``vjp`` of the point's own executor (zero poison, as the check's gradient run)."""
    import jax
    import jax.numpy as jnp

    from ..verify.numeric._execute import executor, run_compiled

    fn = executor(kern, env, poison="zero", detail=False)

    def grads(primal, rest, cot):
        def f(d):
            out = fn({**rest, **d})[0]
            return {n: out[n] for n in cot}

        out, pull = jax.vjp(f, primal)
        return pull({n: cot[n].astype(out[n].dtype) for n in out})[0]

    return run_compiled(jax.jit(grads), primal, rest, {n: jnp.asarray(c) for n, c in cot.items()})


def _close(a, b) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-5, equal_nan=True))


def bucket_differential(
    desc, points: list[dict], seed: int = 0, variant: int = 0, gradients: bool = False
) -> BucketReport:
    """Run ``desc``'s kernel (a :class:`KernelDesc` or a ring description) at ``points`` in
    their bucket and on their own; compare.

    The inputs of each point are drawn once (:func:`~tileproof.verify.numeric._inputs.draw_inputs`
    with ``variant``: the index tensors' extremes alternate) and fed to both runs.  Both runs
    are counts-only with NaN poison, so the flagged check sites and the outputs (NaN where
    unwritten) must be the same; the bucket keeps outputs only on the real region.
    ``gradients``: at a point whose own run is clean (where the check takes gradients), also
    the bucket's ``vjp`` of the floating outputs against the point's own, for one random
    cotangent (equal within float tolerance: the summation order may differ)."""
    import jax

    from ..verify.numeric._bucket import buckets_for
    from ..verify.numeric._execute import executor, run_compiled
    from ..verify.numeric._inputs import draw_inputs

    kern, src = _kernel(desc)
    rep = BucketReport(src)
    buckets = buckets_for(kern, points)
    for i, env in enumerate(points):
        b = buckets.get(tuple(sorted(env.items())))
        if b is None:
            continue
        try:
            inputs = draw_inputs(kern, env, np.random.default_rng([seed, i]), variant + i)
        except ValueError:  # no admissible index values at this point
            continue
        try:
            with jax.default_matmul_precision("highest"):
                own, own_flags = run_compiled(executor(kern, env, detail=False), inputs)
        except Exception:  # the point's own run refuses (unsupported): the check reports that
            own, own_flags = None, None
        try:
            with jax.default_matmul_precision("highest"):
                outs, ok = b.forward(env, inputs)
            got = flagged(b.last_flags)
        except Exception as e:
            if own is not None:
                rep.problems.append(
                    Problem("error", None, f"bucketed run: {type(e).__name__}: {e}", env)
                )
            continue
        rep.bucketed = True
        rep.points.append(env)
        if own is None:
            if ok:
                rep.problems.append(
                    Problem("disagreement", None, "bucketed run clean, own run refused", env)
                )
            continue
        want = flagged(own_flags)
        rep.flagged += bool(want)
        if got != want or ok != own_flags.ok:
            rep.problems.append(
                Problem(
                    "disagreement",
                    ("flags",),
                    f"bucketed run flags {sorted(got, key=str)}, own run {sorted(want, key=str)}",
                    env,
                )
            )
        for n in kern.outputs:
            if not _same(outs[n], own[n]):
                rep.problems.append(
                    Problem(
                        "disagreement",
                        ("output", n),
                        f"output {n}: bucketed {np.asarray(outs[n]).tolist()}"
                        f" own {np.asarray(own[n]).tolist()}",
                        env,
                    )
                )
        if gradients and not want:
            _compare_gradients(rep, kern, b, env, inputs, seed, i)
    return rep


def _compare_gradients(rep, kern, b, env, inputs, seed: int, i: int) -> None:
    import jax

    floats = [n for n in kern.inputs if np.asarray(inputs[n]).dtype.kind == "f"]
    outs = [n for n in kern.outputs if kern.tensors[n].dtype.startswith(("float", "bfloat"))]
    if not floats or not outs:
        return
    rng = np.random.default_rng([seed, i, 1])
    shapes = {n: b.points[tuple(sorted(env.items()))].plan.shapes[n] for n in outs}
    cot = {n: rng.standard_normal(shapes[n]).astype(np.float32) for n in outs}
    primal = {n: inputs[n] for n in floats}
    rest = {n: inputs[n] for n in kern.inputs if n not in floats}
    with jax.default_matmul_precision("highest"):
        got = b.gradients(env, primal, rest, cot)
        want = _own_gradients(kern, env, primal, rest, cot)
    rep.gradients += 1
    for n in floats:
        if not _close(got[n], want[n]):
            rep.problems.append(
                Problem(
                    "disagreement",
                    ("gradient", n),
                    f"d{n}: bucketed {np.asarray(got[n]).tolist()}"
                    f" own {np.asarray(want[n]).tolist()}",
                    env,
                )
            )


def bucket_cases(constructs=None, ring: bool = False):
    """Hypothesis strategy of ``(desc, points, variant)``: a generated kernel (correct
    skeletons and perturbed ones alike, :func:`~._gen.kernels`), two or three of its
    admissible size points in a random order (the bucket is their per-dimension maximum,
    so the smaller ones run padded) and an input variant.  Kernels with fewer than two
    points are drawn again.  ``ring=True``: ring kernels (:func:`~._ring.ring_kernels`,
    perturbed), the rank count the size that varies."""
    from hypothesis import strategies as st

    from ._check import size_points
    from ._gen import CONSTRUCTS, kernels
    from ._ring import ring_kernels

    def points(d) -> list[dict]:
        return ring_points(d) if ring else size_points(d)

    source = (
        ring_kernels(perturb=True)
        if ring
        else kernels(CONSTRUCTS if constructs is None else constructs)
    )

    @st.composite
    def cases(draw):
        desc = draw(source.filter(lambda d: len(points(d)) >= 2))
        pts = points(desc)
        k = draw(st.integers(2, min(3, len(pts))))
        idx = draw(st.lists(st.integers(0, len(pts) - 1), min_size=k, max_size=k, unique=True))
        return desc, [pts[j] for j in idx], draw(st.integers(0, 3))

    return cases()
