"""Every value a violation message shows comes from a complete, re-checked assignment.

The solver's model binds only the names of the query it decided; a message evaluates
more (the whole element).  One-token mutants of the fused decode kernel used to crash the
verifier while rendering ("internal error: ShapeError: no value for symbol", exit 2):
the element of its KV-cache stores adds ``layer_base[0]``, which cancels from the race
query's equation.  Now they are reported (exit 1) with a complete counterexample.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tileproof import cli, shapes

CATALOG = Path(__file__).resolve().parents[1] / "tileproof" / "catalog"
MUTANTS = {
    # the KV-cache store writes two rows instead of one
    "k_cache_rows": (
        "tp.store(k_cache, (tp.ds(row, 1), _ALL), kh)",
        "tp.store(k_cache, (tp.ds(row, 2), _ALL), kh)",
    ),
    # the lane id forgets the stride of the program id
    "lane_stride": ("lid = 2 * core + lane", "lid = 1 * core + lane"),
}


def _mutant(tmp_path: Path, old: str, new: str) -> Path:
    src = (CATALOG / "fused_decode.py").read_text()
    assert src.count(old) == 1, old
    src = src.replace(old, new)
    # a copy outside the package: absolute imports instead of relative ones
    src = re.sub(r"^from \.(\w+) import", r"from tileproof.catalog.\1 import", src, flags=re.M)
    out = tmp_path / "fused_decode_mutant.py"
    out.write_text(src)
    return out


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_one_token_mutants_are_reported_not_crashed(name, tmp_path, capsys):
    path = _mutant(tmp_path, *MUTANTS[name])
    rc = cli.main(["check", "--static", "--no-cache", "--format", "json", str(path)])
    out, err = capsys.readouterr()
    assert "internal error" not in out + err
    assert rc == 1, err
    obs = [o for k in json.loads(out)["kernels"] for o in k["obligations"]]
    races = [o for o in obs if o["kind"] == "race" and o["status"] == "violated"]
    assert races, [(o["kind"], o["status"], o["message"]) for o in obs]
    for o in races:  # the element shown is a number per dimension
        assert re.search(r"element \[\d+, \d+\]", o["message"]), o["message"]
        assert all(isinstance(v, int) for v in o["counterexample"].values())


def test_completion_rechecks_the_refutation():
    """``Analysis.complete`` gives missing names values that keep the refutation."""
    import jax.numpy as jnp

    import tileproof.spec as tp
    from tileproof.lowering import lower
    from tileproof.verify.static._context import Analysis

    @tp.kernel(
        grid={"p": "P"},
        assume=["P <= 64"],
        tensors=dict(base=tp.Input((1,), "int32", values="0 <= v < 8"), y=tp.Output(("P + 8",))),
    )
    def k(base, y):
        tp.store(y, (tp.ds(tp.load(base, (0,)) + tp.program_id(0), 1),), jnp.zeros((1,)))

    an = Analysis(lower(k))
    p, b = shapes.sym("p"), shapes.sym(next(iter(an.data)))
    q = shapes.lt(p, 3)
    assume = an.assume(an.ranges(), query=q)
    full = an.complete(q, assume, {"P": 5, "p": 4}, [p + b])
    assert full is not None and 0 <= full[str(b)] < 8 and full["p"] == 4
    assert an.complete(q, assume, {"P": 5, "p": 1}, [p + b]) is None  # no longer a refutation
