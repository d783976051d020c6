"""Differential fuzzing: static verdicts of random small kernels against brute-force runs.

Each example is a generated kernel (:mod:`tileproof.fuzz`): its obligations
are checked against concrete runs of its description at every size point with
all sizes <= 6 and several index-tensor fillings.  A ``proved`` obligation
that a run violates is unsound (the test fails with the rendered spec); a
``violated`` one must reproduce at its counterexample's sizes.  A few kernels
also go through the numeric executor, whose flags must agree.  The longer soak
is ``benchmarks/fuzz_soak.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import tileproof.spec as tp
from tileproof.fuzz import KernelDesc, TensorDesc, build, differential, kernels, render
from tileproof.fuzz._gen import CONSTRUCTS
from tileproof.fuzz._oracle import run
from tileproof.fuzz._ring import differential_ring, ring_kernels
from tileproof.lowering import lower
from tileproof.verify.static import check_static

# Every construct is drawn (tests/fuzz_findings.md lists the holes found and which are
# fixed): scratch together with index tensors (finding 1), ring steps with perturbed
# destinations, sources and conditions, step-dependent ones, and folds of the raw carry
# (findings 2 and 3, and the cross-iteration forwarding class: validity carried by an
# induction step, see lowering/_loops.py).
FUZZ_CONSTRUCTS = CONSTRUCTS
_SETTINGS = dict(
    deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


def _fail_on(rep, what=("unsound", "irreproducible", "error")):
    bad = [p for p in rep.problems if p.what in what]
    assert not bad, rep.text()


@settings(max_examples=250, **_SETTINGS)
@given(kernels(FUZZ_CONSTRUCTS))
def test_fuzz_static_against_brute_force(desc):
    _fail_on(differential(desc))


@settings(max_examples=60, **_SETTINGS)
@given(kernels(FUZZ_CONSTRUCTS - {"data"}))
def test_fuzz_scratch_against_brute_force(desc):
    _fail_on(differential(desc))


@settings(max_examples=6, phases=[Phase.explicit, Phase.generate], **_SETTINGS)
@given(kernels(FUZZ_CONSTRUCTS - {"lanes", "halve", "lanes_barrier", "grid3", "barrier_when"}))
def test_fuzz_executor_agrees(desc):
    """The numeric executor's flags never contradict a proof and agree with the oracle."""
    _fail_on(differential(desc, executor=2), ("unsound", "disagreement", "error", "irreproducible"))


@settings(max_examples=60, **_SETTINGS)
@given(ring_kernels(perturb=True))
def test_fuzz_ring_against_simulation(desc):
    _fail_on(differential_ring(desc))


# ------------------------------------------------------------------ the oracle itself


N = ("s", "N")


def _tiles(grid: str, mask: bool, stride: int = 4) -> KernelDesc:
    start = ("*", ("c", stride), ("p", 0))
    m = (0, "<", N) if mask else None
    return KernelDesc(
        ("N",),
        ("N <= 6",),
        (grid,),
        (TensorDesc("x", "input", ("N",)), TensorDesc("y", "output", ("N",))),
        (("load", "x", (("ds", start, 4),), m), ("store", "y", (("ds", start, 4),), m)),
    )


@pytest.mark.parametrize(
    "grid,mask,stride,want",
    [
        ("cdiv(N, 4)", True, 4, set()),
        ("cdiv(N, 4)", False, 4, {"bounds"}),
        ("N // 4", True, 4, {"exists"}),
        ("N", True, 1, {"unique", "race"}),
    ],
)
def test_oracle_sees_the_classic_defects(grid, mask, stride, want):
    """The oracle itself: the tail-tile, floor-division and overlap defects, and a correct twin."""
    desc = _tiles(grid, mask, stride)
    from tileproof.fuzz._desc import render_lines

    _, lines = render_lines(desc)
    seen = set()
    for n in range(1, 7):
        seen |= {k[0] for k, b in run(desc, lines, {"N": n}, None).bad.items() if b}
    assert seen == want
    rep = differential(desc)
    assert not rep.problems, rep.text()
    statuses = {o.status for o in rep.obligations if o.kind in ("bounds", "coverage", "race")}
    assert ("violated" in statuses) == bool(want)


def test_render_is_the_spec_that_runs():
    desc = _tiles("cdiv(N, 4)", True)
    kern, src, path = build(desc)
    assert isinstance(kern, tp.Kernel) and src == render(desc)
    with open(path) as f:
        assert f.read() == src
    obs = check_static(lower(kern))
    assert all(o.location.file == path for o in obs if o.kind == "bounds")


def test_locations_name_the_kernel_line_whatever_the_import_path(tmp_path):
    """Found by the soak: with `..` in the path tileproof was imported from, every node
    pointed at tileproof's own ``_ops.py``; frames are compared after normalising."""
    import subprocess
    import sys

    desc = _tiles("cdiv(N, 4)", True)
    (tmp_path / "spec_k.py").write_text(render(desc))
    root = str(Path(tp.__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path[:0] = [{root + '/tests/..'!r}, {str(tmp_path)!r}]\n"
        "import spec_k, tileproof\n"
        "from tileproof.lowering import lower\n"
        "assert '/..' in tileproof.__file__\n"
        "print(sorted({n.loc.file.rsplit('/', 1)[-1] for n in lower(spec_k.fuzz_kernel).walk()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=str(tmp_path)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['spec_k.py']"
