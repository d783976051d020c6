"""`tileproof check`: text, JSON and SARIF output, exit codes, quiet/verbose, jobs, errors."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from _helpers import CONTRACT_KINDS

from tileproof import cli

SPEC = '''\
"""y = 2 * x in tiles of 64 elements, the tail masked."""
import jax.numpy as jnp

import tileproof.spec as tp


@tp.kernel(
    grid={{"i": "{grid}"}},
    assume=["N <= 2**20"],
    tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    reference=lambda x: {{"y": 2 * x}},
)
def scale(x, y):
    i = tp.program_id(0)
    mask = i * 64 + jnp.arange(64) < tp.size("N")
    tile = tp.load(x, (tp.ds(i * 64, 64),), mask=mask)
    tp.store(y, (tp.ds(i * 64, 64),), tile * 2, mask=mask)
'''
BUGGY, FIXED = SPEC.format(grid="N // 64"), SPEC.format(grid="cdiv(N, 64)")
STORE_LINE = 17  # the store in SPEC


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A working directory with no pyproject.toml above it (defaults apply)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def test_violation_is_reported_compiler_style_with_counterexample(repo, capsys):
    write(repo / "specs" / "scale_spec.py", BUGGY)
    rc, out, _ = run(capsys, "check", "--static", "specs/scale_spec.py")
    assert rc == 1
    lines = out.splitlines()
    head = next(
        i
        for i, line in enumerate(lines)
        if line.startswith(f"specs/scale_spec.py:{STORE_LINE}: coverage: ")
    )
    assert "never written" in lines[head]
    assert lines[head + 1].startswith("    counterexample: N=")
    assert "kernel  proved violated unknown skipped" in out
    assert lines[-1] == "Found 1 violated and 0 unknown obligations in 1 kernel (checked 1 kernel)"


def test_fixed_spec_passes(repo, capsys):
    write(repo / "scale_spec.py", FIXED)
    rc, out, _ = run(capsys, "check", "--static", "scale_spec.py")
    assert rc == 0
    assert out.splitlines()[-1].startswith("Success: ")
    assert "coverage" not in out  # proved obligations are listed only with --verbose


def test_json_is_the_design_contract(repo, capsys):
    write(repo / "scale_spec.py", BUGGY)
    rc, out, _ = run(capsys, "check", "--static", "--format", "json", "scale_spec.py")
    assert rc == 1
    doc = json.loads(out)
    assert set(doc) == {"kernels", "summary"}
    (k,) = doc["kernels"]
    assert {"name", "source", "obligations", "numeric"} <= set(k)
    assert k["name"] == "scale" and k["source"].endswith("scale_spec.py:7")
    for o in k["obligations"]:
        assert {"kind", "status", "message", "location", "counterexample"} <= set(o)
        assert o["kind"] in CONTRACT_KINDS
        assert o["status"] in ("proved", "violated", "unknown", "skipped")
    assert set(k["numeric"]) >= {"status", "sizes", "max_abs_err", "max_rel_err", "gradients"}
    assert k["numeric"]["status"] == "skipped"  # --static
    bad = [o for o in k["obligations"] if o["status"] == "violated"]
    assert [o["kind"] for o in bad] == ["coverage"] and bad[0]["counterexample"]["N"] < 64
    assert doc["summary"]["ok"] is False and doc["summary"]["obligations"]["violated"] == 1


def test_numeric_run_reports_the_mismatch(repo, capsys):
    write(repo / "scale_spec.py", BUGGY)
    rc, out, _ = run(capsys, "check", "scale_spec.py")
    assert rc == 1
    assert "scale_spec.py:7: numeric: mismatch" in out
    assert "never written" in out


def test_quiet_prints_findings_only(repo, capsys):
    write(repo / "bad_spec.py", BUGGY)
    write(repo / "good_spec.py", FIXED)
    rc, out, _ = run(capsys, "check", "--static", "-q", "bad_spec.py")
    assert rc == 1
    assert out.startswith(f"bad_spec.py:{STORE_LINE}: coverage:")
    assert "kernel  proved" not in out and "Found" not in out
    rc, out, _ = run(capsys, "check", "--static", "--quiet", "good_spec.py")
    assert rc == 0 and out == ""


def test_verbose_lists_proofs_settings_and_cache(repo, capsys):
    write(repo / "scale_spec.py", FIXED)
    run(capsys, "check", "--static", "scale_spec.py")
    rc, out, err = run(capsys, "check", "--static", "-v", "scale_spec.py")
    assert rc == 0
    assert f"scale_spec.py:{STORE_LINE}: coverage: proved: " in out
    assert "settings from no pyproject.toml" in err
    assert "1 of 1 kernel(s) proved from the cache" in err


def test_python_files_without_specs_are_not_imported_and_verify_nothing(repo, capsys):
    """A path that holds no spec must not pass (a typo, a folder whose specs were not found):
    exit 2 naming it and why, and a file that never mentions tileproof is still not imported."""
    write(repo / "setup_helper.py", "raise SystemExit('must not be imported')\n")
    rc, out, err = run(capsys, "check", "--static", "setup_helper.py")
    assert rc == 2 and out == ""
    assert "setup_helper.py (given on the command line) holds no kernel spec" in err
    assert "never mentions tileproof" in err


def test_spec_error_is_one_paragraph_exit_2(repo, capsys):
    write(repo / "broken_spec.py", "import tileproof.spec as tp\n\nx = 1 / 0\n")
    rc, _out, err = run(capsys, "check", "--static", "broken_spec.py")
    assert rc == 2
    assert err.count("\n") == 1 and "broken_spec.py:3: error:" in err and "ZeroDivisionError" in err
    rc, _, err = run(capsys, "check", "--static", "missing_spec.py")
    assert rc == 2 and "no such file: missing_spec.py" in err


def test_internal_error_is_one_paragraph(repo, capsys, monkeypatch):
    import tileproof.verify.static as static

    def boom(model, **kw):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(static, "check_static", boom)
    write(repo / "scale_spec.py", FIXED)
    rc, out, err = run(capsys, "check", "--static", "--no-cache", "scale_spec.py")
    assert rc == 2  # reported in the kernel's report, naming it, and the others still run
    assert "internal error while verifying kernel scale: RuntimeError: solver exploded" in out
    assert "TILEPROOF_DEBUG=1" in out and err == ""


def test_broken_pipe_ends_quietly(repo, monkeypatch):
    write(repo / "scale_spec.py", FIXED)

    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdout", Closed())
    assert cli.main(["check", "--static", "scale_spec.py"]) == 1


def test_usage_errors_exit_2(repo, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "--format", "xml"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "--jobs", "many"])
    assert e.value.code == 2
    capsys.readouterr()


def test_jobs_verify_in_processes_with_the_same_verdicts(repo, capsys):
    write(repo / "a_spec.py", BUGGY)
    write(repo / "b_spec.py", FIXED.replace("def scale", "def scale_ok"))
    rc1, out1, _ = run(
        capsys, "check", "--static", "--no-cache", "--format", "json", "a_spec.py", "b_spec.py"
    )
    rc2, out2, _ = run(
        capsys,
        "check",
        "--static",
        "--no-cache",
        "-j",
        "2",
        "--format",
        "json",
        "a_spec.py",
        "b_spec.py",
    )
    assert rc1 == rc2 == 1
    one, two = json.loads(out1), json.loads(out2)
    assert [k["name"] for k in two["kernels"]] == ["scale", "scale_ok"]
    assert [
        [(o["kind"], o["status"], o["message"]) for o in k["obligations"]] for k in one["kernels"]
    ] == [
        [(o["kind"], o["status"], o["message"]) for o in k["obligations"]] for k in two["kernels"]
    ]


def test_progress_bar_appears_only_after_a_second():
    import time

    bar = cli._Progress(2, enabled=True)
    assert bar.bar is None
    time.sleep(1.3)
    assert bar.bar is not None
    bar.close()
    assert bar.bar is None
    quiet = cli._Progress(2, enabled=False)
    assert quiet.timer is None
    quiet.close()
