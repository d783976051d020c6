"""Bucketed numeric runs (one compilation for several size points, sizes as data).

At a point smaller than its bucket, the padded executor must answer exactly as the
point's own executor: an access outside the real extent but inside the padding is
still flagged (out of bounds, never a silent read of padding), the padding never makes
a finding of its own (no out-of-bounds, no unwritten output, no barrier exit of a
padding program, no loop past its bound), and the values on the real region are the
same.  Each defect has a correct twin that must match.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.verify.numeric import check_numeric
from tileproof.verify.numeric._bucket import buckets_for
from tileproof.verify.numeric._execute import executor, run_compiled
from tileproof.verify.numeric._inputs import draw_inputs

POINTS = [{"N": 40}, {"N": 10}, {"N": 3}]  # the bucket is N=40; the others are padded
_LEN = dict(assume=["N <= 64"], defaults={"N": 40})


def _rows(n0, n):
    return jnp.arange(8) + n0 < n


# ----------------------------------------------------------------------------- kernels


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def tail_unmasked_load(x, y):
    """The last tile reads past N (unmasked) and stores masked."""
    i = tp.program_id(0)
    v = tp.load(x, (tp.ds(i * 8, 8),))
    tp.store(y, (tp.ds(i * 8, 8),), 2 * v, mask=_rows(i * 8, tp.size("N")))


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def tail_masked(x, y):
    """The correct twin: load and store masked."""
    i = tp.program_id(0)
    m = _rows(i * 8, tp.size("N"))
    tp.store(y, (tp.ds(i * 8, 8),), 2 * tp.load(x, (tp.ds(i * 8, 8),), mask=m), mask=m)


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def tail_unmasked_store(x, y):
    """The last tile writes past N (unmasked store)."""
    i = tp.program_id(0)
    m = _rows(i * 8, tp.size("N"))
    tp.store(y, (tp.ds(i * 8, 8),), 2 * tp.load(x, (tp.ds(i * 8, 8),), mask=m))


@tp.kernel(
    grid={"i": "N // 8"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def floor_tail(x, y):
    """``N // 8`` programs: the tail of y is never written (N=10, N=3), not at N=40."""
    i = tp.program_id(0)
    tp.store(y, (tp.ds(i * 8, 8),), 2 * tp.load(x, (tp.ds(i * 8, 8),)))


def _sum_ref(x):
    return jnp.sum(x).reshape(1)


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output((1,))),
    reference=_sum_ref,
)
def loop_sum(x, y):
    """A loop whose trip count follows N (cdiv(N, 8) iterations): fewer at the small points."""
    n = tp.size("N")

    def body(k, acc):
        return acc + jnp.sum(tp.load(x, (tp.ds(k * 8, 8),), mask=_rows(k * 8, n)))

    tp.store(y, (0,), lax.fori_loop(0, (n + 7) // 8, body, jnp.float32(0)))


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output((1,))),
    reference=_sum_ref,
)
def loop_sum_overrun(x, y):
    """The same loop one iteration too long, its loads unmasked: past N at every point."""
    n = tp.size("N")

    def body(k, acc):
        return acc + jnp.sum(tp.load(x, (tp.ds(k * 8, 8),)))

    tp.store(y, (0,), lax.fori_loop(0, n // 8 + 1, body, jnp.float32(0)))


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), s=tp.Scratch(("N",)), y=tp.Output(("N",))),
    reference=lambda x: x[::-1],
)
def barrier_reverse(x, s, y):
    """Copy to a scratch, a grid barrier, read it back reversed: every program waits."""
    i = tp.program_id(0)
    n = tp.size("N")
    m = _rows(i * 8, n)
    tp.store(s, (tp.ds(i * 8, 8),), tp.load(x, (tp.ds(i * 8, 8),), mask=m), mask=m)
    tp.barrier()
    src = n - 1 - (i * 8 + jnp.arange(8))
    vals = jnp.stack([tp.load(s, (jnp.maximum(src[k], 0),)) for k in range(8)])
    tp.store(y, (tp.ds(i * 8, 8),), vals, mask=m)


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), s=tp.Scratch(("N",)), y=tp.Output(("N",))),
    reference=lambda x: x[::-1],
)
def barrier_exit(x, s, y):
    """Program 1 leaves before the barrier when it is the last one (N=10), not at N=40."""
    i = tp.program_id(0)
    n = tp.size("N")
    m = _rows(i * 8, n)
    tp.exit_if((i == 1) & (tp.num_programs(0) == 2))
    tp.store(s, (tp.ds(i * 8, 8),), tp.load(x, (tp.ds(i * 8, 8),), mask=m), mask=m)
    tp.barrier()
    src = n - 1 - (i * 8 + jnp.arange(8))
    vals = jnp.stack([tp.load(s, (jnp.maximum(src[k], 0),)) for k in range(8)])
    tp.store(y, (tp.ds(i * 8, 8),), vals, mask=m)


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output((1,))),
    reference=lambda x: x[:1],
)
def last_program_race(x, y):
    """Program 0 and the last program both write y[0] when there are two or more."""
    i = tp.program_id(0)
    last = tp.num_programs(0) - 1
    tp.store(y, (0,), tp.load(x, (0,)), mask=(i == 0) | (i == last))


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output((1,))),
    reference=lambda x: x[:1],
)
def first_program_writes(x, y):
    """The twin: program 0 alone writes y[0]."""
    i = tp.program_id(0)
    tp.store(y, (0,), tp.load(x, (0,)), mask=i == 0)


