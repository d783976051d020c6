"""Failures that must fail: unsupported constructs, numeric runs that did not run, residency
without a machine, discovery that finds nothing, the index width, the proof cache key, and the
concrete confirmation of a finding (each with a correct twin that must still pass)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import pytest
from _helpers import CONTRACT_KINDS
from jax import lax
from test_cli import FIXED, run, write

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.report import KINDS
from tileproof.report._findings import NUMERIC_STATUSES
from tileproof.verify import verify_kernel
from tileproof.verify.numeric import check_numeric
from tileproof.verify.static import check_static

pytest_plugins = ["pytester"]

ROWS = dict(x=tp.Input(("N", 8)), y=tp.Output(("N", 8)))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------- unsupported constructs


def _opaque(kind: str):
    """A row copy plus one construct whose integer semantics come from a float value (the
    argmax of a tile), in each place the lowering needs an integer: index, mask, branch
    condition, loop bound.  ``kind="ok"`` is the correct twin without it."""

    @tp.kernel(grid={"p": "N"}, assume=["N <= 64"], tensors=ROWS, name=f"opaque_{kind}")
    def k(x, y):
        p = tp.program_id(0)
        t = tp.load(x, (p, slice(None)))
        j = jnp.argmax(t).astype(jnp.int32)
        if kind == "index":
            tp.store(y, (p + j * 0, slice(None)), t)
        elif kind == "mask":
            tp.store(y, (p, slice(None)), t, mask=t > 0)
        elif kind == "branch":  # when taken, the next row is written twice (and out of bounds)

            @tp.when(j > 100)
            def _():
                tp.store(y, (p + 1, slice(None)), t)

            tp.store(y, (p, slice(None)), t)
        elif kind == "loop":  # a trip count read from data

            def body(i, c):
                tp.store(y, (p + i, slice(None)), t)
                return c

            lax.fori_loop(0, j, body, 0)
            tp.store(y, (p, slice(None)), t)
        else:
            tp.store(y, (p, slice(None)), t)

    return k


@pytest.mark.parametrize("kind", ["index", "mask", "branch", "loop"])
def test_an_unsupported_construct_is_its_own_obligation_and_nothing_depending_on_it_is_proved(
    kind,
):
    obs = check_static(lower(_opaque(kind)))
    (u,) = [o for o in obs if o.kind == "unsupported"]
    assert u.status == "unknown" and u.location.line > 0 and u.detail["construct"] in u.message
    body = [o for o in obs if o.kind != "unsupported"]
    assert not [o for o in body if o.status == "violated"]  # no finding on a partial model
    assert all(f"at {u.location.short}" in o.reason for o in body if o.status == "unknown")
    proved = [o for o in body if o.status == "proved"]
    if kind in ("index", "mask"):  # one access of y left out: only what concerns y is unknown
        assert u.detail["affects"] == ["y"]
        assert all(o.detail.get("tensor") != "y" for o in proved)
        unknown = [o for o in body if o.status == "unknown"]
        assert {o.kind for o in unknown} == {"coverage", "bounds", "overflow"}
        assert {o.detail.get("tensor") for o in unknown} <= {"y", None}  # the left-out access
        assert {"bounds", "overflow"} <= {o.kind for o in proved if o.detail.get("tensor") == "x"}
    else:  # a region dropped: only facts about the declarations survive
        assert u.detail["affects"] is None
        assert all(o.message.startswith(("the domain", "tensor ", "grid ")) for o in proved)
        assert {"bounds", "coverage", "overflow", "race"} <= {
            o.kind for o in body if o.status == "unknown"
        }


def test_a_left_out_store_into_an_index_tensor_makes_every_verdict_unknown():
    """Other tensors' proofs assume the declared range of values read back from it."""

    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 64"],
        tensors=dict(
            x=tp.Input(("N", 8)),
            idx=tp.Scratch(("N",), "int32", values="0 <= v < N"),
            y=tp.Output(("N", 8)),
        ),
    )
    def k(x, idx, y):
        p = tp.program_id(0)
        t = tp.load(x, (p, slice(None)))
        tp.store(idx, (p + jnp.argmax(t).astype(jnp.int32) * 0,), p)
        tp.barrier("launch")
        tp.store(y, (tp.load(idx, (p,)), slice(None)), t)

    obs = check_static(lower(k))
    (u,) = [o for o in obs if o.kind == "unsupported"]
    assert u.detail["affects"] is None
    bad = [o.message for o in obs if o.status == "proved" and o.kind in ("bounds", "race")]
    assert not bad, bad
    assert any(o.kind == "bounds" and o.status == "unknown" and "store y" in o.message for o in obs)


