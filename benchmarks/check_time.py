"""Wall time of the main job, ``tileproof check`` on the bundled catalog, cold and warm.

Each run is a fresh process (what a user or CI starts), in a scratch working
directory whose caches start empty: the proof cache, the numeric result cache
and JAX's persistent compilation cache all live under it
(``TILEPROOF_CACHE_DIR`` points there), so the first run is *cold* — every
obligation proved, every numeric point compiled and run — and the next ones
are *warm*: nothing in the catalog changed, so every kernel is answered from
the caches.  Interpreter start and imports are included.

Usage: ``python benchmarks/check_time.py [TARGET ...] [--repeat N] [--static]``
(no target: the bundled catalog).  Targets (issue 13): cold under 60 s on the
2-core machine, warm under 10 s, cold under 30 s on the H200.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLD_TARGET_S = 60.0
WARM_TARGET_S = 10.0


def timed(cmd: list[str], cwd: str, env: dict) -> tuple[float, int, str, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t0, done.returncode, done.stdout, done.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="paths or modules (default: the bundled catalog)")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs (the median is printed)")
    ap.add_argument("--static", action="store_true", help="static proofs only (the hook's job)")
    args = ap.parse_args()
    exe = shutil.which("tileproof", path=os.path.dirname(sys.executable)) or shutil.which(
        "tileproof"
    )
    base = [exe] if exe else [sys.executable, "-m", "tileproof.cli"]
    targets = [str(Path(t).resolve()) if os.path.exists(t) else t for t in args.targets]
    cmd = [*base, "check", "--format", "json", *(["--static"] if args.static else []), *targets]
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, TILEPROOF_CACHE_DIR=str(Path(scratch) / ".tileproof_cache"))
        cold, rc_cold, out, err = timed(cmd, scratch, env)
        warm_runs = [timed(cmd, scratch, env) for _ in range(max(args.repeat, 1))]
    try:
        report = json.loads(out)
    except ValueError:
        print(f"tileproof check did not print a JSON report (exit {rc_cold}):\n{out}\n{err}")
        return 1
    warm = statistics.median(t for t, *_ in warm_runs)
    rc_warm = warm_runs[-1][1]
    what = " ".join(args.targets) if args.targets else "the bundled catalog"
    print(f"tileproof check {'--static ' if args.static else ''}on {what}: "
          f"{len(report['kernels'])} kernel(s), {os.cpu_count()} CPU(s)")
    print(f"  cold (empty caches)        {cold:6.1f} s   exit {rc_cold}   "
          f"target < {COLD_TARGET_S:.0f} s: {'met' if cold < COLD_TARGET_S else 'NOT met'}")
    print(f"  warm (median of {len(warm_runs)})        {warm:6.1f} s   exit {rc_warm}   "
          f"target < {WARM_TARGET_S:.0f} s: {'met' if warm < WARM_TARGET_S else 'NOT met'}")
    print("  per kernel (cold run): lowering / static / numeric seconds")
    for k in report["kernels"]:
        t = k.get("timings", {})
        num = k.get("numeric") or {}
        print(f"    {k['name']:34s} {t.get('lowering_s', float('nan')):6.2f} "
              f"{t.get('static_s', float('nan')):6.2f} {t.get('numeric_s', float('nan')):6.2f}"
              f"   numeric {num.get('status', '-')}, {len(num.get('sizes') or [])} point(s)")
    return 0 if rc_cold in (0, 1) else rc_cold


if __name__ == "__main__":
    sys.exit(main())
