"""The real pre-commit, in a fresh git repository, with tileproof's `.pre-commit-hooks.yaml`.

This is the slow test of the suite (about a minute): pre-commit builds its own
virtual environment for the hook and pip-installs tileproof into it, with jax,
jaxlib and z3 from the package index (pip's cache makes reruns faster).  The
hook repository is a snapshot of this working tree (tracked files and new
files git does not ignore), committed into a temporary repository, so the test
exercises the hook definition as it is now, not as last committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import BUGGY, FIXED, STORE_LINE

ROOT = Path(__file__).resolve().parent.parent


def git(*args, cwd, env, check=True):
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=check, capture_output=True, text=True
    )


def snapshot(dst: Path, env) -> str:
    """Copy the working tree's files into a new repository at ``dst``; returns its commit."""
    files = git(
        "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT, env=env
    ).stdout
    for name in filter(None, files.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    git("init", "-q", cwd=dst, env=env)
    git("add", "-A", cwd=dst, env=env)
    git("commit", "-q", "-m", "snapshot", cwd=dst, env=env)
    return git("rev-parse", "HEAD", cwd=dst, env=env).stdout.strip()


def test_commit_is_blocked_with_a_counterexample_then_allowed(tmp_path, record_property):
    if shutil.which("git") is None:
        pytest.skip("needs git on PATH: pre-commit runs inside a git repository")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    (tmp_path / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
    if git("rev-parse", "--is-inside-work-tree", cwd=ROOT, env=env, check=False).returncode:
        pytest.skip("needs tileproof's git checkout to serve as the hook repository")
    hooks, user = tmp_path / "tileproof-hooks", tmp_path / "user"
    hooks.mkdir()
    user.mkdir()
    rev = snapshot(hooks, env)
    git("init", "-q", cwd=user, env=env)
    (user / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n      - id: tileproof\n"
    )
    (user / "specs").mkdir()
    (user / "specs" / "copy_spec.py").write_text(FIXED.replace("def scale", "def copy"))
    (user / "specs" / "scale_spec.py").write_text(BUGGY)
    (user / "notes.py").write_text("raise SystemExit('not a spec: the hook must not import me')\n")
    subprocess.run(
        [sys.executable, "-m", "pre_commit", "install"],
        cwd=user,
        env=env,
        check=True,
        capture_output=True,
    )

    def commit(message: str) -> tuple[subprocess.CompletedProcess, float]:
        git("add", "-A", cwd=user, env=env)
        t0 = time.perf_counter()
        done = subprocess.run(
            ["git", "commit", "-m", message],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        return done, time.perf_counter() - t0

    blocked, first = commit("specs")  # installs the hook environment, then runs the hook
    out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0, out
    assert "tileproof (static proofs of kernel specs)" in out and "Failed" in out
    assert f"specs/scale_spec.py:{STORE_LINE}: coverage: " in out
    assert "counterexample: N=" in out
    assert git("rev-parse", "--verify", "HEAD", cwd=user, env=env, check=False).returncode != 0

    (user / "specs" / "scale_spec.py").write_text(FIXED)
    allowed, second = commit("specs, fixed")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "Passed" in allowed.stdout + allowed.stderr
    assert git("log", "--format=%s", cwd=user, env=env).stdout.split("\n")[0] == "specs, fixed"
    assert (
        git("status", "--porcelain", cwd=user, env=env).stdout == ""
    )  # the cache stays out of git

    (user / "specs" / "copy_spec.py").write_text(
        FIXED.replace("def scale", "def copy") + "# touched\n"
    )
    again, warm = commit("touch")
    assert again.returncode == 0, again.stdout + again.stderr
    record_property("precommit_first_commit_s", round(first, 1))
    record_property("precommit_warm_commit_s", round(warm, 1))
    print(
        f"\npre-commit: first commit (hook install + check) {first:.1f} s, "
        f"fixed commit {second:.1f} s, warm commit {warm:.1f} s"
    )
