"""The first hour with `tileproof check` (issues 13, 14): caches, progress, reruns, messages.

* the numeric result cache answers an unchanged kernel from disk, and misses when anything
  the result depends on changes (the spec file, a helper module the reference or the body
  reaches); a mismatch is never answered from disk;
* ``TILEPROOF_CACHE_DIR`` moves the caches; the JSON carries per-kernel ``timings``;
* progress lines on stderr (per kernel; per size point with ``--verbose``), silence for
  ``--static`` pre-commit runs;
* a mismatch names its point and seed and prints one command that reproduces it;
  ``FILE:KERNEL`` and ``MODULE:KERNEL`` targets;
* every text finding names its kernel; size-driven overflows collapse into one finding;
* ``--devices N`` (and ``devices = N``): ranked kernels' ranks on devices.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys

import pytest
from test_cli import BUGGY, FIXED, run, write

import tileproof
from tileproof.project import _cache
from tileproof.verify._api import rerun_target
from tileproof.verify.numeric import check_numeric

HERE = os.path.dirname(os.path.dirname(os.path.abspath(tileproof.__file__)))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TILEPROOF_CACHE_DIR", raising=False)
    return tmp_path


def kernel_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(r"tileproof: \[\d+/\d+\] ", line)]


# ------------------------------------------------------------------ numeric result cache


def test_matched_numerics_come_from_the_cache_and_a_mismatch_never_does(repo, capsys):
    write(repo / "scale_spec.py", FIXED)
    rc, _, err = run(capsys, "check", "scale_spec.py")
    assert rc == 0
    (line,) = kernel_lines(err)
    assert "numeric matched" in line and "(cached)" not in line.split("numeric")[1]
    rc, _, err = run(capsys, "check", "scale_spec.py")
    assert rc == 0 and "numeric matched" in kernel_lines(err)[0]
    assert kernel_lines(err)[0].endswith("(cached))")
    # the twin: a defect is run again every time, never answered from disk
    write(repo / "scale_spec.py", BUGGY)
    for _ in range(2):
        rc, out, err = run(capsys, "check", "scale_spec.py")
        assert rc == 1 and "numeric: mismatch" in out
        assert not kernel_lines(err)[0].endswith("(cached))")


def test_editing_the_reference_in_the_spec_file_misses_the_cache(repo, capsys):
    write(repo / "scale_spec.py", FIXED)
    assert run(capsys, "check", "scale_spec.py")[0] == 0
    write(repo / "scale_spec.py", FIXED.replace('{"y": 2 * x}', '{"y": 3 * x}'))
    rc, out, _ = run(capsys, "check", "scale_spec.py")
    assert rc == 1 and "numeric: mismatch" in out


HELPED = """\
import jax.numpy as jnp

import tileproof.spec as tp
from {ref_mod} import reference
from {body_mod} import twice


@tp.kernel(grid={{"i": "cdiv(N, 64)"}}, assume=["N <= 2**20"],
           tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))), reference=reference)
def scale(x, y):
    i = tp.program_id(0)
    mask = i * 64 + jnp.arange(64) < tp.size("N")
    tile = tp.load(x, (tp.ds(i * 64, 64),), mask=mask)
    tp.store(y, (tp.ds(i * 64, 64),), twice(tile), mask=mask)
