"""JAX's own Pallas TPU kernels, unmodified, on this machine: tileproof's executor vs interpret mode.

For each kernel and grid size, in one run: (a) the function with every ``pallas_call``
executed by tileproof's vectorised executor with the TPU rules (``function_runner``:
programs vmapped, VMEM block copies with poisoned padding, write-back on block change,
out-of-bounds and race flags, counted in the timed run), (b) the same calls in Pallas'
interpret mode (the ``pallas_call`` equations re-bound with ``interpret=True``).  Both
jit-compiled as a whole and warmed up; median of ``--reps`` interleaved runs, ms: wall
time, or with ``--cpu-time`` the process' CPU time (steadier on a shared machine).  (a) is
checked against (b) and its flags must be clean.  "iterations" counts grid points
(programs times the iterations of their arbitrary axes).

    python benchmarks/pallas_tpu_numeric.py [--reps 3] [--iters 8,64,512] [--cpu-time]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np
from jax.experimental.pallas.ops.tpu import flash_attention as fa
from jax.experimental.pallas.ops.tpu import matmul as mm

import tileproof as tp
from tileproof.pallas import function_runner
from tileproof.pallas._numeric import _concrete_args
from tileproof.pallas._read import _CALLS

A = tp.Arg


def _cases(iters):
    """(name, fn, args, static, sizes) with ``iters`` grid points each."""
    out = []
    for n in iters:  # grid (M/128, N/128, K/128): M = N = 128, K = 128 * n
        out.append(
            (
                f"matmul 128x{128 * n}x128",
                mm.matmul,
                [A((128, "128*K")), A(("128*K", 128))],
                dict(block_shape=(128, 128), block_k=128),
                {"K": n},
            )
        )
    for n in iters:  # grid (B, H, S) with S kv blocks each: B*H*S*S points; H = n // 4, S = 2
        h = max(n // 4, 1)
        out.append(
            (
                f"flash_attention [1, {h}, 256, 128]",
                fa.flash_attention,
                [A((1, "H", 256, 128))] * 3,
                {},
                {"H": h},
            )
        )
    return out


def _interpreted(fn, static, args, env):
    """``fn`` at sizes ``env`` with every pallas_call in Pallas' interpret mode."""
    import functools

    f = functools.partial(fn, **dict(static or {}))
    closed = jax.make_jaxpr(f)(*_concrete_args(args, env))

    def ev(jaxpr, consts, vals):
        env_ = dict(zip(jaxpr.constvars, consts))
        env_.update(zip(jaxpr.invars, vals))
        for eqn in jaxpr.eqns:
            ins = [x.val if hasattr(x, "val") else env_[x] for x in eqn.invars]
            params = dict(eqn.params)
            if eqn.primitive.name == "pallas_call":
                params["interpret"] = True
            elif eqn.primitive.name in _CALLS:  # forward only: evaluate the inner jaxpr
                inner = params.get("jaxpr") or params.get("call_jaxpr") or params.get("fun_jaxpr")
                jx = inner.jaxpr if hasattr(inner, "jaxpr") else inner
                res = ev(jx, getattr(inner, "consts", []), ins)
                env_.update(zip(eqn.outvars, res))
                continue
            res = eqn.primitive.bind(*ins, **params)
            res = res if eqn.primitive.multiple_results else [res]
            env_.update(zip(eqn.outvars, res))
        return [x.val if hasattr(x, "val") else env_[x] for x in jaxpr.outvars]

    return lambda *xs: ev(closed.jaxpr, closed.consts, list(xs))


def _median_times(fns, args, reps, clock=time.perf_counter):
    for f in fns:
        jax.block_until_ready(f(*args))
    ts = [[] for _ in fns]
    for _ in range(reps):
        for f, t in zip(fns, ts):
            t0 = clock()
            jax.block_until_ready(f(*args))
            t.append(clock() - t0)
    return [statistics.median(t) for t in ts]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--iters", default="8,64,512")
    ap.add_argument("--only", default="", help="substring of the kernel names to run")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the process' CPU time instead of wall time (a shared machine)",
    )
    a = ap.parse_args(argv)
    iters = [int(x) for x in a.iters.split(",")]
    clock = time.process_time if a.cpu_time else time.perf_counter
    print(f"jax {jax.__version__}, {'CPU' if a.cpu_time else 'wall'} ms, medians of {a.reps}")
    print(
        f"{'kernel':40s} {'iters':>6s} {'tileproof ms':>13s} {'interpret ms':>13s} "
        f"{'speed-up':>9s}  result"
    )
    ok = True
    for name, fn, args, static, env in _cases(iters):
        if a.only and a.only not in name:
            continue
        rng = np.random.default_rng(0)
        vals = [
            jax.numpy.asarray(rng.standard_normal(s.shape), s.dtype)
            for s in _concrete_args(args, env)
        ]
        run = function_runner(fn, static, args, env)
        tp_fn = jax.jit(lambda *xs, run=run: run(*xs, findings=False))  # flags included
        it_fn = jax.jit(_interpreted(fn, static, args, env))
        t_tp, t_it = _median_times([tp_fn, it_fn], vals, a.reps, clock)
        got, findings = run(*vals)
        want = it_fn(*vals)
        err = max(
            float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))))
            for g, w in zip(got, want)
        )
        good = err <= 1e-3 and not findings
        ok &= good
        print(
            f"{name:40s} {env_iters(name, env):6d} {t_tp * 1e3:13.2f} {t_it * 1e3:13.2f} "
            f"{t_it / t_tp:8.1f}x  {'matched' if good else 'MISMATCH'} (max err {err:.1e}"
            f"{', flags: ' + '; '.join(findings) if findings else ''})",
            flush=True,
        )
    return 0 if ok else 1


def env_iters(name: str, env: dict) -> int:
    """Grid points of a case: matmul K blocks, flash attention H heads times 2 x 2 blocks."""
    return env["K"] if "matmul" in name else env["H"] * 4


if __name__ == "__main__":
    raise SystemExit(main())