def test_the_correct_twin_has_no_unsupported_construct_and_is_proved():
    obs = check_static(lower(_opaque("ok")))
    assert all(o.status == "proved" for o in obs), [(o.kind, o.message, o.reason) for o in obs]


def test_a_selection_of_kinds_never_hides_an_unsupported_construct():
    obs = check_static(lower(_opaque("branch")), kinds=("shape", "race"))
    assert {o.kind for o in obs} == {"shape", "race", "unsupported"}
    assert all(o.status == "unknown" for o in obs if o.kind == "race")


def test_unsupported_is_a_kind_of_the_json_contract_and_error_a_numeric_status():
    assert "unsupported" in KINDS and set(KINDS) >= set(CONTRACT_KINDS)
    assert NUMERIC_STATUSES == ("matched", "mismatch", "error", "skipped")


OPAQUE_SPEC = """\
import jax.numpy as jnp
import tileproof.spec as tp


@tp.kernel(grid={"p": "N"}, assume=["N <= 64"],
           tensors=dict(x=tp.Input(("N", 8)), y=tp.Output(("N", 8))))
def opaque(x, y):
    p = tp.program_id(0)
    t = tp.load(x, (p, slice(None)))
    tp.store(y, (p + jnp.argmax(t).astype(jnp.int32) * 0, slice(None)), t)
"""


def test_a_configured_skip_never_removes_an_unsupported_construct(repo, capsys):
    write(
        repo / "pyproject.toml",
        '[tool.tileproof.skip]\nbounds = "checked at run time"\n'
        'coverage = "checked at run time"\noverflow = "64-bit"\nrace = "one program"\n',
    )
    write(repo / "opaque_spec.py", OPAQUE_SPEC)
    rc, out, _ = run(
        capsys, "check", "--static", "--no-cache", "--format", "json", "opaque_spec.py"
    )
    assert rc == 1
    (k,) = json.loads(out)["kernels"]
    (u,) = [o for o in k["obligations"] if o["kind"] == "unsupported"]
    assert u["status"] == "unknown" and u["location"].endswith("opaque_spec.py:10")
    rc, out, _ = run(capsys, "check", "--static", "--no-cache", "opaque_spec.py")
    assert rc == 1 and "unsupported: unknown: unsupported construct at opaque_spec.py:10" in out
    assert "skipped by configuration" not in out.splitlines()[-1]


def test_unsupported_cannot_be_configured_away(repo, capsys):
    write(repo / "pyproject.toml", '[tool.tileproof.skip]\nunsupported = "trust me"\n')
    write(repo / "opaque_spec.py", OPAQUE_SPEC)
    rc, _, err = run(capsys, "check", "--static", "opaque_spec.py")
    assert rc == 2 and "pyproject.toml:2" in err and "cannot skip 'unsupported'" in err


# ------------------------------------------------------------------------ numeric: error


def _rows(reference, **kw):
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 16"],
        defaults={"N": 4},
        tensors=ROWS,
        reference=reference,
        **kw,
    )
    def rows(x, y):
        p = tp.program_id(0)
        tp.store(y, (p, slice(None)), 2 * tp.load(x, (p, slice(None))))

    return rows