"""


@pytest.mark.parametrize("which", ["reference", "body"])
def test_editing_a_helper_module_misses_the_cache(repo, capsys, monkeypatch, which):
    """The reference's helpers are found through its globals; the body's through its jaxpr."""
    ref_mod, body_mod = f"refhelp_{which}", f"bodyhelp_{which}"
    write(repo / f"{ref_mod}.py", "def reference(x):\n    return {'y': 2 * x}\n")
    write(repo / f"{body_mod}.py", "def twice(t):\n    return t * 2\n")
    write(repo / "scale_spec.py", HELPED.format(ref_mod=ref_mod, body_mod=body_mod))
    monkeypatch.syspath_prepend(str(repo))
    assert run(capsys, "check", "scale_spec.py")[0] == 0
    rc, _, err = run(capsys, "check", "scale_spec.py")
    assert rc == 0 and kernel_lines(err)[0].endswith("(cached))")
    if which == "reference":
        write(repo / f"{ref_mod}.py", "def reference(x):\n    return {'y': 3 * x}\n")
    else:
        write(repo / f"{body_mod}.py", "def twice(t):\n    return t * 3\n")
    for mod in (ref_mod, body_mod):  # a new process would import the edited file afresh
        monkeypatch.delitem(sys.modules, mod, raising=False)
    rc, out, _ = run(capsys, "check", "scale_spec.py")
    assert rc == 1 and "numeric: mismatch" in out


def test_cache_dir_variable_moves_the_caches_and_json_has_timings(repo, capsys, monkeypatch):
    elsewhere = repo / "scratch" / "cache"
    monkeypatch.setenv("TILEPROOF_CACHE_DIR", str(elsewhere))
    write(repo / "scale_spec.py", FIXED)
    rc, out, _ = run(capsys, "check", "--format", "json", "scale_spec.py")
    assert rc == 0
    assert not (repo / ".tileproof_cache").exists()
    proofs = elsewhere / f"v{_cache._SCHEMA}"  # the proof cache's folder for its JSON schema
    assert list((elsewhere / "numeric").rglob("*.json")) and list(proofs.rglob("*.json"))
    (k,) = json.loads(out)["kernels"]
    t = k["timings"]
    assert set(t) == {"lowering_s", "static_s", "numeric_s"}
    assert all(isinstance(v, float) and v >= 0 for v in t.values()) and t["numeric_s"] > 0


# ------------------------------------------------------------------------------ progress


def test_progress_is_a_line_per_kernel_and_point_when_stderr_is_no_terminal(repo, capsys):
    write(repo / "a_spec.py", FIXED)
    write(repo / "b_spec.py", FIXED.replace("def scale(", "def scale_b("))
    rc, _, err = run(capsys, "check", "-j", "1", "a_spec.py", "b_spec.py")
    assert rc == 0
    lines = kernel_lines(err)
    assert [line.split("]")[0] for line in lines] == ["tileproof: [1/2", "tileproof: [2/2"]
    assert "scale: ok (lowering" in lines[0] and "scale_b: ok" in lines[1]
    rc, _, err = run(capsys, "check", "-v", "--no-cache", "a_spec.py")
    assert re.search(r"tileproof: scale: numeric at N=\d+ \(seed \d+\): ok", err)
    # a pre-commit run stays silent on stderr; --verbose still lists the kernels
    rc, _, err = run(capsys, "check", "--static", "a_spec.py")
    assert rc == 0 and err == ""
    rc, _, err = run(capsys, "check", "--static", "-v", "a_spec.py")
    assert len(kernel_lines(err)) == 1


# ------------------------------------------------------------------------------- reruns


def test_mismatch_prints_a_command_that_reproduces_exactly_that_point(repo, capsys):
    write(repo / "scale_spec.py", BUGGY)
    rc, out, _ = run(capsys, "check", "--no-cache", "scale_spec.py")
    assert rc == 1
    m = re.search(
        r"    rerun: tileproof check (scale_spec\.py:scale) --sizes (N=\d+) --seed (\d+)", out
    )
    assert m, out
    assert re.search(r"failing point: N=\d+, inputs drawn with seed \d+", out)
    first = next(line for line in out.splitlines() if "numeric: mismatch" in line)
    rc, again, _ = run(capsys, "check", "--no-cache", m[1], "--sizes", m[2], "--seed", m[3])
    assert rc == 1
    assert next(line for line in again.splitlines() if "numeric: mismatch" in line) == first
    rc, out, _ = run(capsys, "check", "--format", "json", m[1], "--sizes", m[2], "--seed", m[3])
    (k,) = json.loads(out)["kernels"]
    assert k["numeric"]["sizes"] == [{"N": int(m[2][2:])}]  # that point alone
    assert k["numeric"]["rerun"]["command"].endswith(f"--sizes {m[2]} --seed {m[3]}")


def test_rerun_of_an_index_tensor_defect_shows_the_table_and_reproduces():
    """A shuffled page table breaks the page-pair fast path: the seed and the table's values
    come with the mismatch, and running that point alone with that seed fails the same way."""
    k = importlib.import_module("tileproof.catalog.bugs._paged_attention").paged_pair_contiguous

    res = check_numeric(k, budget=3, gradients=False)
    assert res.status == "mismatch"
    rerun = res.rerun
    assert rerun and isinstance(rerun["seed"], int) and rerun["sizes"]
    point = {**rerun["sizes"], **rerun["pins"]}  # pinned index values travel with the sizes
    again = check_numeric(k, sizes=point, seed=rerun["seed"], only=True, gradients=False)
    assert again.status == "mismatch" and again.sizes == [rerun["sizes"]]
    assert again.message == res.message
    assert again.rerun["index"] == rerun["index"]
    assert rerun_target(k) == "tileproof.catalog.bugs:paged_pair_contiguous"
    # the correct twin at the same point and seed matches
    twin_kernel = importlib.import_module("tileproof.catalog.paged_attention").paged_attention
    twin = check_numeric(twin_kernel, sizes=point, seed=rerun["seed"], only=True, gradients=False)
    assert twin.status == "matched"


def test_module_kernel_targets_and_inadmissible_sizes(repo, capsys, monkeypatch):
    write(repo / "myspecs" / "__init__.py", FIXED + "\n" + BUGGY.replace("def scale(", "def bad("))
    monkeypatch.syspath_prepend(str(repo))
    rc, out, _ = run(capsys, "check", "--static", "myspecs:scale")
    assert rc == 0 and "1 kernel" in out.splitlines()[-1]
    rc, out, _ = run(capsys, "check", "--static", "myspecs:bad")
    assert rc == 1 and "(in kernel bad)" in out
    rc, _, err = run(capsys, "check", "--static", "myspecs:nothing")
    assert rc == 2 and "no kernel named 'nothing'" in err
    rc, out, _ = run(capsys, "check", "myspecs:scale", "--sizes", "N=0")
    assert rc == 1 and "not admissible" in out
    rc, _, err = run(capsys, "check", "--static", "myspecs:scale", "--seed", "1")
    assert rc == 2 and "drop --static" in err


# ----------------------------------------------------------------------------- messages

OVERFLOWS = """\
import tileproof.spec as tp


