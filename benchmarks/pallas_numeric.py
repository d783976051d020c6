"""JAX's own Pallas GPU kernels, unmodified: tileproof's executor vs Pallas interpret mode vs compiled.

For each kernel and grid size, in one run: (a) the function with every ``pallas_call``
executed by tileproof's vectorised executor (``tileproof.pallas.function_runner``: programs
vmapped, poisoned memory, out-of-bounds and race flags), (b) the same function with
``interpret=True`` (Pallas' interpret mode), (c) the compiled kernel where JAX has a GPU,
and (d) the kernel file's own plain-JAX reference (no Pallas at all: the floor of what any
executor of the same arithmetic costs on the device).  All jit-compiled and warmed up;
median of ``--reps`` interleaved runs, ms: wall time, or with ``--cpu-time`` the process'
CPU time (steadier on a shared machine; interpret mode runs its programs one after the
other, so it is the more favourable measure for interpret mode).  The results of (a) are
checked against (b) and the flags must be clean.

    python benchmarks/pallas_numeric.py [--reps 5] [--grids 64,128,256,512] [--device cpu|gpu]
                                        [--cpu-time]
    python benchmarks/pallas_numeric.py --table   # the README's per-kernel table (static + numeric)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
import warnings

import jax
import numpy as np

with warnings.catch_warnings():  # JAX 0.11 deprecates these files (tokamax); they still ship
    warnings.filterwarnings("ignore", "jax.experimental.pallas.ops.gpu", DeprecationWarning)
    from jax.experimental.pallas.ops.gpu import decode_attention, layer_norm, softmax

import tileproof as tp
from tileproof.pallas import function_runner

A = tp.Arg


def _cases(grids):
    """(name, fn taking interpret=, args, sizes per grid, programs per grid, reference)."""
    out = []
    for g in grids:  # one program per row
        out.append(
            (
                "softmax [B, 1000]",
                softmax.softmax,
                [A(("B", 1000))],
                {"B": g},
                g,
                lambda x: jax.nn.softmax(x, axis=-1),
            )
        )
    for g in grids:  # one program per (b, s) row
        out.append(
            (
                "layer_norm [B, 8, 512]",
                layer_norm.layer_norm,
                [A(("B", 8, 512)), A((512,)), A((512,))],
                {"B": g // 8},
                g,
                layer_norm.layer_norm_reference,
            )
        )
    for g in grids:  # grid (B, cdiv(H, 16), k_splits=16)
        out.append(
            (
                "mqa [B, 16, 64] kv 1024",
                decode_attention.mqa,
                [A(("B", 16, 64)), A(("B", 1024, 64)), A(("B", 1024, 64))],
                {"B": g // 16},
                g,
                decode_attention.mqa_reference,
            )
        )
    return out


def _times(fns, args, reps, clock=time.perf_counter):
    for f in fns:
        jax.block_until_ready(f(*args))
    ts = [[] for _ in fns]
    for _ in range(reps):
        for f, t in zip(fns, ts):
            t0 = clock()
            jax.block_until_ready(f(*args))
            t.append(clock() - t0)
    return [statistics.median(t) for t in ts]


def table(budget: int = 2) -> None:
    """Static verdicts, static time and numeric result of every kernel of examples/pallas/jax_gpu.py."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "pallas", "jax_gpu.py")
    spec = importlib.util.spec_from_file_location("pallas_jax_gpu", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    print("| kernel | proved | violated | unknown | static s | numeric (sizes) | numeric s |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for k in mod.KERNELS:
        t0 = time.perf_counter()
        (st,) = tp.verify.verify(k).kernels
        t_static = time.perf_counter() - t0
        count = {
            s: sum(o.status == s for o in st.obligations) for s in ("proved", "violated", "unknown")
        }
        (nm,) = tp.verify.verify(k, numeric=True, numeric_options={"budget": budget}).kernels
        res = nm.numeric
        versus = "interpret" if getattr(k.reference, "interpret_mode", False) else "reference"
        sizes = "; ".join(",".join(f"{a}={b}" for a, b in env.items()) for env in res.sizes)
        err = f", err {res.max_abs_err:.1e}" if res.max_abs_err is not None else ""
        print(
            f"| {k.name} | {count['proved']} | {count['violated']} | {count['unknown']} | "
            f"{t_static:.2f} | {res.status} vs {versus}{err} ({sizes}) | {res.seconds:.0f} |",
            flush=True,
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--grids", default="64,128,256,512")
    ap.add_argument("--device", default=None)
    ap.add_argument("--only", default="", help="substring of the kernel names to run")
    ap.add_argument("--table", action="store_true", help="the per-kernel table of the README")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the process' CPU time instead of wall time (a shared machine)",
    )
    args = ap.parse_args(argv)
    if args.table:
        table()
        return 0
    if args.device:
        jax.config.update("jax_platforms", {"gpu": "cuda"}.get(args.device, args.device))
    dev = jax.devices()[0]
    gpu = dev.platform == "gpu"
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(
        f"jax {jax.__version__} on {dev.platform} ({dev.device_kind}), "
        f"{'CPU' if args.cpu_time else 'wall'} ms, medians of {args.reps}"
    )
    print(
        f"{'kernel':<26} {'programs':>8} {'tileproof':>10} {'interpret':>10} {'compiled':>9} "
        f"{'reference':>9} {'int/tp':>7} {'tp/ref':>6}  check"
    )
    rng = np.random.default_rng(0)
    worst = {}
    for name, fn, fargs, env, progs, reference in _cases([int(g) for g in args.grids.split(",")]):
        if args.only and args.only not in name:
            continue
        vals = [
            jax.numpy.asarray(
                rng.standard_normal(
                    tuple(tp.shapes.as_expr(d).evaluate(env) for d in a.shape)
                ).astype(np.float32)
            )
            for a in fargs
        ]
        run = function_runner(fn, None, fargs, env)
        tp_fn = jax.jit(lambda *v, run=run: run(*v, findings=False))  # flags included
        int_fn = jax.jit(functools.partial(fn, interpret=True))
        fns = [tp_fn, int_fn, jax.jit(reference)] + ([jax.jit(fn)] if gpu else [])
        ts = _times(fns, vals, args.reps, clock)
        with jax.default_matmul_precision("highest"):
            got, findings = run(*vals)
            want = int_fn(*vals)
        want = want if isinstance(want, (tuple, list)) else [want]
        ok = not findings and all(
            np.allclose(g, w, rtol=1e-4, atol=1e-4) for g, w in zip(got, want)
        )
        t_c = ts[3] * 1e3 if gpu else float("nan")
        ratio = ts[1] / ts[0]
        worst[name] = min(worst.get(name, ratio), ratio)
        print(
            f"{name:<26} {progs:>8} {ts[0] * 1e3:>10.2f} {ts[1] * 1e3:>10.1f} {t_c:>9.3f} "
            f"{ts[2] * 1e3:>9.2f} {ratio:>7.1f} {ts[0] / ts[2]:>6.1f}  "
            f"{'ok' if ok else 'MISMATCH ' + '; '.join(findings)[:200]}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
