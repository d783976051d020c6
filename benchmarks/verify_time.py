"""Static verification time per kernel, and symbolic proof vs brute-force enumeration.

Prints, for each kernel (a few reference kernels defined here, and every kernel
``tileproof.catalog`` exposes in ``KERNELS`` or its modules' ``SPECS``), the
lowering time and the static check time (median of 5 runs, solver caches
cleared before each), the solver's share and the verdict counts.  Then, for
one kernel, the time of the *same* bounds check done by brute force over every
concrete size up to a bound, next to the symbolic proof for all sizes up to
that bound: the proof time stays flat while enumeration grows.

    python benchmarks/verify_time.py [--runs 5] [--only NAME] [--no-catalog]
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import statistics
import sys
import time
from pathlib import Path

import tileproof.spec as tp
from tileproof import model as interp
from tileproof.lowering import lower
from tileproof.verify.static import check_static_timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from specs.kernels import closed_ring, tiles
from specs.kernels import paged as paged_kernel


def _clear_caches() -> None:
    try:
        from tileproof.shapes._decide import clear_caches
    except ImportError:  # pragma: no cover - older shapes layer
        return
    clear_caches()


# ------------------------------------------------------------------- reference kernels


# the kernels the tests prove (tests/specs/kernels.py), timed here as they are proved there
paged = paged_kernel("2**14")
ring = closed_ring()


@tp.kernel(
    grid={"core": 24},
    launch=tp.Launch(cores=24, start="together"),
    tensors=dict(
        x=tp.Input((24 * 8, 128)), s=tp.Scratch((24 * 8, 128)), y=tp.Output((24 * 8, 128))
    ),
)
def phases(x, s, y):
    core = tp.program_id(0)
    with tp.lanes(2, halve=0) as lane:
        t = tp.lane_part(tp.load(x, (tp.ds(core * 8, 8), slice(None))), axis=0)
        tp.store(s, (tp.ds(core * 8 + lane * 4, 4), slice(None)), t)
    tp.barrier("grid")
    nxt = (core + 1) % 24
    tp.store(y, (tp.ds(core * 8, 8), slice(None)), tp.load(s, (tp.ds(nxt * 8, 8), slice(None))))


def kernels(catalog: bool) -> list:
    out = [paged, tiles(), ring, phases]
    if not catalog:
        return out
    try:
        cat = importlib.import_module("tileproof.catalog")
    except ImportError:
        return out
    found = list(getattr(cat, "KERNELS", []) or [])
    for m in pkgutil.iter_modules(cat.__path__):
        if m.name in ("references", "bugs") or m.name.startswith("_"):
            continue
        try:
            mod = importlib.import_module(f"tileproof.catalog.{m.name}")
        except Exception as e:
            print(f"  (skipping tileproof.catalog.{m.name}: {type(e).__name__}: {e})")
            continue
        found += list(getattr(mod, "SPECS", ()) or ())
    seen = {id(k) for k in out}
    for k in found:
        if id(k) not in seen:
            seen.add(id(k))
            out.append(k)
    return out


# --------------------------------------------------------------------------- timings


def time_kernel(kernel, runs: int) -> tuple[float, float, float, dict]:
    lows, checks, solves = [], [], []
    counts: dict = {}
    for _ in range(runs):
        _clear_caches()
        t0 = time.perf_counter()
        model = lower(kernel)
        t1 = time.perf_counter()
        obs, solver = check_static_timed(model)
        t2 = time.perf_counter()
        lows.append(t1 - t0)
        checks.append(t2 - t1)
        solves.append(solver)
        counts = {}
        for o in obs:
            counts[o.status] = counts.get(o.status, 0) + 1
    return statistics.median(lows), statistics.median(checks), statistics.median(solves), counts


def brute_force_bounds(limit: int) -> float:
    """Every access of ``tiles`` checked element by element for every N in [1, limit]."""
    model = lower(tiles(limit=str(limit)))
    t0 = time.perf_counter()
    for n in range(1, limit + 1):
        sizes = {"N": n}
        for ev in interp.events(model, sizes, budget=10**9):
            acc = ev.node
            shape = [d.evaluate(sizes) for d in model.tensors[acc.tensor].shape]
            for el in interp.touched(acc, ev.env):
                assert all(0 <= e < s for e, s in zip(el, shape)), (n, el)
    return time.perf_counter() - t0


def symbolic_bounds(limit: int, runs: int) -> float:
    model = lower(tiles(limit=str(limit)))
    times = []
    for _ in range(runs):
        _clear_caches()
        t0 = time.perf_counter()
        obs, _ = check_static_timed(model, kinds=("shape", "bounds"))
        times.append(time.perf_counter() - t0)
        assert all(o.status == "proved" for o in obs if o.kind == "bounds")
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-catalog", action="store_true")
    args = ap.parse_args()

    print(f"static verification, median of {args.runs} runs (solver caches cleared each run)")
    print(f"{'kernel':36} {'lower':>8} {'check':>8} {'solver':>8}  verdicts")
    for k in kernels(not args.no_catalog):
        if args.only and args.only not in k.name:
            continue
        try:
            low, check, solver, counts = time_kernel(k, args.runs)
        except Exception as e:
            print(f"{k.name:36} error: {type(e).__name__}: {e}")
            continue
        verdicts = ", ".join(f"{v} {s}" for s, v in sorted(counts.items()))
        print(
            f"{k.name:36} {low * 1e3:7.1f}ms {check * 1e3:7.1f}ms {solver * 1e3:7.1f}ms  {verdicts}"
        )

    print()
    print("bounds of `tiles` (y[p*64 : p*64+64] masked to N): every N <= limit")
    print(f"{'limit':>8} {'brute force':>12} {'symbolic':>10}")
    for limit in (64, 128, 256, 512, 1024):
        bf = brute_force_bounds(limit)
        sym = symbolic_bounds(limit, args.runs)
        print(f"{limit:8d} {bf * 1e3:10.1f}ms {sym * 1e3:8.1f}ms")
    for limit in (2**16, 2**24, 2**31 - 64):
        sym = symbolic_bounds(limit, args.runs)
        print(f"{limit:8d} {'-':>12} {sym * 1e3:8.1f}ms")


if __name__ == "__main__":
    main()
