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


# ------------------------------------------------- the production executor's static decisions
#
# The executor decides some things from sizes known while tracing: a branch a size picks
# runs alone (folded), a top-level block few programs enter runs on those only (a gate),
# a loop with independent iterations runs as one vmap of its static trip bound, a window
# at a start known in range is a slice.  In a bucket the sizes are data: each kernel
# below takes a different side at the bucket's largest point (N=40, the plan's own sizes)
# than at the smaller points, the defect only on the small points' side.


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def size_branch_unmasked(x, y):
    """Below N=16 the other side of a size branch stores unmasked (past N at N=10, N=3)."""
    i = tp.program_id(0)
    n = tp.size("N")
    m = _rows(i * 8, n)
    v = 2 * tp.load(x, (tp.ds(i * 8, 8),), mask=m)

    @tp.when(n >= 16)
    def _():
        tp.store(y, (tp.ds(i * 8, 8),), v, mask=m)

    @tp.when(n < 16)
    def _():
        tp.store(y, (tp.ds(i * 8, 8),), v)


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def size_branch_masked(x, y):
    """The twin: both sides masked."""
    i = tp.program_id(0)
    n = tp.size("N")
    m = _rows(i * 8, n)
    v = 2 * tp.load(x, (tp.ds(i * 8, 8),), mask=m)

    @tp.when(n >= 16)
    def _():
        tp.store(y, (tp.ds(i * 8, 8),), v, mask=m)

    @tp.when(n < 16)
    def _():
        tp.store(y, (tp.ds(i * 8, 8),), v, mask=m)


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), s=tp.Scratch(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def size_across_barrier(x, s, y):
    """A size decided before a grid barrier picks the branch after it (a value one phase
    hands the next, known while tracing at a point's own sizes); below N=16 the branch
    reads s unmasked (past N)."""
    i = tp.program_id(0)
    small = tp.size("N") < 16
    m = _rows(i * 8, tp.size("N"))
    tp.store(s, (tp.ds(i * 8, 8),), 2 * tp.load(x, (tp.ds(i * 8, 8),), mask=m), mask=m)
    tp.barrier()
    v = tp.load(s, (tp.ds(i * 8, 8),), mask=m | small)
    tp.store(y, (tp.ds(i * 8, 8),), v, mask=m)


@tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), s=tp.Scratch(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def size_across_barrier_ok(x, s, y):
    """The twin: the size only narrows the mask."""
    i = tp.program_id(0)
    small = tp.size("N") < 16
    m = _rows(i * 8, tp.size("N"))
    tp.store(s, (tp.ds(i * 8, 8),), 2 * tp.load(x, (tp.ds(i * 8, 8),), mask=m), mask=m)
    tp.barrier()
    v = tp.load(s, (tp.ds(i * 8, 8),), mask=m & (small | m))
    tp.store(y, (tp.ds(i * 8, 8),), v, mask=m)


def _tail_block(masked: bool):
    def body(x, y):
        i = tp.program_id(0)
        last = tp.num_programs(0) - 1
        m = _rows(i * 8, tp.size("N"))

        @tp.when(i < last)
        def _():
            tp.store(y, (tp.ds(i * 8, 8),), 2 * tp.load(x, (tp.ds(i * 8, 8),)))

        @tp.when(i == last)  # one program of 5 at N=40: a gated block at the point's own run
        def _():
            v = 2 * tp.load(x, (tp.ds(i * 8, 8),), mask=m)
            tp.store(y, (tp.ds(i * 8, 8),), v, mask=m if masked else None)

    return body


gated_tail_unmasked = tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
    name="gated_tail_unmasked",
)(_tail_block(False))
gated_tail_masked = tp.kernel(
    grid={"i": "cdiv(N, 8)"},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
    name="gated_tail_masked",
)(_tail_block(True))


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def vec_loop_unmasked(x, y):
    """``cdiv(N, 8)`` independent iterations (one vmap), the last tile stored unmasked."""
    n = tp.size("N")

    def body(k, c):
        m = _rows(k * 8, n)
        tp.store(y, (tp.ds(k * 8, 8),), 2 * tp.load(x, (tp.ds(k * 8, 8),), mask=m))
        return c

    lax.fori_loop(0, (n + 7) // 8, body, 0)


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def vec_loop_masked(x, y):
    """The twin: the store masked too."""
    n = tp.size("N")

    def body(k, c):
        m = _rows(k * 8, n)
        tp.store(y, (tp.ds(k * 8, 8),), 2 * tp.load(x, (tp.ds(k * 8, 8),), mask=m), mask=m)
        return c

    lax.fori_loop(0, (n + 7) // 8, body, 0)


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output((8,))),
    reference=lambda x: 2 * jnp.pad(x, (0, 16))[8:16],
)
def literal_window(x, y):
    """A load at a literal start: a slice in the bucket (8 + 8 <= 40), past N at N=10, N=3."""
    tp.store(y, (tp.ds(0, 8),), 2 * tp.load(x, (tp.ds(8, 8),)))


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output((8,))),
    reference=lambda x: 2 * jnp.pad(x, (0, 16))[8:16],
)
def literal_window_masked(x, y):
    """The twin: the load masked to N."""
    tp.store(y, (tp.ds(0, 8),), 2 * tp.load(x, (tp.ds(8, 8),), mask=_rows(8, tp.size("N"))))