def _loop_barrier():
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 16"],
        tensors=ROWS,
        reference=lambda x: 2 * x,
        launch=tp.Launch(cores=16),
    )
    def loop_barrier(x, y):
        p = tp.program_id(0)

        def body(i, c):
            tp.barrier("grid")
            return c

        lax.fori_loop(0, 2, body, 0)
        tp.store(y, (p, slice(None)), 2 * tp.load(x, (p, slice(None))))

    return loop_barrier


def _no_inputs():
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 16", "N >= 2"],
        tensors=dict(t=tp.Input(("N",), "int32", values="0 <= v < 1", distinct=True), **ROWS),
        reference=lambda t, x: 2 * x,
    )
    def no_inputs(t, x, y):
        p = tp.program_id(0)
        tp.store(y, (p, slice(None)), 2 * tp.load(x, (p, slice(None))))

    return no_inputs


@pytest.mark.parametrize(
    "kernel, fragment",
    [
        (_rows(lambda x: 1 // 0), "the run failed: ZeroDivisionError"),  # the reference raises
        (_rows(lambda x: (2 * x, x)), "returns 2 values for 1 outputs"),  # wrong outputs
        (_rows(None), "declares no reference"),
        (_no_inputs(), "no inputs could be drawn"),
        (_loop_barrier(), "grid barrier inside a loop"),  # a construct the executor does not run
    ],
)
def test_a_numeric_run_that_did_not_run_is_an_error_that_fails_the_kernel(kernel, fragment):
    res = check_numeric(kernel, budget=1, gradients=False)
    assert res.status == "error" and fragment in res.message, res.message
    rep = verify_kernel(kernel, numeric=True, numeric_options={"budget": 1, "gradients": False})
    assert rep.numeric.status == "error" and not rep.ok
    assert rep.to_json()["numeric"]["status"] == "error"


def test_the_correct_twin_matches_and_a_requested_skip_says_why():
    assert check_numeric(_rows(lambda x: 2 * x), budget=1, gradients=False).status == "matched"
    res = check_numeric(_rows(None, numeric={"skip": "compared on the device"}))
    assert res.status == "skipped" and "compared on the device" in res.message
    rep = verify_kernel(_rows(None, numeric={"skip": "compared on the device"}), numeric=True)
    assert rep.ok


RAISING_SPEC = FIXED.replace(
    'reference=lambda x: {"y": 2 * x}', 'reference=lambda x: {"z": 2 * x}'
)  # returns no y


def test_a_numeric_error_fails_the_command_sarif_and_assert_verified(repo, capsys):
    from tileproof.report import Report, to_sarif
    from tileproof.testing import assert_verified

    assert RAISING_SPEC != FIXED
    write(repo / "broken_spec.py", RAISING_SPEC)
    rc, out, _ = run(capsys, "check", "--no-cache", "-j", "1", "broken_spec.py")
    assert rc == 1
    assert "numeric: error" in out and "failed numeric run" in out.splitlines()[-1]
    from tileproof.project import collect

    (k,) = collect(["broken_spec.py"])
    with pytest.raises(AssertionError, match="numeric: error"):
        assert_verified(k, budget=1, gradients=False)
    rep = verify_kernel(k, numeric=True, numeric_options={"budget": 1, "gradients": False})
    (r,) = to_sarif(Report([rep]))["runs"][0]["results"]
    assert r["ruleId"] == "tileproof/numeric" and r["level"] == "error"


def test_the_pytest_plugin_fails_a_kernel_whose_numeric_run_failed(pytester):
    pytester.makepyprojecttoml("[tool.tileproof]\ncache = false\n")
    pytester.makepyfile(broken_spec=RAISING_SPEC)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*numeric: error*"])


# ---------------------------------------------------------------- residency without a machine


BARRIER_SPEC = """\
import tileproof.spec as tp


@tp.kernel(grid={{"p": "N"}}, assume=["N <= 16"], {launch}
           tensors=dict(x=tp.Input(("N", 8)), s=tp.Scratch(("N", 8)), y=tp.Output(("N", 8))))
def staged(x, s, y):
    p = tp.program_id(0)
    tp.store(s, (p, slice(None)), tp.load(x, (p, slice(None))))
    tp.barrier("grid")
    tp.store(y, (p, slice(None)), tp.load(s, ((p + 1) % tp.size("N"), slice(None))))
"""


def test_a_grid_barrier_without_a_machine_is_unknown_and_fails(repo, capsys):
    write(repo / "staged_spec.py", BARRIER_SPEC.format(launch=""))
    rc, out, _ = run(capsys, "check", "--static", "--no-cache", "staged_spec.py")
    assert rc == 1
    assert "barrier: unknown: all programs waiting at the grid barrier" in out
    assert "no machine model: declare launch=tp.Launch(...)" in out
    assert "skipped" not in out.splitlines()[-1]


def test_with_a_machine_the_barrier_is_proved_and_a_configured_skip_says_so(repo, capsys):
    write(
        repo / "staged_spec.py",
        BARRIER_SPEC.format(launch="launch=tp.Launch(cores=16, start='together'),"),
    )
    rc, out, _ = run(capsys, "check", "--static", "--no-cache", "staged_spec.py")
    assert rc == 0, out
    write(repo / "staged_spec.py", BARRIER_SPEC.format(launch=""))
    write(repo / "pyproject.toml", '[tool.tileproof.skip]\nbarrier = "our runtime checks it"\n')
    rc, out, _ = run(capsys, "check", "--static", "--no-cache", "staged_spec.py")
    assert rc == 0 and "1 skipped by configuration" in out.splitlines()[-1]


# -------------------------------------------------------------------------------- discovery


def test_folder_discovery_keeps_files_whose_names_merely_contain_test(repo, capsys):
    for name in ("attestation_spec.py", "latest.py", "contest_kernels.py"):
        write(repo / "specs" / name, FIXED.replace("def scale", f"def {name[:-3]}"))
    write(
        repo / "specs" / "test_scale.py",
        "raise SystemExit('a test module: not imported')\nimport tileproof\n",
    )
    write(repo / "specs" / "notes.py", "raise SystemExit('never mentions us')\n")
    rc, out, err = run(capsys, "check", "--static", "--no-cache", "-v", "--format", "json", "specs")
    assert rc == 0
    names = {k["name"] for k in json.loads(out)["kernels"]}
    assert names == {"attestation_spec", "latest", "contest_kernels"}
    assert "skipped specs/test_scale.py: a pytest test module" in err
    assert "skipped specs/notes.py: never mentions tileproof" in err


def test_a_path_that_holds_no_spec_is_a_usage_error(repo, capsys):
    write(repo / "specs" / "helpers.py", "import tileproof.spec as tp\nVALUE = 1\n")
    rc, out, err = run(capsys, "check", "--static", "specs")
    assert rc == 2 and out == "" and "specs (given on the command line) holds no kernel spec" in err
    rc, out, err = run(capsys, "check", "--static", "--format", "json", "specs/helpers.py")
    assert rc == 2 and json.loads(out)["summary"]["ok"] is False
    assert "it declares no tileproof kernel" in err


# ------------------------------------------------------------------------------ index width


WIDE_SPEC = """\
import tileproof.spec as tp


@tp.kernel(grid={{"b": "B"}}, assume=["B <= 2**30"], {bits}
           tensors=dict(x=tp.Input(("B", 8)), o=tp.Output(("B", 8))))
def rows(x, o):
    b = tp.program_id(0)
    tp.store(o, (b, tp.ds(0, 8)), tp.load(x, (b, tp.ds(0, 8))))
"""


@pytest.mark.parametrize(
    "bits, rc, width, origin",
    [
        ("", 0, 64, "config"),  # undeclared: the project's index-bits widens it
        ("index_bits=32,", 1, 32, "kernel"),  # declared: never changed by configuration
        ("index_bits=64,", 0, 64, "kernel"),
    ],
)
def test_configured_index_bits_widens_only_kernels_that_declared_none(
    repo, capsys, bits, rc, width, origin
):
    write(repo / "pyproject.toml", "[tool.tileproof]\nindex-bits = 64\n")
    write(repo / "rows_spec.py", WIDE_SPEC.format(bits=bits))
    got, out, _ = run(capsys, "check", "--static", "--no-cache", "--format", "json", "rows_spec.py")
    (k,) = json.loads(out)["kernels"]
    assert got == rc and (k["index_bits"], k["index_bits_from"]) == (width, origin)
    _, out, _ = run(capsys, "check", "--static", "--no-cache", "-v", "rows_spec.py")
    assert f"offsets checked in int{width}" in out


def test_without_configuration_an_undeclared_width_is_32():
    rows = _rows(lambda x: 2 * x)
    assert rows.index_bits is None and lower(rows).index_bits == 32
    rep = verify_kernel(rows)
    assert (rep.index_bits, rep.index_bits_from) == (32, "default")


# -------------------------------------------------------------------------- proof cache key


def test_the_cache_key_covers_every_module_of_the_package(monkeypatch, tmp_path):
    import shutil

    import tileproof
    from tileproof.project import _cache

    pkg = tmp_path / "tileproof"
    shutil.copytree(tileproof.__path__[0], pkg, ignore=shutil.ignore_patterns("__pycache__"))
    fake = pkg / "project" / "_cache.py"

    def fingerprint():
        monkeypatch.setattr(_cache, "_CODE_HASH", None)
        monkeypatch.setattr(_cache, "__file__", str(fake))
        return _cache._code_fingerprint()

    base = fingerprint()
    for module in ("lowering/_lower.py", "spec/_decl.py", "verify/numeric/_plan.py"):
        f = pkg / module
        old = f.read_text()
        f.write_text(old + "\n# edited\n")
        assert fingerprint() != base, module  # an edited module never meets a stale proof
        f.write_text(old)
    assert fingerprint() == base


# --------------------------------------------------------------- concrete confirmation


def _scatter(distinct: bool, values: str = "0 <= v < N"):
    """Row p of x goes to row perm[p] of y: exact cover when perm is a permutation."""

    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 64", "N >= 4"],
        tensors=dict(perm=tp.Input(("N",), "int32", values=values, distinct=distinct), **ROWS),
    )
    def scatter(perm, x, y):
        p = tp.program_id(0)
        tp.store(y, (tp.load(perm, (p,)), slice(None)), tp.load(x, (p, slice(None))))

    return scatter


def _coverage(kernel):
    return [
        o
        for o in check_static(lower(kernel), kinds=("shape", "coverage"))
        if o.kind == "coverage" and "twice" not in o.message
    ]


def test_a_scatter_through_a_distinct_permutation_is_not_reported_unwritten():
    (o,) = _coverage(_scatter(distinct=True))
    assert o.status != "violated", o.message  # the concrete run honours distinct=True


def test_a_scatter_through_a_table_that_may_repeat_is_refuted():
    (o,) = _coverage(_scatter(distinct=False))
    assert o.status == "violated" and "never written" in o.message


def test_no_finding_is_confirmed_on_inputs_the_declarations_do_not_admit():
    # 4+ distinct entries from a range of 2 values: no admissible input at any size
    (o,) = _coverage(_scatter(distinct=True, values="0 <= v < 2"))
    assert o.status != "violated", o.message


# ------------------------------------------------------------------------ run-level errors


def test_sys_exit_in_a_spec_module_or_a_reference_never_ends_the_run_with_0(repo, capsys):
    write(repo / "quits_spec.py", "import sys\nimport tileproof.spec as tp\nsys.exit(0)\n")
    rc, _, err = run(capsys, "check", "--static", "quits_spec.py")
    assert rc == 2 and "quits_spec.py:3: error: importing quits_spec.py failed: SystemExit" in err
    write(
        repo / "exits_spec.py",
        FIXED.replace('reference=lambda x: {"y": 2 * x}', "reference=lambda x: exit(0)"),
    )
    rc, out, _ = run(capsys, "check", "--no-cache", "-j", "1", "exits_spec.py")
    assert rc == 1 and "numeric: error" in out and "SystemExit" in out
