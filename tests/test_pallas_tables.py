"""Scalar-prefetch tables the kernel rewrites (tileproof/pallas/_tables.py): the wrapper fills
the table with a constant and the kernel stores back into it, as paged attention keeps its
double-buffer index.  The range of such a table is inferred only when it is inductive; for
each rule a kernel that must be refuted (or keep the whole dtype range) and a twin that
must be proved.

Every kernel keeps a slot number in ``slot_ref`` (prefetched, ``jnp.zeros((1,))`` or an
other constant), copies its block to the output and into a two-slot VMEM scratch
``buf.at[slot]``, then stores the next slot.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

import tileproof as tp
from tileproof.pallas._read import read_calls
from tileproof.pallas._tables import table_range

A = tp.Arg


def _slots(next_slot, *, init=0, slots=2, semantics="arbitrary"):
    """``out[8*i : 8*i + 8] = x[8*i : ...]``, the block also stored into ``buf.at[slot]``;
    the kernel then stores ``next_slot(slot, i)`` into the table."""

    def kernel(slot_ref, x_ref, o_ref, buf):
        i = pl.program_id(0)
        s = slot_ref[0]
        buf[s] = x_ref[...]  # the bounds of buf.at[slot] are what the table's range decides
        o_ref[...] = x_ref[...]
        slot_ref[0] = next_slot(s, i)

    def f(x):
        n = x.shape[0] // 8
        init_arr = init if isinstance(init, jax.Array) else jnp.full((1,), init, jnp.int32)
        return pl.pallas_call(
            kernel,
            grid_spec=pltpu.PrefetchScalarGridSpec(
                num_scalar_prefetch=1,
                grid=(n,),
                in_specs=[pl.BlockSpec((8, 128), lambda i, t: (i, 0))],
                out_specs=pl.BlockSpec((8, 128), lambda i, t: (i, 0)),
                scratch_shapes=[pltpu.VMEM((slots, 8, 128), jnp.float32)],
            ),
            out_shape=jax.ShapeDtypeStruct(x.shape, jnp.float32),
            compiler_params=pltpu.CompilerParams(dimension_semantics=(semantics,)),
        )(init_arr, x)

    return f


def _spec(fn):
    return tp.pallas(
        fn,
        args=[A(("8*R", 128))],
        assume=["R <= 64"],
        backend="tpu",
        reference=lambda x: x,
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


def _violated(k, kind: str, text: str):
    rep = _report(k)
    hits = [
        o
        for o in rep.obligations
        if o.kind == kind and o.status == "violated" and text in o.message
    ]
    assert hits, [(o.kind, o.status, o.message) for o in rep.obligations if o.status != "proved"]
    return hits


def _not_proved(k, kind: str, text: str):
    """A defect whose table value the model cannot confirm (it does not follow stored
    values): ``violated`` or ``unknown``, never ``proved``."""
    rep = _report(k)
    hits = [o for o in rep.obligations if o.kind == kind and text in o.message]
    assert hits and all(o.status != "proved" for o in hits), [
        (o.kind, o.status, o.message) for o in hits
    ]
    return hits


def _range(fn):
    x = jax.ShapeDtypeStruct((64, 128), jnp.float32)
    (call,) = read_calls(jax.make_jaxpr(fn)(x))
    k = [b.role for b in call.blocks].index("prefetch")
    init = call.operand_consts[k]
    return init, (table_range(call.body, call.body.invars[k], init) if init else None)


def _flip_where(s, i):
    return jnp.where(s == 0, 1, 0)  # paged attention's spelling


def _flip_sub(s, i):
    return 1 - s


def _flip_rem(s, i):
    return lax.rem(s + 1, 2)


def _flip_select(s, i):
    return lax.select(i % 2 == 0, 1, 0)  # a value of the grid index, not of the table


# --------------------------------------------------------------------------- the twins


def test_a_double_buffer_index_the_kernel_flips_is_proved_in_every_spelling():
    for flip in (_flip_where, _flip_sub, _flip_rem, _flip_select):
        fn = _slots(flip)
        assert _range(fn) == ((0, 0), (0, 1)), flip.__name__
        rep = _all_proved(_spec(fn))
        stores = [o for o in rep.obligations if "store into slot_ref" in o.message]
        assert stores and all("0 <= v and v <= 1" in o.message for o in stores), flip.__name__


def test_a_flip_inside_a_loop_and_a_branch_is_followed():
    def kernel(slot_ref, x_ref, o_ref, buf):
        buf[slot_ref[0]] = x_ref[...]
        o_ref[...] = x_ref[...]

        def flip(k, c):
            @pl.when(k % 2 == 0)
            def _():
                slot_ref[0] = 1 - slot_ref[0]

            return c

        lax.fori_loop(0, 3, flip, 0)

    def f(x):
        n = x.shape[0] // 8
        return pl.pallas_call(
            kernel,
            grid_spec=pltpu.PrefetchScalarGridSpec(
                num_scalar_prefetch=1,
                grid=(n,),
                in_specs=[pl.BlockSpec((8, 128), lambda i, t: (i, 0))],
                out_specs=pl.BlockSpec((8, 128), lambda i, t: (i, 0)),
                scratch_shapes=[pltpu.VMEM((2, 8, 128), jnp.float32)],
            ),
            out_shape=jax.ShapeDtypeStruct(x.shape, jnp.float32),
            compiler_params=pltpu.CompilerParams(dimension_semantics=("arbitrary",)),
        )(jnp.zeros((1,), jnp.int32), x)

    assert _range(f) == ((0, 0), (0, 1))
    _all_proved(_spec(f))


def test_a_constant_table_the_kernel_never_writes_keeps_its_constant():
    fn = _slots(lambda s, i: s, init=1)
    assert _range(fn) == ((1, 1), (1, 1))
    _all_proved(_spec(fn))


def test_a_constant_array_operand_is_read_as_its_values():
    init = jnp.asarray(np.array([1], np.int32))
    assert _range(_slots(_flip_sub, init=init))[1] == (0, 1)


# --------------------------------------------------------------------------- the defects


def test_a_stored_slot_past_the_buffer_is_refuted():
    # the kernel stores 2 into a two-slot index: the next step writes buf[2]
    fn = _slots(lambda s, i: jnp.where(s == 0, 2, 0))
    assert _range(fn)[1] == (0, 2)
    hits = _not_proved(_spec(fn), "bounds", "store buf")
    assert "slot_ref" in hits[0].message


def test_an_initial_constant_past_the_buffer_is_refuted():
    fn = _slots(_flip_where, init=3)
    assert _range(fn)[1] == (0, 3)
    _not_proved(_spec(fn), "bounds", "store buf")


def test_an_index_that_grows_without_bound_gets_no_range_and_is_refuted():
    # s + 1: the hull never settles, the table keeps the whole int32 range
    fn = _slots(lambda s, i: s + 1)
    assert _range(fn) == ((0, 0), None)
    _not_proved(_spec(fn), "bounds", "store buf")


# --------------------------------------------------------------------------- fail closed


def test_a_stored_value_the_rules_do_not_follow_keeps_the_whole_range():
    # products (no rule): no range is inferred, even though both happen to stay in [0, 1]
    for nxt in (lambda s, i: s * s, lambda s, i: (i * 0).astype(jnp.int32) * s):
        fn = _slots(nxt)
        assert _range(fn)[1] is None


def test_a_table_written_by_a_dma_or_bitcast_keeps_the_whole_range():
    def kernel(slot_ref, x_ref, o_ref, buf, sem):
        s = slot_ref[0]
        o_ref[...] = x_ref[...]
        buf[0] = x_ref[...]
        cp = pltpu.make_async_copy(slot_ref, slot_ref, sem.at[0])  # the table as a DMA operand
        cp.start()
        cp.wait()
        del s

    def f(x):
        n = x.shape[0] // 8
        return pl.pallas_call(
            kernel,
            grid_spec=pltpu.PrefetchScalarGridSpec(
                num_scalar_prefetch=1,
                grid=(n,),
                in_specs=[pl.BlockSpec((8, 128), lambda i, t: (i, 0))],
                out_specs=pl.BlockSpec((8, 128), lambda i, t: (i, 0)),
                scratch_shapes=[
                    pltpu.VMEM((2, 8, 128), jnp.float32),
                    pltpu.SemaphoreType.DMA((1,)),
                ],
            ),
            out_shape=jax.ShapeDtypeStruct(x.shape, jnp.float32),
        )(jnp.zeros((1,), jnp.int32), x)

    assert _range(f) == ((0, 0), None)


def test_a_user_argument_table_is_not_inferred():
    # the operand is the function's argument: its values are the caller's (declared or not)
    def f(t, x):
        def kernel(slot_ref, x_ref, o_ref, buf):
            s = slot_ref[0]
            buf[s] = x_ref[...]
            o_ref[...] = x_ref[...]

        n = x.shape[0] // 8
        return pl.pallas_call(
            kernel,
            grid_spec=pltpu.PrefetchScalarGridSpec(
                num_scalar_prefetch=1,
                grid=(n,),
                in_specs=[pl.BlockSpec((8, 128), lambda i, t: (i, 0))],
                out_specs=pl.BlockSpec((8, 128), lambda i, t: (i, 0)),
                scratch_shapes=[pltpu.VMEM((2, 8, 128), jnp.float32)],
            ),
            out_shape=jax.ShapeDtypeStruct(x.shape, jnp.float32),
            compiler_params=pltpu.CompilerParams(dimension_semantics=("arbitrary",)),
        )(t, x)

    k = tp.pallas(f, args=[A((1,), "int32"), A(("8*R", 128))], assume=["R <= 64"], backend="tpu")
    _violated(k, "bounds", "buf")
