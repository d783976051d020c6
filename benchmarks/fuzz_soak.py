"""Soak the verifier with random small kernels: static verdicts against brute-force runs.

    python benchmarks/fuzz_soak.py --kernels 2000 --seed 1 [--executor K] [--ring R]
    python benchmarks/fuzz_soak.py --kernels 0 --buckets 500 --bucket-rings 100 --seed 1

Draws ``--kernels`` kernels from :func:`tileproof.fuzz.kernels`, checks every
static obligation of each against the concrete runs of its description at
every size point with all sizes <= 6 (and, with ``--executor K``, the numeric
executor's flags at ``K`` points per kernel; with ``--ring R`` also ``R`` ring
kernels against a simulation of their traffic), prints every problem with the
rendered spec, and ends with exactly one line::

    N kernels, K obligations, U unsound

(``irreproducible`` counterexamples, executor disagreements and verifier
crashes are listed above it and counted on a line of their own.)

``--buckets K`` (and ``--bucket-rings R``) also runs the numeric buckets' differential
(:mod:`tileproof.fuzz._buckets`): ``K`` generated kernels
(``R`` ring kernels) at two or three size points each, every point run in the
points' shared bucket and on its own; a difference in the flagged check sites or the
outputs is printed with the spec, and the run ends with the line::

    buckets: K kernels, P points compared (F flagged by their own run), D disagreements
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _soak(n: int, seed: int, strategy, check, quiet: bool) -> dict:
    """Draw ``n`` descriptions from ``strategy``, run ``check`` on each, tally the reports."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    tally = {"kernels": 0, "obligations": 0, "judged": 0, "unsound": 0, "other": 0, "points": 0}
    if n <= 0:
        return tally

    @hseed(seed)
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(strategy)
    def soak(desc):
        rep = check(desc)
        tally["kernels"] += 1
        tally["obligations"] += len(rep.obligations)
        tally["judged"] += rep.judged
        tally["points"] += rep.points
        tally["unsound"] += len(rep.unsound)
        tally["other"] += len(rep.problems) - len(rep.unsound)
        if rep.problems and not quiet:
            print("=" * 78)
            print(rep.text(), flush=True)

    soak()
    return tally


def _bucket_soak(n: int, seed: int, strategy, quiet: bool) -> dict:
    """Draw ``n`` bucket cases, compare each point's bucketed run with its own run."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from tileproof.fuzz._buckets import bucket_differential

    tally = {"kernels": 0, "bucketed": 0, "points": 0, "flagged": 0, "bad": 0, "errors": 0}
    if n <= 0:
        return tally

    @hseed(seed)
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(strategy)
    def soak(case):
        desc, points, variant = case
        rep = bucket_differential(desc, points, seed=seed, variant=variant)
        tally["kernels"] += 1
        tally["bucketed"] += rep.bucketed
        tally["points"] += len(rep.points)
        tally["flagged"] += rep.flagged
        tally["bad"] += sum(p.what == "disagreement" for p in rep.problems)
        tally["errors"] += sum(p.what != "disagreement" for p in rep.problems)
        if rep.problems and not quiet:
            print("=" * 78)
            print(f"points {points} variant {variant}")
            print(rep.text(), flush=True)

    soak()
    return tally


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernels", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--executor",
        type=int,
        default=0,
        help="also run the numeric executor at this many size points per kernel",
    )
    ap.add_argument("--ring", type=int, default=0, help="also this many ring kernels")
    ap.add_argument(
        "--buckets",
        type=int,
        default=0,
        help="also this many kernels through the numeric buckets' differential",
    )
    ap.add_argument(
        "--bucket-rings", type=int, default=0, help="and this many ring kernels through it"
    )
    ap.add_argument("--without", default="", help="comma-separated constructs to leave out")
    ap.add_argument("--quiet", action="store_true", help="only the summary lines")
    args = ap.parse_args(argv)
    from hypothesis import Phase  # noqa: F401  (fail early without hypothesis)

    from tileproof.fuzz._gen import CONSTRUCTS

    constructs = CONSTRUCTS - {c for c in args.without.split(",") if c}
    t0 = time.perf_counter()
    from tileproof.fuzz import differential, kernels
    from tileproof.fuzz._ring import differential_ring, ring_kernels

    t = _soak(
        args.kernels,
        args.seed,
        kernels(constructs),
        lambda d: differential(d, executor=args.executor or False, seed=args.seed),
        args.quiet,
    )
    r = _soak(args.ring, args.seed, ring_kernels(), differential_ring, args.quiet)
    for k in t:
        t[k] += r[k]
    b = None
    if args.buckets or args.bucket_rings:
        from tileproof.fuzz._buckets import bucket_cases

        b = _bucket_soak(args.buckets, args.seed, bucket_cases(constructs), args.quiet)
        br = _bucket_soak(args.bucket_rings, args.seed, bucket_cases(ring=True), args.quiet)
        for k in b:
            b[k] += br[k]
    secs = time.perf_counter() - t0
    if b is not None:
        print(
            f"buckets: {b['kernels']} kernels, {b['points']} points compared "
            f"({b['flagged']} flagged by their own run), {b['bad']} disagreements"
            + (f", {b['errors']} bucketed runs failed" if b["errors"] else "")
        )
    print(
        f"# {t['judged']} obligations judged over {t['points']} runs in {secs:.0f} s; "
        f"{t['other']} other findings (irreproducible, disagreements, crashes)"
    )
    print(f"{t['kernels']} kernels, {t['obligations']} obligations, {t['unsound']} unsound")
    return 1 if t["unsound"] or (b is not None and b["bad"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
