"""Wall time of the main job, ``tileproof check`` on the bundled catalog, cold and warm.

Each run is a fresh process (what a user or CI starts), in a scratch working
directory whose caches start empty: the proof cache, the numeric result cache
and JAX's persistent compilation cache all live under it
(``TILEPROOF_CACHE_DIR`` points there), so the first run is *cold* — every
obligation proved, every numeric point compiled and run — and the next ones
are *warm*: nothing in the catalog changed, so every kernel is answered from
the caches.  Interpreter start and imports are included.

Usage: ``python benchmarks/check_time.py [TARGET ...] [--repeat N] [--static]
[--cold N] [--against CHECKOUT]`` (no target: the bundled catalog).  Targets
(issue 13): cold under 60 s on the 2-core machine, warm under 10 s, cold under
30 s on the H200.

The command runs *this* checkout's ``tileproof`` (``python -m tileproof.cli``
with the checkout first on ``PYTHONPATH``), whatever the environment has
installed.  ``--against CHECKOUT`` measures another checkout (say, ``main``)
in the same run, cold runs alternating, and prints both with their ratio, per
kernel too: on a machine other jobs load, absolute seconds drift, ratios of
interleaved runs much less.  ``--cold N`` repeats the cold runs (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD_TARGET_S = 60.0
WARM_TARGET_S = 10.0


ROOT = Path(__file__).resolve().parents[1]


_CPU: dict[float, float] = {}  # wall seconds of a run -> its CPU seconds (children included)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cwd: str, env: dict) -> tuple[float, int, str, str]:
    """Wall seconds, exit, stdout, stderr; the run's CPU seconds (user + system of the
    process and the workers it waited for) are kept in ``_CPU`` under its wall time: on a
    machine other jobs load, CPU time drifts much less than wall time."""
    c0 = _children_cpu()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    _CPU[wall] = _children_cpu() - c0
    return wall, done.returncode, done.stdout, done.stderr


def _env(checkout: Path, cache: Path) -> dict:
    path = [str(checkout)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, TILEPROOF_CACHE_DIR=str(cache), PYTHONPATH=os.pathsep.join(path))


def _cold(cmd: list[str], checkout: Path, scratch: str) -> tuple[float, int, dict | None, str]:
    """One cold run of ``checkout``'s tileproof in the empty folder ``scratch`` (its caches)."""
    t, rc, out, err = timed(cmd, scratch, _env(checkout, Path(scratch) / ".tileproof_cache"))
    try:
        return t, rc, json.loads(out), err
    except ValueError:
        return t, rc, None, f"{out}\n{err}"


def _per_kernel(reports: list[dict]) -> dict[str, float]:
    """Median numeric seconds per kernel over the cold runs' reports."""
    runs: dict[str, list[float]] = {}
    for rep in reports:
        for k in rep["kernels"]:
            runs.setdefault(k["name"], []).append(k.get("timings", {}).get("numeric_s") or 0.0)
    return {n: statistics.median(v) for n, v in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="paths or modules (default: the bundled catalog)")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs (the median is printed)")
    ap.add_argument("--cold", type=int, default=1, help="cold runs (the median is printed)")
    ap.add_argument("--static", action="store_true", help="static proofs only (the hook's job)")
    ap.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="another checkout to measure in the same run (cold runs interleaved)",
    )
    args = ap.parse_args()
    base = [sys.executable, "-m", "tileproof.cli"]
    targets = [str(Path(t).resolve()) if os.path.exists(t) else t for t in args.targets]
    cmd = [*base, "check", "--format", "json", *(["--static"] if args.static else []), *targets]
    other = Path(args.against).resolve() if args.against else None
    mine, theirs = [], []
    with tempfile.TemporaryDirectory() as top:
        for _ in range(max(args.cold, 1)):
            if other is not None:
                theirs.append(_cold(cmd, other, tempfile.mkdtemp(dir=top)))
            scratch = tempfile.mkdtemp(dir=top)
            mine.append(_cold(cmd, ROOT, scratch))
        bad = [r for r in mine + theirs if r[2] is None]
        if bad:
            print(f"tileproof check did not print a JSON report (exit {bad[0][1]}):\n{bad[0][3]}")
            return 1
        # warm: the caches the last cold run of this checkout left
        env = _env(ROOT, Path(scratch) / ".tileproof_cache")
        warm_runs = [timed(cmd, scratch, env) for _ in range(max(args.repeat, 1))]
    cold = statistics.median(t for t, *_ in mine)
    rc_cold = mine[-1][1]
    report = mine[-1][2]
    warm = statistics.median(t for t, *_ in warm_runs)
    rc_warm = warm_runs[-1][1]
    what = " ".join(args.targets) if args.targets else "the bundled catalog"
    print(
        f"tileproof check {'--static ' if args.static else ''}on {what}: "
        f"{len(report['kernels'])} kernel(s), {os.cpu_count()} CPU(s), checkout {ROOT}"
    )
    print(
        f"  cold (empty caches, median of {len(mine)})  {cold:6.1f} s   exit {rc_cold}   "
        f"target < {COLD_TARGET_S:.0f} s: {'met' if cold < COLD_TARGET_S else 'NOT met'}"
    )
    cpu = statistics.median(_CPU.get(t, float("nan")) for t, *_ in mine)
    print(f"  cold CPU time (user + system, median)  {cpu:6.1f} s")
    print(
        f"  warm (median of {len(warm_runs)})              {warm:6.1f} s   exit {rc_warm}   "
        f"target < {WARM_TARGET_S:.0f} s: {'met' if warm < WARM_TARGET_S else 'NOT met'}"
    )
    if other is not None:
        before = statistics.median(t for t, *_ in theirs)
        print(
            f"  cold of {other} (interleaved)  {before:6.1f} s   exit {theirs[-1][1]}   "
            f"ratio this/that {cold / before:5.2f}"
        )
        cpu_then = statistics.median(_CPU.get(t, float("nan")) for t, *_ in theirs)
        print(
            f"  cold CPU time of {other}        {cpu_then:6.1f} s   "
            f"ratio this/that {cpu / cpu_then:5.2f}"
        )
    print("  per kernel (cold run): lowering / static / numeric seconds")
    for k in report["kernels"]:
        t = k.get("timings", {})
        num = k.get("numeric") or {}
        print(
            f"    {k['name']:34s} {t.get('lowering_s', float('nan')):6.2f} "
            f"{t.get('static_s', float('nan')):6.2f} {t.get('numeric_s', float('nan')):6.2f}"
            f"   numeric {num.get('status', '-')}, {len(num.get('sizes') or [])} point(s)"
        )
    if other is not None:
        now, then = _per_kernel([r[2] for r in mine]), _per_kernel([r[2] for r in theirs])
        print("  numeric seconds per kernel, medians: this / that = ratio")
        for n, s in now.items():
            b = then.get(n)
            ratio = f"{s / b:5.2f}" if b else "    -"
            print(f"    {n:34s} {s:7.1f} / {b if b is not None else float('nan'):7.1f} = {ratio}")
    return 0 if rc_cold in (0, 1) else rc_cold


if __name__ == "__main__":
    sys.exit(main())
