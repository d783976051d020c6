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
