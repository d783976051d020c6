"""`tileproof.testing.assert_verified` and the pytest plugin that collects spec modules."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from test_cli import BUGGY, FIXED

from tileproof.project import collect
from tileproof.testing import assert_verified

pytest_plugins = ["pytester"]


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad_spec.py").write_text(BUGGY)
    (tmp_path / "good_spec.py").write_text(FIXED.replace("def scale", "def scale_ok"))
    (bad,), (good,) = collect(["bad_spec.py"]), collect(["good_spec.py"])
    return bad, good


def test_assert_verified_passes_and_returns_the_report(kernels):
    report = assert_verified(kernels[1], numeric=False)
    assert report.ok and report.kernels[0].name == "scale_ok"


def test_assert_verified_message_is_the_text_report(kernels):
    with pytest.raises(AssertionError) as e:
        assert_verified(kernels[0], numeric=False)
    text = str(e.value)
    assert "bad_spec.py:17: coverage: " in text and "counterexample: N=" in text
    assert "Found 1 violated and 0 unknown obligations in 1 kernel" in text


def test_assert_verified_runs_numerics_by_default(kernels):
    with pytest.raises(AssertionError, match="numeric: mismatch"):
        assert_verified(kernels[0])


def test_assert_verified_refuses_what_is_no_kernel():
    with pytest.raises(TypeError, match="takes a tileproof kernel"):
        assert_verified(lambda x: x)


def test_the_plugin_is_registered_as_a_pytest11_entry_point():
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("tileproof") == "tileproof.pytest_plugin", (
        "reinstall tileproof (pip install -e .) to register its pytest plugin"
    )


def test_pytest_collects_one_item_per_kernel(pytester):
    pytester.makepyprojecttoml("[tool.tileproof]\npytest-numeric = false\n")
    pytester.makepyfile(
        good_spec=FIXED.replace("def scale", "def scale_ok"),
        bad_spec=BUGGY,
        helpers="import tileproof.spec as tp\nVALUE = 1\n",  # not a spec file name: not collected
        test_plain="def test_plain():\n    assert True is not False\n",
    )
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*bad_spec.py::scale FAILED*",
            "*good_spec.py::scale_ok PASSED*",
            "*bad_spec.py:17: coverage: *never written*",
            "*counterexample: N=*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_configured_paths_and_patterns(pytester):
    pytester.makepyprojecttoml(
        '[tool.tileproof]\npaths = ["kernels"]\nspec-patterns = ["k_*.py"]\n'
        "pytest-numeric = false\n"
    )
    pytester.mkdir("kernels")
    (pytester.path / "kernels" / "scale.py").write_text(FIXED)
    (pytester.path / "k_other.py").write_text(FIXED.replace("def scale", "def scale_two"))
    (pytester.path / "bad_spec.py").write_text(BUGGY)  # the default pattern is replaced
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*k_other.py::scale_two PASSED*", "*kernels/scale.py::scale PASSED*"]
    )


def test_plugin_options_and_errors(pytester):
    pytester.makepyfile(bad_spec=BUGGY)
    result = pytester.runpytest("--no-tileproof-specs", "-p", "no:cacheprovider")
    result.assert_outcomes()
    pytester.makepyfile(broken_spec="import tileproof.spec as tp\nraise ValueError('oops')\n")
    result = pytester.runpytest("--tileproof-static", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # a collection error stops the session, as in pytest
    result.stdout.fnmatch_lines(["*broken_spec.py:2: error: importing * failed: ValueError: oops*"])
    pytester.makepyprojecttoml("[tool.tileproof]\njobz = 1\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pyproject.toml:2: error: unknown setting ?tool.tileproof? jobz*"]
    )


def test_sizes_strategy_draws_admissible_points_within_the_cap():
    from hypothesis import HealthCheck, given, settings

    from tileproof.catalog import paged_attention
    from tileproof.testing import sizes
    from tileproof.verify.numeric._sizes import CAP_ELEMENTS, cost

    kernel = paged_attention.paged_attention
    seen = []

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
    @given(sizes(kernel))
    def check(env):
        assert all(f.evaluate(env) for f in kernel.assume)
        assert cost(kernel, env)[0] <= CAP_ELEMENTS
        seen.append(env)

    check()
    assert len(seen) >= 10 and all(env["H"] % 16 == 0 for env in seen)
