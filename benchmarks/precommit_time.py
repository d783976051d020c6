"""Wall time of the pre-commit hook: ``tileproof check --static``, cold and warm, as a new process.

Each run is a fresh interpreter (what pre-commit starts), in a scratch working
directory so the proof cache starts empty: the first run proves everything
(cold), the next ones find every decided kernel in ``.tileproof_cache/`` (warm).
Interpreter start and imports are included — they are most of a warm run.

Usage: ``python benchmarks/precommit_time.py [TARGET ...] [--repeat N]``
(no target: the bundled catalog, as the hook's default ``tileproof check`` does).
Target: a warm run under 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 5.0


def timed(cmd: list[str], cwd: str) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, done.returncode, done.stdout + done.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="paths or modules (default: the bundled catalog)")
    ap.add_argument("--repeat", type=int, default=3, help="warm runs (the median is printed)")
    args = ap.parse_args()
    exe = shutil.which("tileproof", path=os.path.dirname(sys.executable)) or shutil.which(
        "tileproof"
    )
    base = [exe] if exe else [sys.executable, "-m", "tileproof.cli"]
    targets = [str(Path(t).resolve()) if os.path.exists(t) else t for t in args.targets]
    cmd = [*base, "check", "--static", *targets]
    with tempfile.TemporaryDirectory() as scratch:
        start, _, _ = timed([sys.executable, "-c", "pass"], scratch)
        version, _, _ = timed([*base, "--version"], scratch)
        cold, rc_cold, out = timed(cmd, scratch)
        warm_runs = [timed(cmd, scratch) for _ in range(max(args.repeat, 1))]
        _, _, json_out = timed([*base, "check", "--static", "--format", "json", *targets], scratch)
    import json

    try:
        kernels = json.loads(json_out)["summary"]["kernels"]
    except (ValueError, KeyError):
        kernels = "?"
    warm = statistics.median(t for t, _, _ in warm_runs)
    rc_warm = warm_runs[-1][1]
    what = " ".join(args.targets) if args.targets else "the bundled catalog"
    print(f"tileproof check --static on {what}: {kernels} kernel(s), {os.cpu_count()} CPU(s)")
    print(f"  python -c pass             {start:6.2f} s")
    print(f"  tileproof --version        {version:6.2f} s")
    print(f"  cold (empty proof cache)   {cold:6.2f} s   exit {rc_cold}")
    print(
        f"  warm (median of {len(warm_runs)})        {warm:6.2f} s   exit {rc_warm}   "
        f"target < {TARGET_S:.0f} s: {'met' if warm < TARGET_S else 'NOT met'}"
    )
    if rc_cold == 2:
        print("\n" + out.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
