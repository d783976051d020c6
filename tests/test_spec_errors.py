"""Bad specs give one paragraph naming the user's file and line and what to do — never a traceback."""

import subprocess
import sys
import textwrap

import jax.numpy as jnp
import pytest
from _helpers import line_of

import tileproof.spec as tp
from tileproof.lowering import lower


def test_python_if_on_program_id():
    @tp.kernel(grid={"i": 4}, tensors=dict(o=tp.Output((4,))))
    def k(o):
        if tp.program_id(0) == 0:  # MARK-if
            tp.store(o, (0,), 1.0)

    with pytest.raises(tp.SpecError) as e:
        lower(k)
    msg = str(e.value)
    assert f"test_spec_errors.py:{line_of(__file__, 'MARK-if')}" in msg
    assert "Python control flow on a traced value" in msg
    assert "tp.when(cond)" in msg and "\n" not in msg


def test_body_that_does_not_trace():
    @tp.kernel(grid={"i": 4}, tensors=dict(x=tp.Input((4, 8)), o=tp.Output((4, 8))))
    def k(x, o):
        t = tp.load(x, (tp.program_id(0), slice(None)))
        tp.store(o, (tp.program_id(0), slice(None)), t @ jnp.ones((3, 3)))  # MARK-matmul

    with pytest.raises(tp.SpecError) as e:
        lower(k)
    msg = str(e.value)
    assert f"test_spec_errors.py:{line_of(__file__, 'MARK-matmul')}" in msg
    assert "does not trace" in msg and "TypeError" in msg


def test_shape_expression_typo_names_line_and_column():
    with pytest.raises(tp.SpecError) as e:
        tp.Input(("B*S +", 64))  # MARK-typo
    msg = str(e.value)
    assert f"test_spec_errors.py:{line_of(__file__, 'MARK-typo')}" in msg
    assert "syntax error" in msg and "column" in msg


def test_domain_typo():
    with pytest.raises(tp.SpecError) as e:
        bad = ["N %% 8 == 0"]
        tp.kernel(grid={"i": "N"}, assume=bad, tensors=dict(o=tp.Output(("N",))))  # MARK-dom
    assert f"test_spec_errors.py:{line_of(__file__, 'MARK-dom')}" in str(e.value)


def test_wrong_index_arity_points_at_the_access():
    @tp.kernel(grid={"i": 4}, tensors=dict(x=tp.Input((4, 8)), o=tp.Output((4, 8))))
    def k(x, o):
        tp.load(x, (tp.program_id(0),))  # MARK-arity

    with pytest.raises(tp.SpecError) as e:
        lower(k)
    assert f"test_spec_errors.py:{line_of(__file__, 'MARK-arity')}" in str(e.value)
    assert "has 2 dimensions but the index has 1" in str(e.value)


def test_cli_spec_error_exit_code_2(tmp_path):
    spec = tmp_path / "bad_spec.py"
    spec.write_text(
        textwrap.dedent("""
        import tileproof.spec as tp

        @tp.kernel(grid={"i": 4}, tensors=dict(o=tp.Output((4,))))
        def k(o):
            if tp.program_id(0) > 1:
                tp.store(o, (0,), 1.0)
    """)
    )
    r = subprocess.run(
        [sys.executable, "-m", "tileproof.cli", "check", "--static", str(spec)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "bad_spec.py:6" in out and "Traceback" not in out


@pytest.mark.parametrize("raised", ["SystemExit(0)", "KeyboardInterrupt()", "SystemExit(3)"])
def test_any_exception_while_tracing_is_a_spec_error(raised):
    @tp.kernel(grid={"i": 4}, tensors=dict(o=tp.Output((4,))))
    def k(o):
        raise eval(raised)  # MARK-raise

    with pytest.raises(tp.SpecError) as e:
        lower(k)
    msg = str(e.value)
    assert f"test_spec_errors.py:{line_of(__file__, 'MARK-raise')}" in msg
    assert raised.split("(")[0] in msg and "does not trace" in msg


@pytest.mark.parametrize("where", ["module", "body"])
@pytest.mark.parametrize("raised", ["SystemExit(0)", "KeyboardInterrupt"])
def test_cli_exits_2_when_a_spec_module_raises(tmp_path, where, raised):
    spec = tmp_path / "raising_spec.py"
    body = f"    raise {raised}" if where == "body" else "    tp.store(o, (0,), 1.0)"
    spec.write_text(
        "import tileproof.spec as tp\n"
        + (f"raise {raised}\n" if where == "module" else "\n")
        + "@tp.kernel(grid={'i': 4}, tensors=dict(o=tp.Output((4,))))\n"
        + f"def k(o):\n{body}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "tileproof.cli", "check", "--static", str(spec)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    line = 2 if where == "module" else 5
    out = r.stdout + r.stderr
    assert f"raising_spec.py:{line}" in out and raised.split("(")[0] in out


def test_the_trace_limit_counts_cpu_time_with_a_real_time_backstop(monkeypatch):
    """A slow machine stretches a trace's real time, not its CPU time: a body that waits
    (as a starved process does) is not stopped by the CPU limit; a wait past the
    real-time backstop is."""
    import time

    from tileproof.lowering import _lower

    @tp.kernel(grid={"i": 2}, tensors=dict(o=tp.Output((2,))))
    def waits(o):
        time.sleep(1.0)
        tp.store(o, (tp.program_id(0),), 1.0)

    with _lower._alarm(0.5):  # 1 s of real time, almost no CPU time: not stopped
        time.sleep(1.0)
    _lower.trace(waits, timeout_s=5)
    monkeypatch.setattr(_lower, "_wall_limit", lambda seconds: 0.3)
    with pytest.raises(tp.SpecError, match=r"did not finish tracing within 5 s of CPU time"):
        _lower.trace(waits, timeout_s=5)


def test_a_body_that_never_finishes_tracing_is_stopped():
    @tp.kernel(grid={"i": 4}, tensors=dict(o=tp.Output((4,))))
    def spins(o):
        while True:  # MARK-spin
            pass

    from tileproof.lowering._lower import trace

    with pytest.raises(tp.SpecError) as e:
        trace(spins, timeout_s=0.5)
    msg = str(e.value)
    assert "'spins' did not finish tracing within 0.5 s" in msg
    assert f"test_spec_errors.py:{line_of(__file__, 'MARK-spin') + 1}" in msg or (
        f"test_spec_errors.py:{line_of(__file__, 'MARK-spin')}" in msg
    )


def test_the_trace_timeout_is_configurable_and_reaches_worker_processes(tmp_path):
    spec = tmp_path / "spin_spec.py"
    spec.write_text(
        "import tileproof.spec as tp\n\n"
        "@tp.kernel(grid={'i': 4}, tensors=dict(o=tp.Output((4,))))\n"
        "def spin_a(o):\n    while True:\n        pass\n\n"
        "@tp.kernel(grid={'i': 4}, tensors=dict(o=tp.Output((4,))))\n"
        "def spin_b(o):\n    while True:\n        pass\n"
    )
    import os

    env = {**os.environ, "TILEPROOF_TRACE_TIMEOUT_S": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "tileproof.cli", "check", "--static", "-j", "2", str(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "'spin_a' did not finish tracing within 1 s" in out
    assert "'spin_b' did not finish tracing within 1 s" in out
