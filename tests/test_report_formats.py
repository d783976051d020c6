"""Text, JSON and SARIF say the same thing: all three are read off
:meth:`KernelReport.findings` (issue 11), so every finding that fails a run appears in each
— at the same place, with the same kind, status, message and code.

Checked on defect variants of the catalog (violated, unknown and duplicate findings), a
numeric mismatch with its rerun point, a failed numeric run and a kernel error.
"""

from __future__ import annotations

import pytest

from tileproof.catalog import bugs
from tileproof.report import KernelReport, NumericResult, Report, Status, to_sarif, to_text
from tileproof.report._status import PASSING, legacy
from tileproof.verify import verify_kernel

_VARIANTS = {v.name: v for v in bugs.VARIANTS}
# none of these prints overflow findings collapsed into one (a presentation the text alone
# has: that one is pinned by the golden files)
_NAMES = ["decode_zero_splits", "fused_decode_odd_split", "mesh_ring_gated_partner"]

_MISMATCH = KernelReport(
    "r",
    "specs/r_spec.py:5",
    numeric=NumericResult(
        "mismatch",
        sizes=[{"N": 3}, {"N": 5}],
        max_abs_err=1.5,
        max_rel_err=0.25,
        message="y differs at element [2]",
        detail={"rerun": {"sizes": {"N": 3}, "seed": 7, "command": "tileproof check x --seed 7"}},
    ),
)
_RUN_FAILED = KernelReport("f", "specs/f_spec.py:9", numeric=NumericResult("error", message="boom"))
_SPEC_ERROR = KernelReport("e", "specs/e_spec.py:3", error="specs/e_spec.py:3: error: bad grid")


@pytest.fixture(scope="module")
def reports() -> list[KernelReport]:
    return [verify_kernel(_VARIANTS[n]) for n in _NAMES] + [_MISMATCH, _RUN_FAILED, _SPEC_ERROR]


def _where(f, k: KernelReport) -> str:
    return str(f.location) if f.location.line and f.kind not in ("numeric", "spec") else k.source


def test_every_failing_finding_is_in_text_json_and_sarif(reports):
    for k in reports:
        failing = [f for f in k.findings() if f.status not in PASSING]
        assert failing, k.name
        text = to_text(Report([k])).splitlines()
        results = to_sarif(Report([k]))["runs"][0]["results"]
        data = k.to_json()
        assert len(results) == len(failing), k.name  # SARIF: one result per failing finding
        for f in failing:
            line = next(
                (t for t in text if t.startswith(f"{_where(f, k)}: ") and f.message in t), None
            )
            assert line is not None and line.endswith(f"[{f.code}]"), (k.name, f.message)
            if f.kind not in ("numeric", "spec"):
                assert f"{f.kind}: " in line and (
                    f.status == Status.VIOLATED or str(f.status) in line
                )
                assert any(
                    o["message"] == f.message
                    and o["status"] == legacy(f.status)
                    and o["code"] == f.code
                    and o["location"] == (str(f.location) if f.location.line else None)
                    for o in data["obligations"]
                ), (k.name, f.message)
            elif f.kind == "numeric":
                assert data["numeric"]["status"] == legacy(f.status) == str(f.status)
                assert data["numeric"]["code"] == f.code
            else:
                assert data["error"] == f.message and data["error_code"] == f.code
            assert any(
                r["properties"]["code"] == f.code and f.message in r["message"]["text"]
                for r in results
            ), (k.name, f.message)


def test_the_numeric_finding_carries_what_the_text_prints():
    (num,) = [f for f in _MISMATCH.findings() if f.kind == "numeric"]
    assert num.detail["max_abs_err"] == 1.5 and num.detail["max_rel_err"] == 0.25
    assert num.detail["sizes"] == [{"N": 3}, {"N": 5}] and num.detail["rerun"]["seed"] == 7
    text = to_text(Report([_MISMATCH]), quiet=True).splitlines()
    assert text == [
        "specs/r_spec.py:5: numeric: mismatch (max abs err 1.5, max rel err 0.25): "
        "y differs at element [2] (in kernel r)  [TP201]",
        "    sizes: N=3; N=5",
        "    failing point: N=3, inputs drawn with seed 7",
        "    rerun: tileproof check x --seed 7",
    ]


def test_a_kernel_error_is_printed_alone_as_its_finding():
    assert to_text(Report([_SPEC_ERROR]), quiet=True).splitlines() == [
        "specs/e_spec.py:3: error: bad grid (in kernel e)  [TP001]"
    ]
