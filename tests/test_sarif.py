"""`--format sarif` validates against the official SARIF 2.1.0 schema (shipped in tests/data).

The schema is OASIS's ``Schemata/sarif-schema-2.1.0.json`` (sarif-spec
repository), copied byte for byte.  That file declares draft 2020-12 and has
one upstream defect: ``region.properties`` holds an ``anyOf`` entry, which the
meta-schema rejects, so ``check_schema`` is not called; validating documents
against it works (the last test shows it rejects broken ones).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from test_cli import BUGGY, FIXED, run, write

from tileproof.report import CexKey, KernelReport, NumericResult, Obligation, Report, to_sarif
from tileproof.spec._errors import Location

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def errors(doc) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)
    ]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_sarif_is_valid_with_one_result_per_violation(repo, capsys):
    write(repo / "specs" / "bad_spec.py", BUGGY)
    write(repo / "specs" / "good_spec.py", FIXED.replace("def scale", "def scale_ok"))
    rc, out, _ = run(capsys, "check", "--static", "--format", "sarif", "specs")
    assert rc == 1
    doc = json.loads(out)
    assert errors(doc) == []
    (result,) = doc["runs"][0]["results"]
    assert result["ruleId"] == "tileproof/coverage" and result["level"] == "error"
    loc = result["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "specs/bad_spec.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"]["startLine"] == 17
    assert "counterexample: N=" in result["message"]["text"]
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_of_every_finding_kind_is_valid(tmp_path):
    here = Location(str(tmp_path / "k.py"), 12)
    report = Report(
        [
            KernelReport(
                "a",
                f"{tmp_path / 'k.py'}:3",
                obligations=[
                    Obligation(
                        "bounds",
                        "violated",
                        "load past the end",
                        here,
                        {CexKey("size", "B"): 1, CexKey.element(0): 16},
                    ),
                    Obligation("ring", "unknown", "ring coverage", here, reason="timeout"),
                    Obligation("race", "proved", "no race", here),
                    Obligation(
                        "barrier", "skipped", "not checked", here, reason="cooperative launch"
                    ),
                ],
                numeric=NumericResult("mismatch", [{"B": 1}], 1.0, 1.0, message="y[0] differs"),
            ),
            KernelReport("b", "/elsewhere/spec.py:9", error="spec.py:9: error: bad spec"),
            KernelReport("c", "<unknown>:0", obligations=[Obligation("shape", "violated", "x")]),
        ]
    )
    doc = to_sarif(report, root=tmp_path)
    assert errors(doc) == []
    got = [(r["ruleId"], r["level"]) for r in doc["runs"][0]["results"]]
    assert got == [
        ("tileproof/bounds", "error"),
        ("tileproof/ring", "warning"),
        ("tileproof/numeric", "error"),
        ("tileproof/spec", "error"),
        ("tileproof/shape", "error"),
    ]
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in doc["runs"][0]["results"]
    ]
    assert uris[0] == "k.py" and uris[3] == "file:///elsewhere/spec.py"
    assert doc["runs"][0]["results"][0]["properties"]["counterexample"] == {
        "B": 1,
        "element[0]": 16,
    }


def test_a_folder_without_specs_is_a_valid_failed_run(repo, capsys):
    """Nothing verified is no pass: exit 2, and the SARIF log (still valid) says the
    invocation failed and why."""
    rc, out, err = run(capsys, "check", "--static", "--format", "sarif", str(repo))
    doc = json.loads(out)
    assert rc == 2 and errors(doc) == [] and doc["runs"][0]["results"] == []
    (inv,) = doc["runs"][0]["invocations"]
    assert inv["executionSuccessful"] is False
    assert "holds no kernel spec" in inv["toolExecutionNotifications"][0]["message"]["text"]
    assert "holds no kernel spec" in err


def test_the_schema_rejects_broken_logs():
    bad = {"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": [{"level": "fatal"}]}]}
    found = errors(bad)
    assert any("'name' is a required property" in e for e in found)
    assert any("'fatal' is not one of" in e for e in found)
    assert any("'message' is a required property" in e for e in found)