DEFECTS = [
    tail_unmasked_load,
    tail_unmasked_store,
    floor_tail,
    loop_sum_overrun,
    barrier_exit,
    last_program_race,
]
CORRECT = [tail_masked, loop_sum, barrier_reverse, first_program_writes]


# ----------------------------------------------------------------------------- the same answers


def _own(kernel, env, inputs):
    with jax.default_matmul_precision("highest"):
        return run_compiled(executor(kernel, env, detail=False), inputs)


@pytest.mark.parametrize("kernel", DEFECTS + CORRECT, ids=lambda k: k.name)
def test_a_bucketed_run_answers_as_the_points_own(kernel):
    """Counts and values at every point of one bucket equal the point's own executor's."""
    buckets = buckets_for(kernel, POINTS)
    assert len({id(b) for b in buckets.values()}) == 1 and len(buckets) == len(POINTS)
    bucket = next(iter(buckets.values()))
    assert bucket.plan.shapes["x"] == (40,)
    oks = []
    for i, env in enumerate(POINTS):
        inputs = draw_inputs(kernel, env, np.random.default_rng(i), i)
        with jax.default_matmul_precision("highest"):
            outs, ok = bucket.forward(env, inputs)
        own, flags = _own(kernel, env, inputs)
        assert ok == flags.ok, (env, ok)
        for n in kernel.outputs:
            np.testing.assert_array_equal(np.asarray(outs[n]), np.asarray(own[n]))
        oks.append(ok)
    # the defects show at the small (padded) points; the twins are clean everywhere
    assert (False in oks) == (kernel in DEFECTS)
    if kernel in DEFECTS:
        assert not all(oks[1:]), oks  # found at a point smaller than the bucket


@pytest.mark.parametrize("kernel", DEFECTS + CORRECT, ids=lambda k: k.name)
def test_check_numeric_is_the_same_with_and_without_buckets(kernel, monkeypatch):
    got = check_numeric(kernel, sizes=POINTS, budget=0, only=True)
    monkeypatch.setenv("TILEPROOF_NO_BUCKETS", "1")
    want = check_numeric(kernel, sizes=POINTS, budget=0, only=True)
    assert (got.status, got.message, got.sizes) == (want.status, want.message, want.sizes)
    assert got.status == ("mismatch" if kernel in DEFECTS else "matched"), got.message
    assert got.gradients["status"] == want.gradients["status"]
    if kernel in CORRECT:
        assert got.max_abs_err == pytest.approx(want.max_abs_err, abs=1e-6)


def test_an_overrun_inside_the_padding_is_flagged_at_the_small_point():
    """N=10 in a bucket of 40: the load of x[10..15] lies in the padding, still out of bounds."""
    res = check_numeric(tail_unmasked_load, sizes=[{"N": 40}, {"N": 10}], budget=0, only=True)
    assert res.status == "mismatch"
    assert res.message.startswith("at sizes N=10: out-of-bounds load of x[10] (shape [10])")


def test_padding_programs_make_no_finding():
    """The padding programs of the bucket (5 programs; 2 at N=10, 1 at N=3) never reach the
    barrier, and no element of the padding counts as an unwritten output."""
    res = check_numeric(barrier_reverse, sizes=POINTS, budget=0, only=True)
    assert res.status == "matched", res.message
    assert res.gradients["status"] == "matched"
    res = check_numeric(barrier_exit, sizes=POINTS, budget=0, only=True)
    assert res.status == "mismatch"
    assert "at sizes N=10: program (i=1) exited before the grid barrier" in res.message


def test_only_one_compilation_for_the_bucket(monkeypatch):
    """Every point of the bucket runs the one executable (the check compiles no executor of
    its own at any point).  The cost guard is pinned open: on a loaded machine a slow run
    could move the last point out of the bucket, which changes the cost, not the answer."""
    import tileproof.verify.numeric._check as check
    from tileproof.verify.numeric._bucket import Bucket

    monkeypatch.setattr(Bucket, "worth", lambda self, mode="forward": not self.broken)
    calls = []
    real = check.executor
    monkeypatch.setattr(check, "executor", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    res = check_numeric(tail_masked, sizes=POINTS, budget=0, only=True)
    assert res.status == "matched" and calls == []


def test_a_point_that_cannot_be_planned_stays_on_its_own():
    """A point whose plan fails (here: outside the kernel's sizes) is left out of buckets."""
    assert buckets_for(tail_masked, [{"N": 40}, {"N": -1}]) == {}


def test_a_bucket_not_worth_its_cost_leaves_the_points_on_their_own(monkeypatch):
    """When the guard closes the bucket, every point compiles its own executor: same answer."""
    import tileproof.verify.numeric._check as check
    from tileproof.verify.numeric._bucket import Bucket

    monkeypatch.setattr(Bucket, "worth", lambda self, mode="forward": False)
    calls = []
    real = check.executor
    monkeypatch.setattr(check, "executor", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    res = check_numeric(tail_unmasked_load, sizes=POINTS, budget=0, only=True)
    assert res.status == "mismatch" and {"N": 40} in calls
    assert res.message.startswith("at sizes N=10: out-of-bounds load of x[10] (shape [10])")
