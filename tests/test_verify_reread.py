"""Two reads of one entry of a tensor the kernel stores into in between are two values.

The static verifier links data values read from index tensors (two reads of one entry of an
input agree).  That is sound only while nobody writes the entry: a read after the kernel's
own store sees the new value.  Each class below has a spec whose proof needs the two reads
to agree (it must come out ``violated`` or ``unknown``, never ``proved``) and a correct
twin that must stay ``proved``:

1. one read node on two iterations of a loop that rewrites the entry (scratch, output,
   input updated in place; a Pallas ref) -- the same store on two iterations then writes
   one element twice;
2. a read of a stored-into tensor in a loop makes the loop matter to the double-write
   check even when the read's index does not use the loop index;
3. the same across programs: every program reads a shared entry that program 0 rewrites
   between grid barriers;
4. a refutation that needs such values is not reported ``violated``: the model's concrete
   runs do not follow stored values, so it cannot be confirmed (``unknown``), and the
   model's oracle refuses to give such a read a value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from jax import lax

import tileproof as tpk
import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.model._data import Oracle, RunError
from tileproof.verify.static import check_static


def _unique(kernel, tensor: str = "o"):
    """The double-write obligations of ``tensor``'s stores."""
    obs = check_static(lower(kernel), kinds=("shape", "coverage"))
    return [
        o
        for o in obs
        if o.kind == "coverage"
        and o.detail.get("tensor") == tensor
        and ("writes no element twice" in o.message or "is written twice" in o.message)
    ]


def _caught(obs):
    assert obs and all(o.status in ("violated", "unknown") for o in obs), [
        (o.status, o.message) for o in obs
    ]


def _proved(obs):
    assert obs and all(o.status == "proved" for o in obs), [
        (o.status, o.message, o.reason) for o in obs
    ]


# ------------------------------------------ 1. one read node, the entry rewritten in between


def _rotating(role: str, where: str):
    """``v = s[0]`` then ``o[(v + i) % N]`` and ``s[0] = v - 1 (mod N)``: every iteration
    writes ``o[0]``.  Equating the loop's reads of ``s[0]`` makes ``(v + i) % N`` one-to-one
    in ``i``.  ``where="before"`` reads ``s[0]`` once before the loop: then the element
    really moves with ``i`` (the twin)."""
    decl = {
        "scratch": tp.Scratch((1,), "int32", values="0 <= v < N"),
        "output": tp.Output((1,), "int32", values="0 <= v < N"),
        "input": tp.Input((1,), "int32", values="0 <= v < N", updated=True),
    }[role]

    @tp.kernel(
        grid={"p": 1},
        assume=["N <= 64"],
        tensors=dict(s=decl, x=tp.Input(("N",)), o=tp.Output(("N",))),
    )
    def k(s, x, o):
        n = tp.size("N")
        if role != "input":
            tp.store(s, (0,), jnp.int32(0))
        first = tp.load(s, (0,))

        def body(i, c):
            v = tp.load(s, (0,)) if where == "inside" else first
            tp.store(o, ((v + i) % n,), tp.load(x, (i,)))
            tp.store(s, (0,), (v + n - 1) % n)
            return c

        lax.fori_loop(0, n, body, 0)

    return k


@pytest.mark.parametrize("role", ["scratch", "output", "input"])
def test_a_read_node_on_two_iterations_of_a_rewritten_entry_is_two_values(role):
    obs = _unique(_rotating(role, "inside"))
    _caught(obs)
    # the solver's counterexample needs s[0] to differ between iterations: not confirmable
    assert any("s after the kernel may have stored" in o.reason for o in obs), obs


@pytest.mark.parametrize("role", ["scratch", "output", "input"])
def test_one_execution_of_a_read_is_one_value(role):
    _proved(_unique(_rotating(role, "before")))


def _pallas_rotating(where: str):
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as plgpu

    n = 8

    def kern(x_ref, o_ref, c_ref):
        c_ref[0] = 0
        first = c_ref[0]

        def body(i, carry):
            v = c_ref[0] if where == "inside" else first
            o_ref[pl.ds((v + i) % n, 1)] = x_ref[pl.ds(i, 1)]
            c_ref[0] = (v + n - 1) % n
            return carry

        lax.fori_loop(0, n, body, 0)

    def f(x):
        return pl.pallas_call(
            kern,
            out_shape=(
                jax.ShapeDtypeStruct((n,), jnp.float32),
                jax.ShapeDtypeStruct((1,), jnp.int32),
            ),
            grid=(1,),
            compiler_params=plgpu.CompilerParams(num_warps=4),
        )(x)

    return tpk.pallas(f, args=[tpk.Arg((n,))], backend="gpu")


@pytest.mark.parametrize("where", ["inside", "before"])
def test_a_pallas_ref_read_written_and_read_again(where):
    obs = _unique(_pallas_rotating(where), "o_ref")
    if where == "inside":
        _caught(obs)
    else:
        _proved(obs)


# ------------------------------- 2. a read of a stored-into tensor makes its loop relevant


def _table_in_loop(written: bool):
    """``o[t[i]]`` for every ``i``: two entries of ``t`` may hold one value (a double write).
    The read's index uses ``i``; once ``t`` is stored into, the read has no index, and the
    loop must still count as one the store's element depends on."""

    @tp.kernel(
        grid={"p": 1},
        assume=["N <= 64"],
        tensors=dict(
            t=tp.Input(("N",), "int32", values="0 <= v < N", updated=written),
            x=tp.Input(("N",)),
            o=tp.Output(("N",)),
        ),
    )
    def k(t, x, o):
        def body(i, c):
            tp.store(o, (tp.load(t, (i,)),), tp.load(x, (i,)))
            return c

        lax.fori_loop(0, tp.size("N"), body, 0)
        if written:
            tp.store(t, (0,), jnp.int32(0))

    return k


