"""``while`` loops: the trip count follows the condition exactly, or the loop is unsupported.

Each defect spec must be refuted (or ``unknown``) and its correct twin proved: a bound
the loop updates is not frozen at its initial value (two-pointer loops, shrinking
bounds), condition spellings (``<=``, ``>``, conjunctions, counting down, steps of 2)
give the same trip count, loads in the condition are bounds-checked accesses whose
values are data (never free sizes), and conditions with no closed form are unsupported.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static

ONE = jnp.zeros((1,))


def _obs(kernel, kind=None):
    obs = check_static(lower(kernel))
    return [o for o in obs if kind is None or o.kind == kind]


def _all_proved(kernel):
    bad = [(o.kind, o.status, o.message, o.reason) for o in _obs(kernel) if o.status != "proved"]
    assert not bad, bad


def _not_proved(obs, text):
    hit = [o for o in obs if text in o.message and o.status != "proved"]
    assert hit, [(o.kind, o.status, o.message) for o in obs]
    return hit[0]


# ------------------------------------------------------------------- bounds the loop updates


def _two_pointer(parity: str):
    """Writes o[lo] and o[hi - 1] while lo < hi, moving both ends inwards."""

    @tp.kernel(
        grid={"b": 1}, assume=["N <= 64", f"N % 2 == {parity}"], tensors=dict(o=tp.Output(("N",)))
    )
    def two_pointer(o):
        def cond(c):
            return c[0] < c[1]

        def body(c):
            lo, hi = c
            tp.store(o, (tp.ds(lo, 1),), ONE)
            tp.store(o, (tp.ds(hi - 1, 1),), ONE)
            return lo + 1, hi - 1

        lax.while_loop(cond, body, (jnp.int32(0), tp.size("N")))

    return two_pointer


def test_two_pointer_loop_is_proved_for_even_lengths():
    """The bound moves with the loop: cdiv(N, 2) iterations, no element written twice."""
    m = lower(_two_pointer("0"))
    assert "in [0, cdiv(N, 2))" in m.listing()
    _all_proved(_two_pointer("0"))


def test_two_pointer_loop_writes_the_middle_twice_for_odd_lengths():
    ob = _not_proved(_obs(_two_pointer("1"), "coverage"), "twice")
    assert ob.status == "violated" and ob.counterexample["N"] % 2 == 1


def _shrinking(shrink: bool):
    """`while i < n: o[i] = ...; i += 1; n -= shrink`: the bound shrinks as i grows."""

    @tp.kernel(grid={"b": 1}, assume=["N <= 64"], tensors=dict(o=tp.Output(("N",))))
    def shrinking(o):
        def body(c):
            i, n = c
            tp.store(o, (tp.ds(i, 1),), ONE)
            return i + 1, n - (1 if shrink else 0)

        lax.while_loop(lambda c: c[0] < c[1], body, (jnp.int32(0), tp.size("N")))

    return shrinking


def test_a_bound_the_loop_shrinks_is_not_frozen():
    """Only cdiv(N, 2) elements are written: coverage must fail (a frozen bound proved it)."""
    ob = _not_proved(_obs(_shrinking(True), "coverage"), "never written")
    assert ob.status == "violated" and ob.counterexample["N"] >= 2


def test_an_invariant_bound_covers_everything():
    _all_proved(_shrinking(False))


# ------------------------------------------------------------------------ condition spellings


def _spelled(spelling: str, n: str = "N"):
    @tp.kernel(grid={"b": 1}, assume=["N <= 64", "N % 2 == 0"], tensors=dict(o=tp.Output((n,))))
    def spelled(o):
        N = tp.size("N")
        if spelling == "le":  # while i <= N - 1
            lax.while_loop(
                lambda i: i <= N - 1, lambda i: (tp.store(o, (tp.ds(i, 1),), ONE), i + 1)[1], 0
            )
        elif spelling == "gt":  # while N > i
            lax.while_loop(
                lambda i: N > i, lambda i: (tp.store(o, (tp.ds(i, 1),), ONE), i + 1)[1], 0
            )
        elif spelling == "down":  # while k > 0: k -= 1; o[k]

            def body(k):
                tp.store(o, (tp.ds(k - 1, 1),), ONE)
                return k - 1

            lax.while_loop(lambda k: k > 0, body, N)
        elif spelling == "step2":  # while i < N: o[i:i+2]; i += 2
            lax.while_loop(
                lambda i: i < N,
                lambda i: (tp.store(o, (tp.ds(i, 2),), jnp.zeros((2,))), i + 2)[1],
                0,
            )
        elif spelling == "and":  # while i < N and i < N + 5
            lax.while_loop(
                lambda i: (i < N) & (i < N + 5),
                lambda i: (tp.store(o, (tp.ds(i, 1),), ONE), i + 1)[1],
                0,
            )

    return spelled


@pytest.mark.parametrize("spelling", ["le", "gt", "down", "step2", "and"])
def test_condition_spellings_are_solved_exactly(spelling):
    k = _spelled(spelling)
    assert lower(k).unsupported == []
    _all_proved(k)


@pytest.mark.parametrize("spelling", ["le", "gt", "down", "step2", "and"])
def test_condition_spellings_run_past_a_shorter_output(spelling):
    """The same loops over an output one element short: the last write is out of bounds."""
    obs = _obs(_spelled(spelling, "N - 1"), "bounds")
    assert any(o.status == "violated" and "outside its shape" in o.message for o in obs), obs


# ----------------------------------------------------------------------- loads in the condition


def _cond_load(offset: int):
    """`while i < lens[b + offset]`: copies a row prefix of each sequence."""

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "L <= 64"],
        tensors=dict(
            lens=tp.Input(("B",), "int32", values="0 <= v <= L"),
            x=tp.Input(("B", "L")),
            o=tp.Input(("B", "L"), updated=True),
        ),
    )
    def cond_load(lens, x, o):
        b = tp.program_id(0)

        def body(i):
            tp.store(o, (b, tp.ds(i, 1)), tp.load(x, (b, tp.ds(i, 1))))
            return i + 1

        lax.while_loop(lambda i: i < tp.load(lens, (b + offset,)), body, jnp.int32(0))

    return cond_load


def test_a_load_in_the_condition_is_bounds_checked():
    obs = _obs(_cond_load(1), "bounds")
    ob = _not_proved(obs, "load lens")
    assert ob.status == "violated" and ob.counterexample["b"] == ob.counterexample["B"] - 1


def test_a_loaded_bound_is_data_with_its_declared_range_not_a_size():
    m = lower(_cond_load(0))
    (d,) = m.data.values()
    assert d.tensor == "lens" and "lens" not in m.sizes
    assert f"in [0, {d.name})" in m.listing()
    _all_proved(_cond_load(0))


def test_a_loaded_bound_without_a_range_is_not_proved():
    """With no declared range the loaded bound may exceed the row: the copy overruns."""

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "L <= 64"],
        tensors=dict(
            lens=tp.Input(("B",), "int32"),
            x=tp.Input(("B", "L")),
            o=tp.Input(("B", "L"), updated=True),
        ),
    )
    def unranged(lens, x, o):
        b = tp.program_id(0)

        def body(i):
            tp.store(o, (b, tp.ds(i, 1)), tp.load(x, (b, tp.ds(i, 1))))
            return i + 1

        lax.while_loop(lambda i: i < tp.load(lens, (b,)), body, jnp.int32(0))

    ob = _not_proved(_obs(unranged, "bounds"), "load x")
    assert ob.status == "violated"


# ---------------------------------------------------------------------------- no closed form


def _moving_load():
    @tp.kernel(
        grid={"b": 1},
        assume=["N <= 64"],
        tensors=dict(
            t=tp.Input(("N",), "int32", values="0 <= v <= 1"), o=tp.Input(("N",), updated=True)
        ),
    )
    def moving_load(t, o):
        def body(i):
            tp.store(o, (tp.ds(i, 1),), ONE)
            return i + 1

        lax.while_loop(lambda i: tp.load(t, (i,)) > 0, body, jnp.int32(0))

    return moving_load


def _not_equal():
    @tp.kernel(grid={"b": 1}, assume=["N <= 64"], tensors=dict(o=tp.Input(("N",), updated=True)))
    def not_equal(o):
        def body(i):
            tp.store(o, (tp.ds(i, 1),), ONE)
            return i + 1

        lax.while_loop(lambda i: i != tp.size("N"), body, jnp.int32(0))

    return not_equal


def _data_step():
    @tp.kernel(
        grid={"b": 1},
        assume=["N <= 64"],
        tensors=dict(
            t=tp.Input(("N",), "int32", values="1 <= v <= 2"), o=tp.Input(("N",), updated=True)
        ),
    )
    def data_step(t, o):
        def body(i):
            tp.store(o, (tp.ds(i, 1),), ONE)
            return i + tp.load(t, (i,))

        lax.while_loop(lambda i: i < tp.size("N"), body, jnp.int32(0))

    return data_step


@pytest.mark.parametrize("make", [_moving_load, _not_equal, _data_step])
def test_loops_without_a_closed_form_are_unsupported(make):
    k = make()
    m = lower(k)
    assert m.unsupported and "no exact model" in m.unsupported[0].what, m.listing()
    statuses = {o.status for o in _obs(k)}
    assert "unknown" in statuses


def test_an_unmodelled_loop_hides_its_writes_from_coverage():
    """The output is written only inside a loop with no closed form: coverage is unknown
    (not a false "never written"), and the message names the loop's accesses."""

    @tp.kernel(grid={"b": 1}, assume=["N <= 64"], tensors=dict(o=tp.Output(("N",))))
    def hidden(o):
        def body(i):
            tp.store(o, (tp.ds(i, 1),), ONE)  # MARK-hidden
            return i + 1

        lax.while_loop(lambda i: i != tp.size("N"), body, jnp.int32(0))

    obs = _obs(hidden)
    assert not any(o.status in ("proved", "violated") for o in obs if o.kind == "coverage")
    (u,) = lower(hidden).unsupported
    assert u.tensors == ("o",) and "store o at test_lowering_while.py:" in u.what
