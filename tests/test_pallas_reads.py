"""The ``reads`` obligation for unmodified Pallas kernels: a reduction reads all of its input.

The front end infers the region (``tileproof/pallas/_reduced.py``): an input whose loads
move with a grid axis or a loop index, and depend on no data, must be read everywhere.  A
floor-divided reduction (over a grid axis or a loop) that drops the tail is refuted even
though every output element is written; its ``pl.cdiv`` + masked twin is proved; an input
read through a table (rows it does not name are rightly skipped) gets no such obligation.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import pytest

import tileproof as tp
from tileproof.lowering import lower
from tileproof.pallas._reduced import traversed

_HERE = os.path.dirname(__file__)
_spec = importlib.util.spec_from_file_location(
    "pallas_more_r", os.path.join(_HERE, "specs", "pallas_more.py")
)
pm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pm)
SRC = os.path.abspath(os.path.join(_HERE, "specs", "pallas_more.py"))

MK = [tp.Arg(("M", "K"))]
DOM = ["M <= 1024", "K <= 2**16"]


def _obligations(fn, args, assume):
    k = tp.pallas(fn, args=args, assume=assume)
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error is None, rep.error
    return k, rep.obligations


def _reads(obs):
    return [o for o in obs if o.kind == "reads"]


@pytest.mark.parametrize(
    "fn",
    [
        functools.partial(pm.split_sum, grid="floor"),  # grid=(M, K // BK): a grid axis reduces
        functools.partial(pm.loop_sum, trip="floor"),  # fori_loop(0, K // BK): a loop reduces
    ],
    ids=["grid", "loop"],
)
def test_floor_divided_reduction_drops_the_tail_and_is_refuted(fn):
    _k, obs = _obligations(fn, MK, DOM)
    (reads,) = _reads(obs)
    assert reads.status == "violated", reads
    ce = reads.counterexample
    # substituted back: the element's column lies in the dropped tail
    assert ce["element[1]"] >= ce["K"] // pm.BK * pm.BK and ce["element[1]"] < ce["K"]
    assert "x_ref" in reads.message and "never read" in reads.message
    assert reads.location.file == SRC
    # every output element is written and nothing is out of bounds: only reads sees it
    others = [o for o in obs if o.kind != "reads"]
    assert all(o.status == "proved" for o in others), [
        o.message for o in others if o.status != "proved"
    ]


def test_floor_divided_reduction_is_refuted_with_a_tail_when_k_is_large():
    _k, obs = _obligations(
        functools.partial(pm.split_sum, grid="floor"), MK, ["M <= 1024", "K <= 2**16", "K >= 300"]
    )
    (reads,) = _reads(obs)
    assert reads.status == "violated"
    ce = reads.counterexample
    assert ce["K"] % pm.BK and ce["element[1]"] >= ce["K"] // pm.BK * pm.BK


@pytest.mark.parametrize("fn", [pm.split_sum, pm.loop_sum], ids=["grid", "loop"])
def test_cdiv_reduction_with_a_masked_tail_is_proved(fn):
    _k, obs = _obligations(fn, MK, DOM)
    (reads,) = _reads(obs)
    assert reads.status == "proved" and "x_ref" in reads.message
    bad = [(o.kind, o.message) for o in obs if o.status != "proved"]
    assert not bad, bad


def test_floor_division_is_fine_where_the_domain_makes_it_exact():
    _k, obs = _obligations(
        functools.partial(pm.loop_sum, trip="floor"),
        MK,
        ["M <= 1024", "K <= 2**16", "K % 128 == 0"],
    )
    (reads,) = _reads(obs)
    assert reads.status == "proved"


def test_an_input_read_through_a_table_is_not_required_whole():
    args = [tp.Arg(("N",), "int32", values="0 <= v < R"), tp.Arg(("R", 128))]
    k, obs = _obligations(pm.gather_rows, args, ["N <= 1024", "R <= 4096"])
    assert not [o for o in obs if o.status != "proved"]
    # the table itself is traversed by the grid: read whole; the gathered rows are not
    assert [o.message.split()[3] for o in _reads(obs)] == ["idx_ref"]
    m = lower(k)
    assert traversed(m, "idx_ref") and not traversed(m, "x_ref")


# --------------------------------------------------------------------------- clamped index maps


def _causal_sum(strict: bool):
    """``o[i] = sum(k[j] for j <= i)`` over 128-row blocks on a TPU grid ``(S, S)``: the K
    block index is clamped to 0 where block ``j`` is skipped, as JAX's causal TPU flash
    attention clamps it (``where(q_end > kv_start, j, 0)``), so the pipeline copies no new
    block there.  ``strict`` skips the diagonal too: the last K block is never read."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import tpu as pltpu

    def used(i, j):
        return i > j if strict else i >= j

    def kernel(k_ref, o_ref):
        i, j = pl.program_id(0), pl.program_id(1)

        @pl.when(j == 0)
        def _():
            o_ref[...] = jnp.zeros_like(o_ref)

        @pl.when(used(i, j))
        def _():
            o_ref[...] += k_ref[...]

    def f(k):
        s = k.shape[0] // 128
        return pl.pallas_call(
            kernel,
            grid=(s, s),
            in_specs=[pl.BlockSpec((128, 128), lambda i, j: (jnp.where(used(i, j), j, 0), 0))],
            out_specs=pl.BlockSpec((128, 128), lambda i, j: (i, 0)),
            out_shape=jax.ShapeDtypeStruct(k.shape, jnp.float32),
            compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
        )(k)

    return f


def _tpu_reads(fn):
    k = tp.pallas(fn, args=[tp.Arg(("128*S", 128))], assume=["S <= 64"], backend="tpu")
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error is None, rep.error
    return rep.obligations


def test_a_clamped_block_index_that_reaches_every_block_is_proved():
    # the witness solves each branch of the where: block j is read at step j by query
    # block i = S - 1 (its condition holds there), the candidate proved against the map
    obs = _tpu_reads(_causal_sum(strict=False))
    bad = [(o.kind, o.status, o.message, o.reason) for o in obs if o.status != "proved"]
    assert not bad, bad
    assert [o for o in _reads(obs) if "k_ref" in o.message]


def test_a_clamped_block_index_that_skips_the_last_block_is_not_proved():
    obs = _tpu_reads(_causal_sum(strict=True))
    (reads,) = [o for o in _reads(obs) if "k_ref" in o.message]
    assert reads.status != "proved", reads
    if reads.status == "violated":  # substituted back: a row of the last block
        ce = reads.counterexample
        assert ce["element[0]"] >= 128 * (ce["S"] - 1)
