"""The repository stays formatted and lint-clean (issue 11): ``ruff format --check`` and
``ruff check`` over the whole tree, with the configuration in pyproject.toml, as a
contributor runs them.  A failure prints what ruff would change; ``ruff format .`` and
``ruff check --fix .`` repair it.  Markdown is excluded there: ruff >= 0.17 would format
the Python blocks of the prose, whose examples keep hand-aligned comments.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv",
    [["format", "--check", "--diff"], ["check"]],
    ids=["format", "lint"],
)
def test_ruff_clean_on_the_whole_repository(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *argv, "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"ruff {' '.join(argv)}:\n{proc.stdout[-6000:]}\n{proc.stderr}"
