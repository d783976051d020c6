"""Print, for each catalog kernel, which sides of its conditions the numeric run covered.

Each branch/``when`` condition and access mask of the model, with its source line, and
whether some program of the numeric run evaluated it true, false and at its boundary
(``-``: not covered, ``/``: no admissible point reaches that side, ``?``: a run too
large to replay).  Run: ``python
benchmarks/condition_coverage.py [KERNEL ...]`` (default: every catalog kernel).
"""

from __future__ import annotations

import sys
import time

from tileproof import catalog
from tileproof.verify.numeric import check_numeric


def _mark(c: dict, side: str) -> str:
    """x: covered, -: not covered, /: no admissible point reaches it, ?: unknown."""
    v = c[side]
    if side in c.get("impossible", ()):
        return "/"
    return "?" if v is None else ("x" if v else "-")


def main(names: list[str]) -> None:
    for k in catalog.KERNELS:
        if names and k.name not in names:
            continue
        t0 = time.perf_counter()
        res = check_numeric(k)
        conds = res.detail.get("conditions") or []
        full = sum(
            1 for c in conds if all(c[s] or s in c.get("impossible", ()) for s in ("true", "false"))
        )
        print(
            f"{k.name}: numeric {res.status}, {len(res.sizes)} points, "
            f"{full}/{len(conds)} conditions seen both ways (where possible) "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        for c in conds:
            loc = c["location"].rsplit("/", 1)[-1]
            print(
                f"  T{_mark(c, 'true')} F{_mark(c, 'false')} B{_mark(c, 'boundary')}  "
                f"{loc:<24} {c['condition'][:90]}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