@tp.kernel(grid={{"b": "B"}}, assume=["B <= {bmax}"],
           tensors=dict(x=tp.Input(("B", 8)), o=tp.Output(("B", 8)), z=tp.Output(("B", 8))))
def rows(x, o, z):
    b = tp.program_id(0)
    t = tp.load(x, (b, tp.ds(0, 8)))
    tp.store(o, (b, tp.ds(0, 8)), t)
    tp.store(z, (b, tp.ds(0, 8)), t)
"""


def test_size_driven_overflows_collapse_into_one_finding_naming_the_maxima(repo, capsys):
    write(repo / "rows_spec.py", OVERFLOWS.format(bmax="2**30"))
    rc, out, _ = run(capsys, "check", "--static", "rows_spec.py")
    assert rc == 1
    heads = [line for line in out.splitlines() if ": overflow: " in line]
    assert len(heads) == 1, out
    assert "in kernel rows" in heads[0] and "declare maxima for B (" in heads[0]
    assert "sites: rows_spec.py:8, rows_spec.py:9, rows_spec.py:10" in out
    rc, js, _ = run(capsys, "check", "--static", "--format", "json", "rows_spec.py")
    bad = [
        o
        for o in json.loads(js)["kernels"][0]["obligations"]
        if o["kind"] == "overflow" and o["status"] == "violated"
    ]
    assert len(bad) >= 2  # the JSON keeps every finding
    rc, out, _ = run(capsys, "check", "--static", "-v", "rows_spec.py")
    assert all(o["message"] in out for o in bad)  # --verbose lists each
    # the correct twin: maxima declared, nothing to collapse, proved
    write(repo / "rows_spec.py", OVERFLOWS.format(bmax="2**10"))
    rc, out, _ = run(capsys, "check", "--static", "rows_spec.py")
    assert rc == 0 and "overflow" not in out


def test_every_finding_names_its_kernel(repo, capsys):
    two = BUGGY + "\n\n" + BUGGY.split('"""', 2)[2].replace("def scale(", "def other(")
    write(repo / "two_spec.py", two)
    rc, out, _ = run(capsys, "check", "two_spec.py")
    assert rc == 1
    findings = [line for line in out.splitlines() if re.match(r"two_spec\.py:\d+: \w+: ", line)]
    # each ends "(in kernel NAME)" and then its code, two spaces apart as mypy prints them
    assert findings and all(
        re.search(r"\(in kernel (scale|other)\)  \[TP\d{3}\]$", f) for f in findings
    )
    assert {"scale", "other"} == {re.search(r"kernel (\w+)\)  \[", f)[1] for f in findings}


