"""[tool.tileproof] settings and the proof cache, through `tileproof check`."""

from __future__ import annotations

import json

import pytest
from test_cli import BUGGY, FIXED, run, write

from tileproof import cli, project

OVERFLOW = """\
import tileproof.spec as tp


@tp.kernel(grid={"b": "B"}, assume=["B <= 2**30"],
           tensors=dict(x=tp.Input(("B", 8)), o=tp.Output(("B", 8))))
def rows(x, o):
    b = tp.program_id(0)
    tp.store(o, (b, tp.ds(0, 8)), tp.load(x, (b, tp.ds(0, 8))))
"""


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pyproject(repo, body: str):
    return write(repo / "pyproject.toml", "[project]\nname = 'user'\n\n" + body)


def test_skipped_kinds_print_their_reason(repo, capsys):
    pyproject(repo, '[tool.tileproof.skip]\ncoverage = "the launcher pads N to a multiple of 64"\n')
    write(repo / "scale_spec.py", BUGGY)
    rc, out, _ = run(capsys, "check", "--static", "scale_spec.py")
    assert rc == 0
    assert "scale_spec.py:7: coverage: skipped: the launcher pads N to a multiple of 64" in out
    assert "1 skipped by configuration" in out.splitlines()[-1]
    rc, out, _ = run(capsys, "check", "--static", "--format", "json", "scale_spec.py")
    (skipped,) = [
        o for o in json.loads(out)["kernels"][0]["obligations"] if o["status"] == "skipped"
    ]
    assert (
        skipped["kind"] == "coverage"
        and skipped["reason"] == "the launcher pads N to a multiple of 64"
    )


def test_config_is_found_walking_up_and_paths_are_the_default_targets(repo, capsys, monkeypatch):
    pyproject(repo, '[tool.tileproof]\npaths = ["specs"]\n')
    write(repo / "specs" / "scale.py", FIXED)
    (repo / "sub" / "dir").mkdir(parents=True)
    monkeypatch.chdir(repo / "sub" / "dir")
    rc, out, err = run(capsys, "check", "--static", "-v")
    assert rc == 0
    assert "scale" in out and str(repo / "pyproject.toml") in err


def test_index_bits_applies_to_kernels_keeping_the_default(repo, capsys):
    write(repo / "rows_spec.py", OVERFLOW)
    rc, out, _ = run(capsys, "check", "--static", "rows_spec.py")
    assert rc == 1 and "overflow:" in out and "int32" in out
    pyproject(repo, "[tool.tileproof]\nindex-bits = 64\n")
    rc, out, _ = run(capsys, "check", "--static", "rows_spec.py")
    assert rc == 0, out


def test_solver_timeout_reaches_the_checker(repo, capsys, monkeypatch):
    import tileproof.verify.static as static

    seen = []
    real = static.check_static

    def spy(model, **kw):
        seen.append(kw)
        return real(model, **kw)

    monkeypatch.setattr(static, "check_static", spy)
    pyproject(repo, "[tool.tileproof]\nsolver-timeout-ms = 4321\ncache = false\n")
    write(repo / "scale_spec.py", FIXED)
    assert run(capsys, "check", "--static", "scale_spec.py")[0] == 0
    assert seen[-1]["timeout_ms"] == 4321
    assert run(capsys, "check", "--static", "--timeout-ms", "999", "scale_spec.py")[0] == 0
    assert seen[-1]["timeout_ms"] == 999


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("[tool.tileproof]\njobz = 2\n", 5, "unknown setting [tool.tileproof] jobz"),
        (
            "[tool.tileproof]\njobs = 0\n",
            5,
            "jobs = 0 in pyproject.toml must be a positive integer",
        ),
        ("[tool.tileproof]\nindex-bits = 48\n", 5, "must be 32 or 64"),
        (
            '[tool.tileproof.skip]\nbariers = "x"\n',
            5,
            "names 'bariers', which is no obligation kind",
        ),
        ('[tool.tileproof.skip]\nbarrier = ""\n', 5, "barrier needs a reason"),
        ("[tool.tileproof.tolerances]\nfloat32 = 1e-5\n", 5, "must be a table { rtol"),
        ("[tool.tileproof\n", 4, "is not valid TOML"),
    ],
)
def test_config_errors_name_the_file_and_line(repo, capsys, body, line, fragment):
    pyproject(repo, body)
    write(repo / "scale_spec.py", FIXED)
    rc, _, err = run(capsys, "check", "--static", "scale_spec.py")
    assert rc == 2
    assert err.startswith(f"{repo / 'pyproject.toml'}:{line}: error:") or err.startswith(
        f"pyproject.toml:{line}: error:"
    ), err
    assert fragment in err and err.count("\n") == 1


