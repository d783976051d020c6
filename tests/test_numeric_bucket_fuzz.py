"""Bucketed numeric runs against each point's own run, on generated kernels.

The numeric check runs the points of a kernel in *buckets* (one compilation, tensors
padded to the largest extents, real sizes as data) and takes a clean bucketed run as
the point's answer.  If the bucket is clean where the point's own executor flags
something, or its outputs on the real region differ, a defect would be reported as
``matched``.  Each example draws a kernel from the fuzz generator (correct tilings and
perturbed ones: off-by-one bounds, dropped tails, races, loops, barriers, lanes, index
data), two or three of its size points, and compares both runs at every point
(:func:`tileproof.fuzz._buckets.bucket_differential`): the check sites with a non-zero
count and every output, NaN where unwritten.  ``benchmarks/fuzz_soak.py --buckets K``
runs many more.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tileproof.fuzz._buckets import bucket_cases, bucket_differential

_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))


@settings(max_examples=8, **_SETTINGS)
@given(bucket_cases())
def test_bucketed_runs_answer_as_the_points_own(case):
    desc, points, variant = case
    rep = bucket_differential(desc, points, variant=variant)
    assert not rep.problems, rep.text()


@settings(max_examples=3, **_SETTINGS)
@given(bucket_cases(ring=True))
def test_bucketed_ring_runs_answer_as_the_points_own(case):
    """Ring kernels: the rank count varies, the bucket's padding ranks are dead."""
    desc, points, variant = case
    rep = bucket_differential(desc, points, variant=variant)
    assert not rep.problems, rep.text()
