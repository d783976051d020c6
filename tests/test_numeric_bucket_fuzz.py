"""Bucketed numeric runs against each point's own run, on generated kernels.

The numeric check runs the points of a kernel in *buckets* (one compilation, tensors
padded to the largest extents, real sizes as data) and takes a clean bucketed run as
the point's answer.  If the bucket is clean where the point's own executor flags
something, or its outputs on the real region differ, a defect would be reported as
``matched``.  Each example draws a kernel from the fuzz generator (correct tilings and
perturbed ones: off-by-one bounds, dropped tails, races, loops, barriers, lanes, index
data; ring kernels with perturbed steps), two or three of its size points, and compares
both runs at every point (:func:`tileproof.fuzz._buckets.bucket_differential`): the check
sites with a non-zero count and every output, NaN where unwritten; at clean points also
the gradients.  ``benchmarks/fuzz_soak.py --buckets K --bucket-rings R`` runs many more.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tileproof.fuzz import KernelDesc, TensorDesc
from tileproof.fuzz._buckets import bucket_cases, bucket_differential
from tileproof.verify.numeric import _bucket

_SETTINGS = dict(
    deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


@settings(max_examples=6, **_SETTINGS)
@given(bucket_cases())
def test_bucketed_runs_answer_as_the_points_own(case):
    desc, points, variant = case
    rep = bucket_differential(desc, points, variant=variant)
    assert not rep.problems, rep.text()


@settings(max_examples=2, **_SETTINGS)
@given(bucket_cases(ring=True))
def test_bucketed_ring_runs_answer_as_the_points_own(case):
    """Ring kernels: the rank count varies, the bucket's padding ranks are dead."""
    desc, points, variant = case
    rep = bucket_differential(desc, points, variant=variant)
    assert not rep.problems, rep.text()


@settings(max_examples=2, **_SETTINGS)
@given(bucket_cases(constructs=frozenset({"mask", "loop", "data", "twod", "minmax"})))
def test_bucketed_gradients_are_the_points_own(case):
    desc, points, variant = case
    rep = bucket_differential(desc, points, variant=variant, gradients=True)
    assert not rep.problems, rep.text()


# ------------------------------------------------------------------ the comparison itself

N = ("s", "N")


def _tail(mask: bool) -> KernelDesc:
    """``cdiv(N, 4)`` tiles of 4: unmasked, the last tile overruns N when 4 does not divide it."""
    start = ("*", ("c", 4), ("p", 0))
    m = (0, "<", N) if mask else None
    return KernelDesc(
        ("N",),
        ("N <= 8",),
        ("cdiv(N, 4)",),
        (TensorDesc("x", "input", ("N",)), TensorDesc("y", "output", ("N",))),
        (("load", "x", (("ds", start, 4),), m), ("store", "y", (("ds", start, 4),), m)),
    )


def test_the_comparison_sees_a_bucket_that_forgets_the_real_extents(monkeypatch):
    """Not vacuous: a bucket that checked bounds against its padded extents would hide the
    overrun at N=5 (inside the padding of N=8); the comparison must report it, and the
    twin with the mask must still agree."""
    points = [{"N": 8}, {"N": 5}]
    assert not bucket_differential(_tail(False), points).problems
    rep = bucket_differential(_tail(True), points)
    assert not rep.problems and rep.flagged == 0, rep.text()
    monkeypatch.setattr(_bucket.Dyn, "shape", lambda self, t: self.bucket.plan.shapes[t])
    rep = bucket_differential(_tail(False), points)
    assert [(p.what, p.key, p.sizes) for p in rep.problems] == [
        ("disagreement", ("flags",), {"N": 5})
    ], rep.text()
    assert "'oob_load'" in rep.problems[0].message and "'oob_store'" in rep.problems[0].message