def test_tolerances_and_budget_reach_the_numeric_check(repo, monkeypatch):
    pyproject(
        repo,
        "[tool.tileproof]\nnumeric-budget-s = 7.5\n"
        "[tool.tileproof.tolerances]\nfloat32 = { rtol = 1e-3, atol = 1e-4 }\n",
    )
    cfg = project.load_config()
    assert cfg.numeric_budget_s == 7.5 and cfg.tolerances == {
        "float32": {"rtol": 1e-3, "atol": 1e-4}
    }
    import tileproof.verify.numeric as numeric
    from tileproof.report import NumericResult

    seen = {}

    def spy(kernel, **kw):
        seen.update(kw)
        return NumericResult("matched")

    monkeypatch.setattr(numeric, "check_numeric", spy)
    write(repo / "scale_spec.py", FIXED)
    assert cli.main(["check", "scale_spec.py", "-q"]) == 0
    assert seen["budget_s"] == 7.5 and seen["tolerances"] == {
        "float32": {"rtol": 1e-3, "atol": 1e-4}
    }


# ------------------------------------------------------------------------- the cache


def counting(monkeypatch):
    import tileproof.verify.static as static

    calls = []
    real = static.check_static

    def spy(model, **kw):
        calls.append(model.name)
        return real(model, **kw)

    monkeypatch.setattr(static, "check_static", spy)
    return calls


def test_unchanged_kernels_are_not_proved_again(repo, capsys, monkeypatch):
    calls = counting(monkeypatch)
    spec = write(repo / "scale_spec.py", FIXED)
    rc1, out1, _ = run(capsys, "check", "--static", "--format", "json", "scale_spec.py")
    rc2, out2, _ = run(capsys, "check", "--static", "--format", "json", "scale_spec.py")
    assert rc1 == rc2 == 0 and calls == ["scale"]
    assert (
        json.loads(out1)["kernels"][0]["obligations"]
        == json.loads(out2)["kernels"][0]["obligations"]
    )
    ignore = repo / ".tileproof_cache" / ".gitignore"
    assert ignore.read_text().splitlines()[-1] == "*"
    # tile math is abstract in the model: changing it changes no proof
    spec.write_text(FIXED.replace("tile * 2", "tile * 3"))
    run(capsys, "check", "--static", "scale_spec.py")
    assert calls == ["scale"]
    # a changed schedule, other solver options, or --no-cache prove again
    spec.write_text(FIXED.replace("N <= 2**20", "N <= 2**21"))
    run(capsys, "check", "--static", "scale_spec.py")
    run(capsys, "check", "--static", "--timeout-ms", "5000", "scale_spec.py")
    run(capsys, "check", "--static", "--no-cache", "scale_spec.py")
    assert calls == ["scale"] * 4


def test_violations_are_cached_too_and_stay_violations(repo, capsys, monkeypatch):
    calls = counting(monkeypatch)
    write(repo / "scale_spec.py", BUGGY)
    assert run(capsys, "check", "--static", "scale_spec.py")[0] == 1
    rc, out, _ = run(capsys, "check", "--static", "scale_spec.py")
    assert rc == 1 and "counterexample: N=" in out and calls == ["scale"]


@pytest.mark.parametrize(
    "reason",
    [
        "z3: timeout",
        "time budget of the static check exhausted",
        "z3: max. resource limit exceeded",
        "z3: canceled",
        "",
    ],
)
def test_unknowns_for_lack_of_time_are_not_cached(repo, reason):
    from tileproof.report import Obligation

    cache = project.ProofCache(repo / "c")
    cache.put("k" * 64, [Obligation("bounds", "unknown", "m", reason=reason)])
    assert cache.get("k" * 64) is None
    cache.put(
        "k" * 64,
        [Obligation("bounds", "unknown", "m", reason="the lowering could not model it: x")],
    )
    assert [o.reason for o in cache.get("k" * 64)] == ["the lowering could not model it: x"]
    cache.put("k" * 64, [Obligation("bounds", "proved", "m", counterexample=None)])
    assert [o.status for o in cache.get("k" * 64)] == ["proved"]


def test_model_hash_sees_every_field(repo):
    from tileproof.lowering import lower
    from tileproof.project import collect

    write(repo / "a_spec.py", FIXED)
    write(repo / "b_spec.py", BUGGY)
    (a,), (b,) = collect(["a_spec.py"]), collect(["b_spec.py"])
    cache = project.ProofCache(repo / "c")
    ka, kb = cache.key(lower(a), {"timeout_ms": None}), cache.key(lower(b), {"timeout_ms": None})
    assert ka != kb
    assert ka == cache.key(lower(a), {"timeout_ms": None})
    assert ka != cache.key(lower(a), {"timeout_ms": 1})


def test_missing_config_file_is_a_usage_error(repo, capsys):
    rc, _, err = run(capsys, "check", "--static", "--config", "nowhere.toml")
    assert rc == 2 and "no such settings file: nowhere.toml" in err