STATIC_DEFECTS = [size_branch_unmasked, size_across_barrier, gated_tail_unmasked]
STATIC_DEFECTS += [vec_loop_unmasked, literal_window]
STATIC_CORRECT = [size_branch_masked, size_across_barrier_ok, gated_tail_masked]
STATIC_CORRECT += [vec_loop_masked, literal_window_masked]


def _same_as_own(bucket, kernel, env, inputs):
    with jax.default_matmul_precision("highest"):
        outs, ok = bucket.forward(env, inputs)
    own, flags = _own(kernel, env, inputs)
    assert ok == flags.ok, (env, ok)
    for n in kernel.outputs:
        np.testing.assert_array_equal(np.asarray(outs[n]), np.asarray(own[n]))
    return ok


@pytest.mark.parametrize("kernel", STATIC_DEFECTS + STATIC_CORRECT, ids=lambda k: k.name)
def test_static_decisions_are_made_from_the_points_sizes(kernel):
    """Counts and values at every point equal the point's own run; the defects are found
    at the small points (N=10, N=3: the other side of the decision), never at N=40."""
    buckets = buckets_for(kernel, POINTS)
    assert len({id(b) for b in buckets.values()}) == 1 and len(buckets) == len(POINTS)
    bucket = next(iter(buckets.values()))
    oks = []
    for i, env in enumerate(POINTS):
        inputs = draw_inputs(kernel, env, np.random.default_rng(i), i)
        oks.append(_same_as_own(bucket, kernel, env, inputs))
    assert oks == ([True, False, False] if kernel in STATIC_DEFECTS else [True] * 3), oks


@pytest.mark.parametrize("kernel", STATIC_DEFECTS + STATIC_CORRECT, ids=lambda k: k.name)
def test_static_decisions_check_numeric_with_and_without_buckets(kernel, monkeypatch):
    got = check_numeric(kernel, sizes=POINTS, budget=0, only=True)
    monkeypatch.setenv("TILEPROOF_NO_BUCKETS", "1")
    want = check_numeric(kernel, sizes=POINTS, budget=0, only=True)
    assert (got.status, got.message, got.sizes) == (want.status, want.message, want.sizes)
    assert got.status == ("mismatch" if kernel in STATIC_DEFECTS else "matched"), got.message
    if kernel in STATIC_DEFECTS:
        assert got.message.startswith("at sizes N=10: "), got.message


def test_the_decisions_are_taken_at_the_points_own_runs():
    """Not vacuous: at N=40 the tail block is gated (1 of 5 programs) and the loop of
    ``vec_loop_*`` is vectorised; at N=10 the size branch is folded (known while tracing)."""
    from tileproof.verify.numeric._gate import phase_gates
    from tileproof.verify.numeric._plan import get_plan

    plan = get_plan(gated_tail_unmasked, {"N": 40})
    (gate,) = phase_gates(plan, plan.phases[0]).values()
    assert gate.tolist() == [False] * 4 + [True]
    bucket = next(iter(buckets_for(gated_tail_unmasked, POINTS).values()))
    assert bucket.plan.G == 5  # the bucket's launch: N=40's


def _vec_calls(monkeypatch) -> list:
    import tileproof.verify.numeric._interp as interp_mod
    from tileproof.verify.numeric import _vecloop

    calls: list = []
    real = _vecloop.while_vec

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(interp_mod, "while_vec", counted)
    return calls


