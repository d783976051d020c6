"""Paged attention's constructs (issue 12): for each rule a minimal kernel that must be
refuted or unknown and a twin that must be proved.

A loop carry advanced by a step the loop chooses from data (paged attention's walk to the
next non-empty sequence, ``where(lengths[b] == 0, b + 1, b)``) is modelled as
``init + d1 * m + d2 * (s - m)`` for some ``0 <= m <= s`` (tileproof/lowering/_loops.py,
``_carried_steps``): a superset of the reachable values, so proofs over it stand and every
refutation of such a kernel is reported ``unknown`` (its would-be counterexample kept).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

import tileproof as tp
from tileproof.lowering import lower

A = tp.Arg


def _walk(body):
    """``body(lens_ref, x_ref, o_ref, b, n)`` per program ``b`` of a grid of ``n = B``
    programs; ``lens`` is a scalar-prefetch table ``(B,)``."""

    def kernel(lens_ref, x_ref, o_ref):
        body(lens_ref, x_ref, o_ref, pl.program_id(0), lens_ref.shape[0])

    def f(lens, x):
        n = lens.shape[0]
        return pl.pallas_call(
            kernel,
            grid_spec=pltpu.PrefetchScalarGridSpec(
                num_scalar_prefetch=1,
                grid=(n,),
                in_specs=[pl.BlockSpec((8, 128), lambda i, lens: (i, 0))],
                out_specs=pl.BlockSpec((8, 128), lambda i, lens: (i, 0)),
            ),
            out_shape=jax.ShapeDtypeStruct((n * 8, 128), jnp.float32),
            compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel",)),
        )(lens, x)

    return f


def _spec(body, values="0 <= v <= 4"):
    return tp.pallas(
        _walk(body),
        args=[A(("B",), "int32", values=values), A(("8*B", 128))],
        assume=["B <= 64"],
        backend="tpu",
    )


def _report(k):
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error is None, rep.error
    return rep


def _all_proved(k):
    rep = _report(k)
    bad = [(o.kind, o.status, o.message) for o in rep.obligations if o.status != "proved"]
    assert not bad, bad
    return rep


def _unconfirmed(k, kind: str, text: str):
    """A would-be refutation over the over-approximated carry: unknown, never violated."""
    rep = _report(k)
    assert not [o for o in rep.obligations if o.status == "violated"]
    hits = [
        o
        for o in rep.obligations
        if o.kind == kind
        and o.status == "unknown"
        and text in o.message
        and "over-approximates" in (o.reason or "")
    ]
    assert hits, [(o.kind, o.status, o.message) for o in rep.obligations if o.status != "proved"]
    assert not any(o.kind == "unsupported" for o in rep.obligations)
    return hits


def _skip_empty(start):
    """The walk of paged attention: from ``start``, skip programs whose length is 0."""

    def nxt(lens_ref, b, n):
        return lax.fori_loop(b + 1, n, lambda _, c: jnp.where(lens_ref[c] == 0, c + 1, c), start(b))

    return nxt


# --------------------------------------------------------------------------- the twin


def _guarded(start):
    walk = _skip_empty(start)

    def body(lens_ref, x_ref, o_ref, b, n):
        nxt = walk(lens_ref, b, n)
        o_ref[...] = x_ref[...]

        @pl.when(nxt < n)
        def _():
            o_ref[...] = x_ref[...] + lens_ref[nxt].astype(jnp.float32)

    return body


def test_a_walk_over_empty_entries_is_modelled_and_proved():
    k = _spec(_guarded(lambda b: b + 1))
    _all_proved(k)
    # the carry is init + min(k, s) for a fresh step count: no unsupported construct
    assert not lower(k).unsupported


def test_a_walk_with_steps_in_both_branches_is_proved():
    # where(c, x + 2, x + 1): each step advances by 1 or 2; reads stay below 2*i + 2 <= ...
    def body(lens_ref, x_ref, o_ref, b, n):
        c = lax.fori_loop(
            0, 4, lambda _, c: jnp.where(lens_ref[b] == 0, c + 2, c + 1), jnp.int32(0)
        )  # c in [4, 8]
        o_ref[...] = x_ref[...]

        @pl.when(c < n)
        def _():
            o_ref[...] = x_ref[...] + lens_ref[c].astype(jnp.float32)

    _all_proved(_spec(body))


# --------------------------------------------------------------------------- refutations


def test_a_walk_started_one_past_its_loop_reads_past_the_table():
    # the carry starts at b + 2 while the loop starts at b + 1: with every later length 0
    # the walk reaches n inside the loop (a real defect; unknown: the carry is approximated)
    _unconfirmed(_spec(_guarded(lambda b: b + 2)), "bounds", "lens_ref")


def test_the_walk_result_read_without_its_guard_is_not_proved():
    walk = _skip_empty(lambda b: b + 1)

    def body(lens_ref, x_ref, o_ref, b, n):
        nxt = walk(lens_ref, b, n)  # n when every later length is 0
        o_ref[...] = x_ref[...] + lens_ref[nxt].astype(jnp.float32)

    _unconfirmed(_spec(body), "bounds", "lens_ref")


def test_a_walk_the_data_cannot_take_is_never_reported_violated():
    # the carry stops at 3 (its own condition), but the model lets it advance every step:
    # the out-of-bounds read at 4 of a 4-entry table is impossible, so it must not be
    # reported violated (fail closed: unknown, with the model's counterexample kept)
    def body(lens_ref, x_ref, o_ref, b, n):
        c = lax.fori_loop(0, n, lambda _, c: jnp.where(c < 3, c + 1, c), jnp.int32(0))
        o_ref[...] = x_ref[...] + lens_ref[c].astype(jnp.float32)

    k = tp.pallas(
        _walk(body),
        args=[A((4,), "int32", values="0 <= v <= 4"), A((32, 128))],
        backend="tpu",
    )
    _unconfirmed(k, "bounds", "lens_ref")


def test_a_step_added_as_a_chosen_increment_is_proved_and_its_overrun_unknown():
    # c + where(cond, 1, 0): the same walk, written as an added increment
    def body(stop):
        def f(lens_ref, x_ref, o_ref, b, n):
            c = lax.fori_loop(
                0, n, lambda _, c: c + jnp.where(lens_ref[b] == 0, 1, 0), jnp.int32(0)
            )  # c in [0, n]: n when every step advances
            o_ref[...] = x_ref[...] + lens_ref[jnp.minimum(c, stop(n))].astype(jnp.float32)

        return f

    _all_proved(_spec(body(lambda n: n - 1)))
    _unconfirmed(_spec(body(lambda n: n)), "bounds", "lens_ref")


def test_a_model_with_an_approximated_carry_has_no_concrete_run():
    from tileproof.model import RunError, run

    m = lower(_spec(_guarded(lambda b: b + 1)))
    try:
        run(m, {"B": 2})
    except RunError as e:
        assert "over-approximates" in str(e)
    else:
        raise AssertionError("a concrete run of an over-approximated carry")
