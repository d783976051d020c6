"""Static ``shape``: a consistent domain, non-negative extents, no division by zero."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _shape(kernel):
    return [o for o in check_static(lower(kernel), kinds=("shape",))]


def _splits(zero_allowed: bool):
    """Split-K over pages: pages_per_split = cdiv(pages, NS) with NS chosen from the longest
    sequence (docs/catalog.md §5); a maximum length of 0 gives 0 splits."""
    domain = ["MAXLEN <= 8192", "NS == min(8, cdiv(MAXLEN, 64))", "NS >= 0"]
    domain.append("MAXLEN >= 0" if zero_allowed else "MAXLEN >= 1")

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", *domain],
        tensors=dict(
            lens=tp.Input(("B",), "int32", values="0 <= v <= MAXLEN"), out=tp.Output(("B", 8))
        ),
    )
    def splits(lens, out):
        b = tp.program_id(0)
        n_pages = (tp.load(lens, (b,)) + 63) // 64
        per_split = (n_pages + tp.size("NS") - 1) // tp.size("NS")
        acc = lax.fori_loop(0, per_split, lambda i, a: a + 1.0, jnp.zeros((1, 8)))
        tp.store(out, (tp.ds(b, 1), slice(None)), acc)

    return splits


@tp.kernel(grid={"p": "cdiv(N, 64)"}, tensors=dict(x=tp.Input(("N - 4",)), y=tp.Output(("N",))))
def negative_dim(x, y):
    p = tp.program_id(0)
    mask = (p * 64 + jnp.arange(64)) < tp.size("N")
    tp.store(y, (tp.ds(p * 64, 64),), jnp.zeros((64,)), mask=mask)


@tp.kernel(grid={"p": "N"}, assume=["N < 1"], tensors=dict(y=tp.Output(("N",))))
def empty_domain(y):
    tp.store(y, (tp.program_id(0),), jnp.float32(0))


def test_splits_from_a_positive_length_never_divide_by_zero():
    obs = _shape(_splits(zero_allowed=False))
    assert all(o.status == "proved" for o in obs), [(o.message, o.reason) for o in obs]
    assert any("divisor" in o.message and "NS" in o.message for o in obs)


def test_zero_splits_divide_by_zero():
    obs = _shape(_splits(zero_allowed=True))
    bad = [o for o in obs if o.status == "violated"]
    assert len(bad) == 1 and "division by zero" in bad[0].message
    cx = bad[0].counterexample
    assert cx["NS"] == 0 and cx["MAXLEN"] == 0
    assert min(8, -(-cx["MAXLEN"] // 64)) == cx["NS"]  # the domain's own definition holds
    assert "loop" in bad[0].message and bad[0].location.line > 0


def test_negative_extent_is_refuted():
    obs = _shape(negative_dim)
    bad = [o for o in obs if o.status == "violated"]
    assert len(bad) == 1 and "tensor x" in bad[0].message
    assert bad[0].counterexample["N"] - 4 < 0


def test_inconsistent_domain_is_reported_and_stops_the_check():
    obs = check_static(lower(empty_domain))
    assert len(obs) == 1 and obs[0].status == "violated"
    assert "admits no sizes" in obs[0].message


# ------------------------------------------------- distinct declarations must be satisfiable


def _distinct_scatter(values: str):
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 16", "N >= 2"],
        tensors=dict(
            t=tp.Input(("N",), "int32", values=values, distinct=True),
            x=tp.Input(("N", 8)),
            y=tp.Output(("N", 8)),
        ),
    )
    def distinct_scatter(t, x, y):
        p = tp.program_id(0)
        tp.store(y, (p + tp.load(t, (p,)), slice(None)), tp.load(x, (p, slice(None))))

    return distinct_scatter


def _fill(values: str):
    obs = check_static(lower(_distinct_scatter(values)), kinds=("shape",))
    return next(o for o in obs if "distinct" in o.message)


def test_distinct_table_larger_than_its_range_is_refuted():
    """N >= 2 pairwise different values cannot come from [0, 1): every other proof is vacuous."""
    ob = _fill("0 <= v < 1")
    assert ob.status == "violated"
    assert ob.counterexample == {"N": 2}
    assert "2 > 1 when N=2" in ob.message and "vacuously" in ob.message


def test_distinct_table_that_fits_its_range_is_proved():
    assert _fill("0 <= v < N").status == "proved"
    assert _fill("N - 1 >= v and v >= 0").status == "proved"


def test_distinct_table_with_a_range_that_is_not_an_interval_is_unknown():
    ob = _fill("0 <= v < 2*N and v % 2 == 0")
    assert ob.status == "unknown" and "not counted" in ob.reason


# ------------------------------------- a divisor that normalisation folds away is still checked


def _folded_division(lowest_m: int):
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 16", f"M >= {lowest_m}", "M <= 8"],
        tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    )
    def folded_division(x, y):
        p, m = tp.program_id(0), tp.size("M")
        q = (p * m) // m  # normalises to p: the division by M leaves no trace in the index
        r = lax.rem(p * m, m)  # C remainder, normalises to 0
        tp.store(y, (q + r,), tp.load(x, (p,)))

    return folded_division


def test_division_by_a_size_that_may_be_zero_is_refuted_though_it_folds_away():
    obs = check_static(lower(_folded_division(0)), kinds=("shape",))
    bad = [o for o in obs if o.status == "violated"]
    assert len(bad) == 2  # the floor division (line of q) and the C remainder (line of r)
    assert all(o.counterexample["M"] == 0 and "division by zero" in o.message for o in bad)
    assert not any("_dividend" in o.message for o in bad)


def test_division_by_a_size_that_is_at_least_one_is_proved():
    obs = check_static(lower(_folded_division(1)), kinds=("shape",))
    assert all(o.status == "proved" for o in obs if o.status != "skipped"), obs
    assert any("integer division" in o.message for o in obs)
