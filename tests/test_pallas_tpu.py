"""The Mosaic TPU rules of ``tileproof.pallas`` (tileproof/pallas/_tpu.py): one kernel per rule
that must be refuted (or unknown) and a twin that must be proved.

Every kernel here is an ordinary ``pl.pallas_call`` with TPU compiler params, traced on
symbolic shapes exactly as a user's would be.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

import tileproof as tp
from tileproof.lowering import lower

A = tp.Arg


def _call(kernel, out_shape, grid, in_specs, out_specs, semantics, scratch=()):
    return pl.pallas_call(
        kernel,
        out_shape=out_shape,
        grid_spec=pltpu.PrefetchScalarGridSpec(
            num_scalar_prefetch=0,
            grid=grid,
            in_specs=in_specs,
            out_specs=out_specs,
            scratch_shapes=list(scratch),
        ),
        compiler_params=pltpu.CompilerParams(dimension_semantics=semantics),
    )


def _verdicts(k) -> dict:
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error is None, rep.error
    out: dict = {}
    for o in rep.obligations:
        out.setdefault(o.kind, set()).add(o.status)
    return out, rep


def _all_proved(k) -> None:
    _, rep = _verdicts(k)
    bad = [(o.kind, o.status, o.message) for o in rep.obligations if o.status != "proved"]
    assert not bad, bad


def _violated(k, kind: str, text: str = ""):
    _, rep = _verdicts(k)
    hits = [
        o
        for o in rep.obligations
        if o.kind == kind and o.status == "violated" and text in o.message
    ]
    assert hits, [(o.kind, o.status, o.message) for o in rep.obligations if o.status != "proved"]
    return hits


# --------------------------------------------------------------------------- elementwise


def _double(x, *, rows=8, cols=128):
    def kernel(x_ref, o_ref):
        o_ref[...] = 2 * x_ref[...]

    n, m = x.shape
    return _call(
        kernel,
        jax.ShapeDtypeStruct(x.shape, x.dtype),
        (pl.cdiv(n, rows), pl.cdiv(m, cols)),
        [pl.BlockSpec((rows, cols), lambda i, j: (i, j))],
        pl.BlockSpec((rows, cols), lambda i, j: (i, j)),
        ("parallel", "parallel"),
    )(x)


def test_partial_edge_blocks_are_padded_and_only_their_in_array_part_is_written_back():
    # N and M not multiples of the block: the edge blocks are partial, their padding is
    # read (garbage) and written to the padding of the output buffer, which is dropped
    k = tp.pallas(
        _double,
        args=[A(("N", "M"))],
        assume=["N <= 4096", "M <= 4096"],
        reference=lambda x: 2 * x,
        backend="tpu",
    )
    _all_proved(k)
    text = lower(k).listing()
    assert "x_ref_vmem" in text and "o_ref_vmem" in text  # the VMEM copies
    assert "_c0 < N - 8*pid0" in text  # the copy-in / write-back masks of the edge blocks


def test_partial_edge_padding_used_in_a_stored_value_is_caught_numerically():
    # a row sum over a partial block along the summed axis folds the padding (garbage,
    # NaN in the executor) into real rows: the numeric run must not match
    def rowsum(x):
        def kernel(x_ref, o_ref):
            o_ref[...] = jnp.broadcast_to(jnp.sum(x_ref[...], axis=1, keepdims=True), (8, 128))

        n, m = x.shape
        return _call(
            kernel,
            jax.ShapeDtypeStruct((n, 128), x.dtype),
            (pl.cdiv(n, 8),),
            [pl.BlockSpec((8, m), lambda i: (i, 0))],
            pl.BlockSpec((8, 128), lambda i: (i, 0)),
            ("parallel",),
        )(x)

    ref = lambda x: jnp.broadcast_to(x.sum(axis=1, keepdims=True), (x.shape[0], 128))  # noqa: E731
    good = tp.pallas(
        rowsum,
        args=[A(("N", 256))],
        assume=["N <= 64"],
        reference=ref,
        backend="tpu",
        numeric={"sizes": [{"N": 12}]},
    )
    (rep,) = tp.verify.verify(good, numeric=True).kernels
    assert rep.numeric.status == "matched", rep.numeric.message  # rows 12..15: padding, dropped

    def rowsum_wide(x):  # blocks of 128 columns over a row of M: the last one is partial
        def kernel(x_ref, o_ref):
            @pl.when(pl.program_id(1) == 0)
            def _():
                o_ref[...] = jnp.zeros_like(o_ref)

            o_ref[...] += jnp.broadcast_to(jnp.sum(x_ref[...], axis=1, keepdims=True), (8, 128))

        n, m = x.shape
        return _call(
            kernel,
            jax.ShapeDtypeStruct((n, 128), x.dtype),
            (pl.cdiv(n, 8), pl.cdiv(m, 128)),
            [pl.BlockSpec((8, 128), lambda i, j: (i, j))],
            pl.BlockSpec((8, 128), lambda i, j: (i, 0)),
            ("parallel", "arbitrary"),
        )(x)

    bad = tp.pallas(
        rowsum_wide,
        args=[A((8, "M"))],
        assume=["M <= 1024"],
        reference=ref,
        backend="tpu",
        numeric={"sizes": [{"M": 200}]},
    )
    verdicts, rep = _verdicts(bad)
    assert verdicts["coverage"] == {"proved"}  # every element is written: a value defect
    (rep,) = tp.verify.verify(bad, numeric=True).kernels
    assert rep.numeric.status == "mismatch", rep.numeric
    twin = tp.pallas(
        rowsum_wide,
        args=[A((8, "128*M"))],
        assume=["M <= 8"],
        reference=ref,
        backend="tpu",
        numeric={"sizes": [{"M": 2}]},
    )
    (rep,) = tp.verify.verify(twin, numeric=True).kernels
    assert rep.numeric.status == "matched", rep.numeric.message


# --------------------------------------------------------------------------- tiling rule


@pytest.mark.parametrize(
    "block,array,ok",
    [
        ((8, 128), ("N", 256), True),
        ((16, 256), ("N", 512), True),
        ((8, 100), ("N", 100), True),  # equal to the array's last dim
        ((8, 100), ("N", 256), False),  # neither a multiple of 128 nor the array's dim
        ((4, 128), ("N", 256), False),  # 4 rows: not a multiple of 8, N may differ from 4
    ],
)
def test_block_shapes_follow_the_mosaic_tiling_rule(block, array, ok):
    k = tp.pallas(
        functools.partial(_double, rows=block[0], cols=block[1]),
        args=[A(array)],
        assume=["N <= 4096"],
        reference=lambda x: 2 * x,
        backend="tpu",
    )
    _, rep = _verdicts(k)
    tiling = [o for o in rep.obligations if "tiles its array" in o.message]
    if ok:
        assert all(o.status == "proved" for o in tiling)
        _all_proved(k)
    else:
        assert tiling and all(
            o.status == "violated"
            and o.kind == "shape"
            and o.counterexample
            and "_check_block_mappings" in o.hint
            for o in tiling
        )


def test_the_tiling_rule_holds_where_the_domain_pins_the_array_dim():
    k = tp.pallas(
        functools.partial(_double, rows=4, cols=128),
        args=[A(("N", 256))],
        assume=["N == 4"],
        reference=lambda x: 2 * x,
        backend="tpu",
    )
    _all_proved(k)


# --------------------------------------------------------------------------- revisits


def _matmul(x, y, *, semantics=("parallel", "parallel", "arbitrary"), init=True, bk=128):
    def kernel(x_ref, y_ref, o_ref, acc_ref):
        if init:

            @pl.when(pl.program_id(2) == 0)
            def _():
                acc_ref[...] = jnp.zeros_like(acc_ref)

        acc_ref[...] += jnp.dot(x_ref[...], y_ref[...], preferred_element_type=jnp.float32)
        o_ref[...] = acc_ref[...]

    m, kk = x.shape
    n = y.shape[1]
    return _call(
        kernel,
        jax.ShapeDtypeStruct((m, n), jnp.float32),
        (m // 128, n // 128, kk // bk),
        [
            pl.BlockSpec((128, bk), lambda i, j, k: (i, k)),
            pl.BlockSpec((bk, 128), lambda i, j, k: (k, j)),
        ],
        pl.BlockSpec((128, 128), lambda i, j, k: (i, j)),
        semantics,
        [pltpu.VMEM((128, 128), jnp.float32)],
    )(x, y)


_MM = dict(
    args=[A(("128*M", "128*K")), A(("128*K", "128*N"))],
    assume=["M <= 64", "N <= 64", "K <= 64"],
    reference=lambda x, y: x @ y,
    backend="tpu",
)


def test_an_output_revisited_on_consecutive_arbitrary_iterations_accumulates():
    _all_proved(tp.pallas(_matmul, **_MM))


def test_an_output_revisited_across_a_parallel_axis_is_a_race():
    k = tp.pallas(functools.partial(_matmul, semantics=("parallel", "parallel", "parallel")), **_MM)
    (o, *_) = _violated(k, "coverage", "written twice")
    assert "matmul" not in o.location.file  # at this file's pallas_call
    assert o.location.file == __file__


def test_scratch_does_not_carry_across_parallel_iterations():
    # the accumulator is initialised at k == 0 only: with k parallel, a program whose
    # k > 0 reads a scratch nobody on its core wrote
    k = tp.pallas(functools.partial(_matmul, semantics=("parallel", "parallel", "parallel")), **_MM)
    _violated(k, "coverage", "acc_ref")


def test_an_uninitialised_accumulator_is_read_before_written():
    k = tp.pallas(functools.partial(_matmul, init=False), **_MM)
    _violated(k, "coverage", "acc_ref")


def _copy_2d(x, *, out_map):
    """A grid of two arbitrary axes (a, b) whose output block is ``out_map(a, b)``."""

    def kernel(x_ref, o_ref):
        o_ref[...] = x_ref[...]

    return _call(
        kernel,
        jax.ShapeDtypeStruct((8, 256), x.dtype),
        (2, 2),
        [pl.BlockSpec((8, 128), out_map)],
        pl.BlockSpec((8, 128), out_map),
        ("arbitrary", "arbitrary"),
    )(x)


def test_an_output_revisited_later_along_an_arbitrary_axis_is_written_back_twice():
    # blocks 0, 1, 0, 1: block 0 comes back after block 1 (its VMEM buffer then holds
    # garbage); the three iterations are the counterexample
    ping_pong = functools.partial(_copy_2d, out_map=lambda a, b: (0, b))
    k = tp.pallas(ping_pong, args=[A((8, 256))], backend="tpu")
    (o,) = _violated(k, "shape", "visited on consecutive iterations")
    assert o.counterexample == {
        "visit1_k0": 0,
        "visit1_k1": 0,
        "visit2_k0": 0,
        "visit2_k1": 1,
        "visit3_k0": 1,
        "visit3_k1": 0,
    }
    assert o.location.file == __file__
    # blocks 0, 0, 1, 1: revisits on consecutive iterations stay in VMEM
    consecutive = functools.partial(_copy_2d, out_map=lambda a, b: (0, a))
    _all_proved(tp.pallas(consecutive, args=[A((8, 256))], backend="tpu"))


def _acc_2d(x, *, first):
    """Sums two input blocks into each output block (blocks 0, 0, 1, 1), zeroing it when
    ``first(a, b)``."""

    def kernel(x_ref, o_ref):
        @pl.when(first(pl.program_id(0), pl.program_id(1)))
        def _():
            o_ref[...] = jnp.zeros_like(o_ref)

        o_ref[...] += x_ref[...]

    return _call(
        kernel,
        jax.ShapeDtypeStruct((8, 256), x.dtype),
        (2, 2),
        [pl.BlockSpec((8, 128), lambda a, b: (0, 2 * a + b))],
        pl.BlockSpec((8, 128), lambda a, b: (0, a)),
        ("arbitrary", "arbitrary"),
    )(x)


def test_a_new_output_block_starts_from_garbage():
    # zeroed at the very first iteration only: the second block (a == 1) accumulates into
    # a VMEM buffer nobody wrote in this visit
    once = functools.partial(_acc_2d, first=lambda a, b: (a == 0) & (b == 0))
    _violated(tp.pallas(once, args=[A((8, 512))], backend="tpu"), "coverage", "o_ref_vmem")
    each = functools.partial(_acc_2d, first=lambda a, b: b == 0)
    _all_proved(tp.pallas(each, args=[A((8, 512))], backend="tpu"))


# --------------------------------------------------------------------------- bounds


def test_a_block_index_past_the_array_is_an_out_of_bounds_dma():
    def shifted(x):
        def kernel(x_ref, o_ref):
            o_ref[...] = x_ref[...]

        n = x.shape[0]
        return _call(
            kernel,
            jax.ShapeDtypeStruct(x.shape, x.dtype),
            (n // 8,),
            [pl.BlockSpec((8, 128), lambda i: (i + 1, 0))],
            pl.BlockSpec((8, 128), lambda i: (i, 0)),
            ("parallel",),
        )(x)

    k = tp.pallas(shifted, args=[A(("8*N", 128))], assume=["N <= 64"], backend="tpu")
    (o, *_) = _violated(k, "bounds", "x_ref")
    assert o.location.file == __file__


def test_indexing_past_the_block_is_out_of_bounds_of_its_vmem_buffer():
    def window(x, *, off):
        def kernel(x_ref, o_ref):  # odd programs read rows [off, off + 8) of the block
            o_ref[...] = x_ref[pl.ds(off * (pl.program_id(0) % 2), 8), :]

        n = x.shape[0]
        return _call(
            kernel,
            jax.ShapeDtypeStruct((n // 2, 128), x.dtype),
            (n // 16,),
            [pl.BlockSpec((16, 128), lambda i: (i, 0))],
            pl.BlockSpec((8, 128), lambda i: (i, 0)),
            ("parallel",),
        )(x)

    args = dict(args=[A(("16*N", 128))], assume=["N <= 64"], backend="tpu")
    _violated(tp.pallas(functools.partial(window, off=12), **args), "bounds", "x_ref_vmem")
    _all_proved(tp.pallas(functools.partial(window, off=8), **args))


def test_a_floor_divided_grid_leaves_output_rows_unwritten():
    # JAX's TPU matmul has grid M // bm: a precondition M % bm == 0 it does not state
    from jax.experimental.pallas.ops.tpu import matmul as mm

    k = tp.pallas(
        mm.matmul,
        args=[A(("M", "128*K")), A(("128*K", "128*N"))],
        static=dict(block_shape=(128, 128), block_k=128),
        assume=["M <= 2**12", "N <= 32", "K <= 32"],
        backend="tpu",
    )
    _violated(k, "coverage", "never written")
    _all_proved(
        tp.pallas(
            mm.matmul,
            args=[A(("128*M", "128*K")), A(("128*K", "128*N"))],
            static=dict(block_shape=(128, 128), block_k=128),
            assume=["M <= 32", "N <= 32", "K <= 32"],
            backend="tpu",
        )
    )


# --------------------------------------------------------------------------- fail closed


def test_a_python_truth_test_of_a_symbolic_size_is_refused():
    # `if n % 8:` on a symbolic n is silently true for every n under jax.export: the traced
    # program would not be the one that runs where n % 8 == 0
    def padded(x):
        n = x.shape[0]
        if n % 8:
            x = jnp.pad(x, ((0, 8 - n % 8), (0, 0)))
        return _double(x)[:n]

    with pytest.raises(tp.spec.SpecError, match="truth value of the symbolic size"):
        tp.pallas(padded, args=[A(("N", 128))], backend="tpu")
    k = tp.pallas(padded, args=[A(("8*N", 128))], assume=["N <= 64"], backend="tpu")
    _all_proved(k)  # mod(8*N, 8) is 0 for JAX too: no truth test of a symbolic size


def test_a_paired_dma_is_modelled_and_a_regular_semaphore_unsupported_at_its_line():
    # the DMA rules themselves: tests/test_pallas_dma.py
    def copy(x):
        def kernel(x_hbm, o_ref, buf, sem):
            c = pltpu.make_async_copy(x_hbm.at[pl.ds(pl.program_id(0) * 8, 8)], buf, sem)
            c.start()
            c.wait()
            o_ref[...] = buf[...]

        n = x.shape[0]
        return _call(
            kernel,
            jax.ShapeDtypeStruct(x.shape, x.dtype),
            (n // 8,),
            [pl.BlockSpec(memory_space=pl.ANY)],
            pl.BlockSpec((8, 128), lambda i: (i, 0)),
            ("parallel",),
            [pltpu.VMEM((8, 128), jnp.float32), pltpu.SemaphoreType.DMA],
        )(x)

    k = tp.pallas(copy, args=[A(("8*N", 128))], assume=["N <= 64"], backend="tpu")
    _all_proved(k)

    def signal(x):
        def kernel(x_ref, o_ref, sem):
            pl.semaphore_signal(sem, 1)
            pl.semaphore_wait(sem, 1)
            o_ref[...] = x_ref[...]

        n = x.shape[0]
        return _call(
            kernel,
            jax.ShapeDtypeStruct(x.shape, x.dtype),
            (n // 8,),
            [pl.BlockSpec((8, 128), lambda i: (i, 0))],
            pl.BlockSpec((8, 128), lambda i: (i, 0)),
            ("parallel",),
            [pltpu.SemaphoreType.REGULAR],
        )(x)

    k = tp.pallas(signal, args=[A(("8*N", 128))], assume=["N <= 64"], backend="tpu")
    _, rep = _verdicts(k)
    uns = [o for o in rep.obligations if o.kind == "unsupported"]
    assert uns and all(o.location.file == __file__ for o in uns)
    assert any("semaphore_signal" in o.message for o in uns)
    assert not any(o.status == "proved" and o.kind in ("race", "coverage") for o in rep.obligations)


# --------------------------------------------------------------------------- reads


def test_a_floor_divided_reduction_grid_that_drops_the_k_tail_is_a_reads_violation():
    # JAX's TPU matmul walks K in K // bk blocks: with K % bk != 0 the tail columns of x
    # and rows of y are never read, although every output element is written (K >= 128:
    # below it no K block runs and nothing is written, a coverage violation)
    from jax.experimental.pallas.ops.tpu import matmul as mm

    args = dict(
        static=dict(block_shape=(128, 128), block_k=128),
        assume=["M <= 32", "N <= 32", "K <= 2**12", "K >= 128"],
        backend="tpu",
    )
    k = tp.pallas(
        mm.matmul, args=[A(("128*M", "K"), reduced="all"), A(("K", "128*N"), reduced="all")], **args
    )
    verdicts, rep = _verdicts(k)
    assert verdicts["coverage"] == {"proved"}
    hits = [o for o in rep.obligations if o.kind == "reads" and o.status == "violated"]
    assert {o.detail.get("tensor") for o in hits} == {"x_tile_ref", "y_tile_ref"}
    assert all(o.counterexample["K"] % 128 for o in hits)
    _all_proved(
        tp.pallas(
            mm.matmul,
            args=[A(("128*M", "128*K"), reduced="all"), A(("128*K", "128*N"), reduced="all")],
            **{**args, "assume": ["M <= 32", "N <= 32", "K <= 32"]},
        )
    )


def test_reduced_needs_the_argument_itself():
    def flat(x):
        return _double(x.reshape(8, -1))

    with pytest.raises(tp.spec.SpecError, match="reduced="):
        tp.pallas(flat, args=[A((8 * 256,), reduced="all")], backend="tpu")


def test_the_whole_function_runs_with_its_tpu_calls_executed_by_tileproof():
    # end to end (function_runner builds the concrete call with the TPU rules): JAX's TPU
    # matmul at a K that is not a multiple of block_k returns x[:, :128] @ y[:128] -- the
    # dropped tail, shown concretely (interpret mode returns the same)
    from jax.experimental.pallas.ops.tpu import matmul as mm

    static = dict(block_shape=(128, 128), block_k=128)
    args = [A((128, "K")), A(("K", 128))]
    ok = tp.pallas.check_function(
        mm.matmul, args=args, env={"K": 256}, static=static, reference=lambda x, y: x @ y
    )
    assert ok["status"] == "matched" and not ok["findings"], ok
    tail = tp.pallas.check_function(
        mm.matmul, args=args, env={"K": 200}, static=static, reference=lambda x, y: x @ y
    )
    assert tail["status"] == "mismatch" and tail["max_abs_err"] > 1, tail
    dropped = tp.pallas.check_function(
        mm.matmul,
        args=args,
        env={"K": 200},
        static=static,
        reference=lambda x, y: x[:, :128] @ y[:128],
    )
    assert dropped["status"] == "matched", dropped