@pytest.mark.parametrize("vec", [True, False], ids=["vmap", "scan"])
def test_a_size_loop_vectorised_in_the_bucket_stops_at_the_points_trips(vec, monkeypatch):
    """``vec_loop_*`` runs 5 iterations in the bucket, 2 at N=10 and 1 at N=3: vectorised or
    scanned, the iterations past the point's bound do nothing."""
    if not vec:
        monkeypatch.setenv("TILEPROOF_NO_VEC_LOOPS", "1")
    calls = _vec_calls(monkeypatch)
    for kernel, want in ((vec_loop_unmasked, [True, False, False]), (vec_loop_masked, [True] * 3)):
        bucket = next(iter(buckets_for(kernel, POINTS).values()))
        oks = [
            _same_as_own(bucket, kernel, env, draw_inputs(kernel, env, np.random.default_rng(i), i))
            for i, env in enumerate(POINTS)
        ]
        assert oks == want
    assert bool(calls) == vec


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(
        x=tp.Input(("N",)),
        hi=tp.Input((1,), "int32", values="0 <= v <= (N + 7) // 8"),
        y=tp.Output(("N",)),
    ),
    reference=lambda x, hi: 2 * x,
)
def loaded_bound_loop(x, hi, y):
    """Independent iterations up to a loaded bound: its trip bound is ``cdiv(N, 8)`` (2 at
    N=10, 5 at N=40), so ``hi = 3`` at N=10 runs past the bound -- the point's own run flags
    the loop (``loop_bound``); the bucket, whose loop is 5 long, must stop at 2 and flag it."""
    n = tp.size("N")

    def body(k, c):
        m = _rows(k * 8, n)
        tp.store(y, (tp.ds(k * 8, 8),), 2 * tp.load(x, (tp.ds(k * 8, 8),), mask=m), mask=m)
        return c

    lax.fori_loop(0, tp.load(hi, (0,)), body, 0)


@pytest.mark.parametrize("vec", [True, False], ids=["vmap", "scan"])
def test_a_loop_past_the_points_bound_is_flagged_in_the_bucket(vec, monkeypatch):
    """A bound beyond the declared range (fed directly: the check never draws it) makes the
    loop run past the point's trip bound but within the bucket's: flagged exactly as the
    point's own run flags it; within the range both are clean."""
    if not vec:
        monkeypatch.setenv("TILEPROOF_NO_VEC_LOOPS", "1")
    calls = _vec_calls(monkeypatch)
    points = [{"N": 40}, {"N": 10}]
    bucket = next(iter(buckets_for(loaded_bound_loop, points).values()))
    assert bucket.plan.trip_bound(_loop_eqn(loaded_bound_loop)) == 5
    rng = np.random.default_rng(0)
    for env, hi, want in (({"N": 10}, 2, True), ({"N": 10}, 3, False), ({"N": 40}, 5, True)):
        x = rng.standard_normal((env["N"],)).astype(np.float32)
        ok = _same_as_own(bucket, loaded_bound_loop, env, {"x": x, "hi": np.array([hi], np.int32)})
        assert ok == want, (env, hi)
    assert bool(calls) == vec


def _loop_eqn(kernel):
    (e,) = _loop_eqns(kernel)
    return e


@tp.kernel(
    grid={"one": 1},
    **_LEN,
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: 2 * x,
)
def vec_loop_inner_while(x, y):
    """A vectorised loop whose body holds a loop without kernel operations (a plain
    ``while``: its trip bound is never needed, and asking a bucket's plan for it must not
    bound the kernel's loops again at the bucket's first point)."""
    n = tp.size("N")

    def body(k, c):
        m = _rows(k * 8, n)
        two = lax.fori_loop(0, n // n + 1, lambda j, a: a + 1.0, jnp.float32(0))
        tp.store(y, (tp.ds(k * 8, 8),), two * tp.load(x, (tp.ds(k * 8, 8),), mask=m), mask=m)
        return c

    lax.fori_loop(0, (n + 7) // 8, body, 0)


def test_a_bucket_keeps_its_trip_bounds_when_its_first_point_is_small(monkeypatch):
    """The bucket's plan is made at its first point (N=10 here) with the largest trip bound
    of its points (5, N=40's) set on it: no later question re-bounds the loops at N=10 (the
    N=40 run would stop after 2 iterations and flag its loop)."""
    calls = _vec_calls(monkeypatch)
    points = [{"N": 10}, {"N": 40}]
    bucket = next(iter(buckets_for(vec_loop_inner_while, points).values()))
    for i, env in enumerate(points):
        inputs = draw_inputs(vec_loop_inner_while, env, np.random.default_rng(i), i)
        assert _same_as_own(bucket, vec_loop_inner_while, env, inputs)
    assert calls  # the outer loop ran vectorised in the bucket
    assert [bucket.plan.trip_bound(e) for e in _loop_eqns(vec_loop_inner_while)] == [5]


def _loop_eqns(kernel) -> list:
    from tileproof.verify.numeric._bucket import _while_loops
    from tileproof.verify.numeric._plan import traced

    loops: list = []
    _while_loops(traced(kernel).closed, loops)
    return loops
