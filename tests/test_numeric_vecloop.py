"""Loops run as one vmap over their iterations give what the sequential scan gives.

Each kernel runs both ways (``TILEPROOF_NO_VEC_LOOPS=1`` forces the scan) and must give
the same outputs and the same findings, word for word: races between programs inside a
loop, a program's own rewrites ordered by iteration, out-of-bounds and poisoned reads
naming the first iteration, nested loops, ``while`` loops with traced bounds, a scan
over a tensor, and loops that carry a real dependency (which stay scans).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import tileproof.spec as tp
from tileproof.verify.numeric import _vecloop, executor

RNG = np.random.default_rng(0)


def run_both(kernel, sizes, inputs, monkeypatch, expect_vec=True):
    monkeypatch.delenv("TILEPROOF_NO_VEC_LOOPS", raising=False)
    calls = []
    real_scan, real_while = _vecloop.scan_vec, _vecloop.while_vec

    def count(real):
        def f(*a, **k):
            calls.append(real.__name__)
            return real(*a, **k)

        return f

    import tileproof.verify.numeric._interp as interp_mod

    monkeypatch.setattr(interp_mod, "scan_vec", count(real_scan))
    monkeypatch.setattr(interp_mod, "while_vec", count(real_while))
    raw = executor(kernel, sizes, jit=False)
    out_v, fl_v = jax.jit(lambda inp: raw(inp))(inputs)  # a new function: traced anew
    assert bool(calls) == expect_vec, calls
    monkeypatch.setenv("TILEPROOF_NO_VEC_LOOPS", "1")
    out_s, fl_s = jax.jit(lambda inp: raw(inp))(inputs)  # a new function: traced anew
    for n in out_v:
        np.testing.assert_array_equal(np.asarray(out_v[n]), np.asarray(out_s[n]))
    msgs_v = [f.message for f in fl_v.findings()]
    msgs_s = [f.message for f in fl_s.findings()]
    assert msgs_v == msgs_s
    return out_v, msgs_v


@tp.kernel(grid={"p": 2}, tensors=dict(o=tp.Output((2, 2))))
def rewrites_in_order(o):
    p = tp.program_id(0)

    def body(j, c):  # program p writes o[p, j % 2] = j: the last write of each element wins
        tp.store(o, (p, j % 2), (j + 10 * p).astype(jnp.float32))
        return c

    lax.fori_loop(0, 5, body, 0)


def test_own_rewrites_keep_program_order(monkeypatch):
    out, msgs = run_both(rewrites_in_order, {}, {}, monkeypatch)
    assert msgs == []
    np.testing.assert_array_equal(out["o"], [[4.0, 3.0], [14.0, 13.0]])


@tp.kernel(grid={"p": 3}, tensors=dict(x=tp.Input((8, 4)), o=tp.Output((8, 4))))
def race_in_loop(x, o):
    p = tp.program_id(0)

    def body(j, c):  # rows 2p, 2p+1, 2p+2: program p's last row is program p+1's first
        r = 2 * p + j
        tp.store(o, (tp.ds(r, 1), slice(None)), tp.load(x, (tp.ds(r, 1), slice(None))))
        return c

    lax.fori_loop(0, 3, body, 0)


def test_race_between_programs_inside_a_loop(monkeypatch):
    _, msgs = run_both(
        race_in_loop, {}, {"x": RNG.standard_normal((8, 4), np.float32)}, monkeypatch
    )
    assert any("race: o[2, 0] is written by program (p=0) and by program (p=1)" in m for m in msgs)


@tp.kernel(
    grid={"p": 2},
    assume=["N <= 64"],
    tensors=dict(
        x=tp.Input(("N",)),
        n=tp.Input((2,), "int32", values="0 <= v <= 8"),
        s=tp.Scratch((16,)),
        o=tp.Output((2,)),
    ),
)
def while_with_loaded_bound(x, n, s, o):
    p = tp.program_id(0)
    hi = tp.load(n, (p,))

    def fill(j, c):
        tp.store(s, (p * 8 + j,), tp.load(x, (p * 8 + j,)))
        return c

    lax.fori_loop(0, hi, fill, 0)  # a traced bound: a while loop
    tp.barrier()

    def acc(j, a):  # a real carry: stays a scan; reads past what was written are poisoned
        return a + tp.load(s, (p * 8 + j,))

    tp.store(o, (p,), lax.fori_loop(0, 3, acc, jnp.float32(0)))


def test_while_loop_poison_named_in_the_next_phase(monkeypatch):
    x = RNG.standard_normal((16,)).astype(np.float32)
    n = np.array([5, 2], np.int32)
    out, msgs = run_both(while_with_loaded_bound, {"N": 16}, {"x": x, "n": n}, monkeypatch)
    # program 1 fills s[8], s[9] only and reads s[10] in iteration 2
    (m,) = msgs
    assert "poisoned read: s[10] is read by program (p=1) in loop iteration 2" in m
    np.testing.assert_allclose(out["o"][0], x[0:3].sum(), rtol=1e-6)


def test_while_loop_out_of_bounds_names_its_iteration(monkeypatch):
    x = RNG.standard_normal((12,)).astype(np.float32)
    n = np.array([5, 6], np.int32)  # program 1 loads x[8..13]: x[12] in iteration 4
    _, msgs = run_both(while_with_loaded_bound, {"N": 12}, {"x": x, "n": n}, monkeypatch)
    (m,) = msgs
    assert "out-of-bounds load of x[12] (shape [12]) by program (p=1) in loop iteration 4" in m


@tp.kernel(
    grid={"p": 2}, assume=["N <= 64"], tensors=dict(x=tp.Input(("N",)), o=tp.Output((2, 4, 3)))
)
def nested_oob(x, o):
    p = tp.program_id(0)

    def outer(i, c):
        def inner(j, c2):
            tp.store(o, (p, i, j), tp.load(x, (p * 12 + i * 3 + j,)))
            return c2

        return lax.fori_loop(0, 3, inner, c)

    lax.fori_loop(0, 4, outer, 0)


def test_nested_loops_out_of_bounds_first_offender(monkeypatch):
    x = RNG.standard_normal((20,)).astype(np.float32)
    out, msgs = run_both(nested_oob, {"N": 20}, {"x": x}, monkeypatch)
    (m,) = msgs
    assert "out-of-bounds load of x[20] (shape [20]) by program (p=1) in loop iteration 2" in m
    np.testing.assert_array_equal(np.asarray(out["o"])[0].reshape(-1), x[:12])


@tp.kernel(grid={"p": 2}, tensors=dict(x=tp.Input((2, 6)), o=tp.Output((2, 6))))
def scan_over_columns(x, o):
    p = tp.program_id(0)
    cols = jnp.arange(6, dtype=jnp.int32)

    def body(c, j):
        v = tp.load(x, (p, j)) * 2
        tp.store(o, (p, 5 - j), v)
        return c, v

    _, ys = lax.scan(body, 0, cols)
    del ys


def test_scan_over_a_tensor(monkeypatch):
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    out, msgs = run_both(scan_over_columns, {}, {"x": x}, monkeypatch)
    assert msgs == []
    np.testing.assert_allclose(out["o"], 2 * x[:, ::-1])


@tp.kernel(grid={"p": 2}, tensors=dict(x=tp.Input((2, 4)), o=tp.Output((2,))))
def real_carry(x, o):
    p = tp.program_id(0)
    tot = lax.fori_loop(0, 4, lambda j, a: a * 0.5 + tp.load(x, (p, j)), jnp.float32(0))
    tp.store(o, (p,), tot)


def test_a_real_carry_stays_a_scan(monkeypatch):
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    out, _ = run_both(real_carry, {}, {"x": x}, monkeypatch, expect_vec=False)
    want = np.zeros(2, np.float32)
    for j in range(4):
        want = want * 0.5 + x[:, j]
    np.testing.assert_allclose(out["o"], want, rtol=1e-6)


def test_carry_kinds():
    def f(i, a, b):
        return lax.add(i, jnp.int32(3)), a, b * 2

    jx = jax.make_jaxpr(f)(jnp.int32(0), 1.0, 2.0)
    assert _vecloop.carry_kinds(jx, 0, 2) == [("count", 3), ("pass", 0)]
    assert _vecloop.carry_kinds(jx, 0, 3) is None
