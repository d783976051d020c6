"""Blocks that few programs enter, run on those programs only, find what the full run finds.

Each kernel runs gated and with ``TILEPROOF_NO_GATES=1`` (every program runs every block,
masked) and must give the same outputs and the same findings, word for word.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import tileproof.spec as tp
from tileproof.verify.numeric import _gate, executor

RNG = np.random.default_rng(1)


def run_both(kernel, sizes, inputs, monkeypatch, expect_gate=True):
    monkeypatch.delenv("TILEPROOF_NO_GATES", raising=False)
    seen = []
    real = _gate.phase_gates

    def spy(plan, ph):
        g = real(plan, ph)
        seen.append(len(g))
        return g

    import tileproof.verify.numeric._execute as ex

    monkeypatch.setattr(ex, "phase_gates", spy)
    raw = executor(kernel, sizes, jit=False)
    out_g, fl_g = jax.jit(lambda inp: raw(inp))(inputs)  # a new function: traced anew
    assert (sum(seen) > 0) == expect_gate, seen
    monkeypatch.setenv("TILEPROOF_NO_GATES", "1")
    out_a, fl_a = jax.jit(lambda inp: raw(inp))(inputs)  # a new function: traced anew
    for n in out_g:
        np.testing.assert_array_equal(np.asarray(out_g[n]), np.asarray(out_a[n]))
    msgs = [f.message for f in fl_g.findings()]
    assert msgs == [f.message for f in fl_a.findings()]
    return out_g, msgs


@tp.kernel(
    grid={"p": 8},
    assume=["N <= 64"],
    tensors=dict(x=tp.Input(("N", 4)), s=tp.Scratch((8, 4)), o=tp.Output((8, 4))),
)
def few_programs_copy(x, s, o):
    """Programs 0..2 copy rows 3p..3p+2 into s (a block few programs enter); then every
    program reads its row of s: rows 3..7 of s are never written."""
    p = tp.program_id(0)

    @tp.when(p < 3)
    def _():
        def body(j, c):
            tp.store(
                s,
                (tp.ds(p * 2 + j, 1), slice(None)),
                tp.load(x, (tp.ds(3 * p + j, 1), slice(None))),
            )
            return c

        lax.fori_loop(0, 2, body, 0)

    tp.barrier()
    tp.store(o, (p, slice(None)), tp.load(s, (p, slice(None))))


def test_gated_block_values_and_poison(monkeypatch):
    x = RNG.standard_normal((9, 4)).astype(np.float32)
    out, msgs = run_both(few_programs_copy, {"N": 9}, {"x": x}, monkeypatch)
    (m,) = msgs
    assert "poisoned read: s[6, 0] is read by program (p=6)" in m
    np.testing.assert_array_equal(np.asarray(out["o"])[:6], x[[0, 1, 3, 4, 6, 7]])


def test_gated_block_out_of_bounds_names_the_program_and_iteration(monkeypatch):
    x = RNG.standard_normal((7, 4)).astype(np.float32)  # program 2 reads rows 6 and 7
    _, msgs = run_both(few_programs_copy, {"N": 7}, {"x": x}, monkeypatch)
    oob = [m for m in msgs if "out-of-bounds" in m]
    assert len(oob) == 1
    assert (
        "out-of-bounds load of x[7, 0] (shape [7, 4]) by program (p=2) in loop iteration 1"
        in oob[0]
    )


@tp.kernel(
    grid={"p": 8},
    tensors=dict(
        x=tp.Input((8, 4)), flag=tp.Input((8,), "int32", values="0 <= v <= 1"), o=tp.Output((4, 4))
    ),
)
def data_and_static_conjuncts(x, flag, o):
    """Programs p < 3 whose flag is set write row p // 2 of o: programs 0 and 1 race on
    row 0 when both flags are set; the data conjunct is still applied inside the block."""
    p = tp.program_id(0)
    f = tp.load(flag, (p,))

    @tp.when((f > 0) & (p < 3))
    def _():
        tp.store(o, (p // 2, slice(None)), tp.load(x, (p, slice(None))))


def test_data_conjunct_kept_and_race_named(monkeypatch):
    x = RNG.standard_normal((8, 4)).astype(np.float32)
    _, msgs = run_both(
        data_and_static_conjuncts,
        {},
        {"x": x, "flag": np.array([1, 1, 0, 1, 1, 1, 1, 1], np.int32)},
        monkeypatch,
    )
    assert any("race: o[0, 0] is written by program (p=0) and by program (p=1)" in m for m in msgs)
    _, msgs = run_both(
        data_and_static_conjuncts,
        {},
        {"x": x, "flag": np.array([1, 0, 1, 1, 1, 1, 1, 1], np.int32)},
        monkeypatch,
    )
    assert not any("race" in m for m in msgs)
    assert any("output o[2, 0] is never written" in m for m in msgs)


@tp.kernel(grid={"p": 4}, tensors=dict(x=tp.Input((4, 4)), o=tp.Output((4, 4))))
def most_programs(x, o):
    p = tp.program_id(0)

    @tp.when(p < 3)  # 3 of 4 programs: not worth a segment of its own
    def _():
        tp.store(o, (p, slice(None)), tp.load(x, (p, slice(None))))

    @tp.when(p == 3)
    def _():
        tp.store(o, (p, slice(None)), -tp.load(x, (p, slice(None))))


def test_blocks_most_programs_enter_stay_in_the_full_run(monkeypatch):
    x = RNG.standard_normal((4, 4)).astype(np.float32)
    out, msgs = run_both(most_programs, {}, {"x": x}, monkeypatch)
    assert msgs == []
    np.testing.assert_array_equal(out["o"], np.concatenate([x[:3], -x[3:]]))


def test_necessary_condition_of_a_conjunction():
    def f(p, d):
        return lax.convert_element_type((p < 3) & (d > 0), jnp.int32)

    jx = jax.make_jaxpr(f)(jnp.int32(0), jnp.int32(0)).jaxpr
    defs = {v: e for e in jx.eqns for v in e.outvars}
    lt = next(e.outvars[0] for e in jx.eqns if e.primitive.name == "lt")
    static = {lt: np.array([[True, False]])}
    got = _gate._necessary(jx.outvars[0], static, defs, (1, 2))
    np.testing.assert_array_equal(got, [[True, False]])
    assert _gate._necessary(jx.outvars[0], {}, defs, (1, 2)) is None