# ------------------------------------------------------------------------------- devices


def _cli_on_devices(repo, *argv: str, n: int = 4) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
        "JAX_PLATFORMS": "cpu",
        "TILEPROOF_CACHE_DIR": str(repo / "cache"),
        # this checkout's tileproof, whatever the working directory
        "PYTHONPATH": os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]),
    }
    code = "import sys; from tileproof.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_devices_puts_ranks_on_devices_and_refuses_more_than_exist(repo):
    target = "tileproof.catalog.mesh_ring_attention:mesh_ring_attention_decode"
    done = _cli_on_devices(repo, "check", "--format", "json", "--devices", "4", target)
    assert done.returncode == 0, done.stderr[-3000:]
    (k,) = json.loads(done.stdout)["kernels"]
    assert k["numeric"]["status"] == "matched"
    assert k["numeric"]["placements"]["devices"] >= 1  # ranks ran on devices at some points
    # a defect is caught on devices too
    bug = "tileproof.catalog.bugs:mesh_ring_gated_partner"  # found among VARIANTS
    done = _cli_on_devices(repo, "check", "--format", "json", "--devices", "4", bug)
    assert done.returncode == 1, done.stderr[-3000:]
    assert json.loads(done.stdout)["kernels"][0]["numeric"]["status"] == "mismatch"
    done = _cli_on_devices(repo, "check", "--devices", "8", target)
    assert done.returncode == 2 and "JAX sees only 4 cpu device(s)" in done.stderr


def test_devices_setting_in_pyproject(repo, capsys):
    write(repo / "pyproject.toml", "[tool.tileproof]\ndevices = 0\n")
    rc, _, err = run(capsys, "check", "--static", "x.py")
    assert rc == 2 and "devices = 0" in err
    write(repo / "pyproject.toml", "[tool.tileproof]\ndevices = 64\n")
    write(repo / "scale_spec.py", FIXED)
    rc, _, err = run(capsys, "check", "scale_spec.py")
    assert rc == 2 and "--devices 64: JAX sees only" in err
    assert run(capsys, "check", "--static", "scale_spec.py")[0] == 0  # no numerics: no devices


def test_a_warm_run_starts_no_worker_process(repo, capsys, monkeypatch):
    """Kernels the caches answer are answered in the command's process; only misses go to
    workers (each would import JAX again)."""
    import concurrent.futures

    write(repo / "a_spec.py", FIXED)
    write(repo / "b_spec.py", FIXED.replace("def scale(", "def scale_b("))
    assert run(capsys, "check", "-j", "1", "a_spec.py", "b_spec.py")[0] == 0

    class NoPool:
        def __init__(self, *a, **kw):
            raise AssertionError("a warm run started worker processes")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", NoPool)
    rc, _, err = run(capsys, "check", "-j", "2", "a_spec.py", "b_spec.py")
    assert rc == 0 and all(line.endswith("(cached))") for line in kernel_lines(err))
    # one kernel changed: the other is answered here, the changed one runs (alone: inline)
    write(repo / "b_spec.py", FIXED.replace("def scale(", "def scale_b(").replace("2 * x", "x * 2"))
    rc, _, err = run(capsys, "check", "-j", "2", "a_spec.py", "b_spec.py")
    assert rc == 0
    lines = kernel_lines(err)
    assert any("scale:" in line and line.endswith("(cached))") for line in lines)
    assert any("scale_b:" in line and not line.endswith("(cached))") for line in lines)