@pytest.mark.parametrize("written", [False, True])
def test_a_table_read_in_a_loop_can_repeat_a_value(written):
    obs = _unique(_table_in_loop(written))
    _caught(obs)
    if not written:  # an unwritten input: the solver's values are confirmed
        assert obs[0].status == "violated"


def _accumulate(written: bool):
    """The twin: ``o[t[0]]`` rewritten on every iteration by one program (an accumulation
    when ``t`` is never stored into: ``t[0]`` is one value)."""

    @tp.kernel(
        grid={"p": "P"},
        assume=["N <= 64", "P <= 8"],
        tensors=dict(
            t=tp.Input(("P",), "int32", values="0 <= v < P", distinct=True),
            x=tp.Input(("N",)),
            o=tp.Output(("P",)),
        ),
    )
    def k(t, x, o):
        p = tp.program_id(0)
        v = tp.load(t, (p,))

        def body(i, acc):
            acc = acc + tp.load(x, (i,))
            tp.store(o, (v,), acc)
            return acc

        lax.fori_loop(0, tp.size("N"), body, jnp.float32(0))

    return k


def test_an_accumulation_through_an_unwritten_table_is_proved():
    _proved(_unique(_accumulate(False)))


def _settled_table(rewrite: bool):
    """Each program fills ``s[p]``, then (after a barrier) accumulates into ``o[p, s[p]]``
    on every iteration: one element, rewritten -- an accumulation, since no store of ``s``
    follows the barrier.  With ``rewrite`` the loop also moves ``s[p]`` on: its reads are
    then fresh values, and the loop's iterations write different elements, wrapping
    around to one written before once ``N > P``."""

    @tp.kernel(
        grid={"p": "P"},
        assume=["N <= 64", "P <= 8"],
        tensors=dict(
            s=tp.Scratch(("P",), "int32", values="0 <= v < P"),
            x=tp.Input(("N",)),
            o=tp.Output(("P", "P")),
        ),
    )
    def k(s, x, o):
        p, np_ = tp.program_id(0), tp.size("P")
        tp.store(s, (p,), p)
        tp.barrier("grid")

        def body(i, acc):
            v = tp.load(s, (p,))
            acc = acc + tp.load(x, (i,))
            tp.store(o, (p, v), acc)
            if rewrite:
                tp.store(s, (p,), (v + 1) % np_)
            return acc

        lax.fori_loop(0, tp.size("N"), body, jnp.float32(0))

    return k


def test_a_settled_table_read_in_a_loop_is_one_value_per_element():
    _proved(_unique(_settled_table(False)))


def test_a_table_rewritten_in_the_loop_is_not_settled():
    _caught(_unique(_settled_table(True)))


# ------------------------------------------------------------- 3. across programs


def _shared_counter(rewrite: bool):
    """Every program reads ``s[0]`` and writes ``o[(v + p) % G]``; program 0 sets ``s[0]``
    to ``v + 1`` between grid barriers.  With one value for every read the programs' writes
    are a permutation; in truth iteration 0's ``o[1]`` (program 1) is iteration 1's
    (program 0).  Without the rewrite the loop rewrites each program's own element: the
    twin reads ``s[0]`` once, before the loop."""

    @tp.kernel(
        grid={"p": "G"},
        assume=["G <= 8"],
        tensors=dict(
            s=tp.Scratch((1,), "int32", values="0 <= v < G"),
            x=tp.Input(("G",)),
            o=tp.Output(("G",)),
        ),
    )
    def k(s, x, o):
        p, g = tp.program_id(0), tp.size("G")

        @tp.when(p == 0)
        def _():
            tp.store(s, (0,), jnp.int32(0))

        tp.barrier("grid")
        first = tp.load(s, (0,))

        def body(i, c):
            v = tp.load(s, (0,)) if rewrite else first
            tp.store(o, ((first + p) % g,) if not rewrite else ((v + p) % g,), tp.load(x, (p,)))
            tp.barrier("grid")
            if rewrite:

                @tp.when(p == 0)
                def _():
                    tp.store(s, (0,), (v + 1) % g)

            tp.barrier("grid")
            return c

        lax.fori_loop(0, 2, body, 0)

    return k


def test_programs_reading_an_entry_rewritten_between_barriers_see_two_values():
    _caught(_unique(_shared_counter(True)))


def test_reads_after_the_last_store_of_a_tensor_agree_across_programs():
    """``s[0]`` is stored in phase 0 only: every read in a later phase sees that value."""
    _proved(_unique(_shared_counter(False)))


# ------------------------------------------- 4. no concrete value for a stored-into entry


def test_the_oracle_refuses_a_read_of_a_stored_into_tensor():
    m = lower(_rotating("scratch", "inside"))
    name = next(n for n, d in m.data.items() if d.tensor == "s")
    with pytest.raises(RunError, match="does not follow stored values"):
        Oracle(m, {"N": 2}, {})(name, (0,))
    m2 = lower(_table_in_loop(False))
    (t,) = m2.data
    assert Oracle(m2, {"N": 2}, {})(t, (1,)) in (0, 1)
