"""Host size arithmetic cast to an unsigned or narrow type wraps, as it does on the device.

The Pallas front end keeps arithmetic on sizes (``x_ref.shape[0] - 128``) as exact size
expressions; a cast that wraps must leave that exact form (the lowering models the cast),
else a guard like ``(n - 128).astype(uint32) < n`` reads as always true: its store would
be "proved" to cover an output that the device never writes for n < 128.
"""

from __future__ import annotations

import importlib.util
import os

import tileproof as tp
from tileproof.lowering import lower

_HERE = os.path.dirname(__file__)
_spec = importlib.util.spec_from_file_location(
    "pallas_more_s", os.path.join(_HERE, "specs", "pallas_more.py")
)
pm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pm)


def _verify(assume):
    k = tp.pallas(pm.unsigned_guard, args=[tp.Arg(("N",))], assume=assume)
    (rep,) = tp.verify.verify(k).kernels
    assert rep.error is None, rep.error
    return k, rep.obligations


def test_an_unsigned_cast_of_a_size_wraps_and_the_guarded_store_leaves_the_output_unwritten():
    k, obs = _verify(["N <= 4096"])
    cov = [o for o in obs if o.kind == "coverage" and o.status == "violated"]
    assert len(cov) == 1 and cov[0].counterexample["N"] < pm.BK, [o.message for o in obs]
    assert "never written" in cov[0].message
    # the guarded load is not executed where it would overrun: no bounds finding
    assert not [o for o in obs if o.kind == "bounds" and o.status != "proved"]
    assert "4294967296" in lower(k).listing()  # the wrap is in the model


def test_the_same_guard_is_proved_where_the_size_cannot_wrap():
    _k, obs = _verify(["N <= 4096", "N >= 128"])
    assert not [(o.kind, o.message) for o in obs if o.status != "proved"]
