"""``pl.multiple_of(x, m)`` is a claim: proved (``shape``), or refuted with a counterexample.

Triton turns the hint into a divisibility attribute it acts on unchecked, so a false claim
is undefined behaviour.  tileproof states ``x % m == 0`` wherever the hint is reached and
keeps the value exact (nothing relies on the claim).  Each kind of claimed value has a
refuted spec and a proved twin: a program id times a block, a size expression, a loop
index times a stride.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import pytest

import tileproof as tp
from tileproof.lowering import lower

_HERE = os.path.dirname(__file__)
_spec = importlib.util.spec_from_file_location(
    "pallas_more_c", os.path.join(_HERE, "specs", "pallas_more.py")
)
pm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pm)
SRC = os.path.abspath(os.path.join(_HERE, "specs", "pallas_more.py"))


def _claims(fn, args, assume):
    k = tp.pallas(fn, args=args, assume=assume)
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error is None, rep.error
    return k, rep.obligations, [o for o in rep.obligations if "pl.multiple_of" in o.message]


CASES = [  # (name, correct twin, defect, args, assume, the claimed line)
    (
        "program id",
        pm.hinted,
        functools.partial(pm.hinted, step=64),
        [tp.Arg(("128*K",))],
        ["K <= 64"],
        98,
    ),
    ("size", pm.tail_hinted, pm.tail_hinted, [tp.Arg(("128*K",))], ["K <= 32"], 115),
    (
        "loop index",
        pm.loop_hinted,
        functools.partial(pm.loop_hinted, stride=64),
        [tp.Arg(("128*K",))],
        ["K <= 32"],
        130,
    ),
]


@pytest.mark.parametrize("what,good,_bad,args,assume,line", CASES, ids=[c[0] for c in CASES])
def test_a_true_claim_is_proved(what, good, _bad, args, assume, line):
    k, obs, claims = _claims(good, args, assume)
    (c,) = claims
    assert c.kind == "shape" and c.status == "proved" and c.location.line == line
    assert not [o for o in obs if o.status != "proved"]
    m = lower(k)
    assert not m.unsupported
    assert "% 128 == 0  (pl.multiple_of(..., 128))" in m.listing()


def test_a_claim_refuted_by_the_program_id_names_the_program():
    _k, _obs, (c,) = _claims(
        functools.partial(pm.hinted, step=64), [tp.Arg(("64*K",))], ["K <= 64"]
    )
    assert c.status == "violated" and (c.location.file, c.location.line) == (SRC, 98)
    ce = c.counterexample
    assert (64 * ce["pid0"]) % 128 != 0  # substituted back
    assert "not a multiple of 128" in c.message and "pid0=" in c.message


def test_a_claim_on_a_size_holds_only_where_the_domain_says_so():
    _k, _obs, (c,) = _claims(pm.tail_hinted, [tp.Arg(("N",))], ["N <= 4096", "N >= 128"])
    assert c.status == "violated" and (c.counterexample["N"] - 128) % 128 != 0
    _k, _obs, (c,) = _claims(
        pm.tail_hinted, [tp.Arg(("N",))], ["N <= 4096", "N >= 128", "N % 128 == 0"]
    )
    assert c.status == "proved"


def test_a_claim_refuted_in_a_loop_names_the_iteration():
    _k, _obs, (c,) = _claims(
        functools.partial(pm.loop_hinted, stride=64), [tp.Arg(("128*K",))], ["K <= 32"]
    )
    assert c.status == "violated"
    (i,) = [v for n, v in c.counterexample.items() if n.startswith("i")]
    assert (64 * i) % 128 != 0 and "loop index i" in c.message


def test_a_claim_does_not_change_the_values_the_executor_computes():
    k = tp.pallas(
        pm.hinted, args=[tp.Arg(("128*K",))], assume=["K <= 8"], reference=lambda x: x + 1
    )
    res = tp.verify.verify(k, numeric=True, numeric_options={"budget": 1}).kernels[0].numeric
    assert res.status == "matched", res.message
    assert np.isfinite(res.max_abs_err)
