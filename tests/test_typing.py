"""mypy on the public API (issue 11): ``py.typed`` is shipped, so the types a user sees must hold.

The configuration is ``[tool.mypy]`` in pyproject.toml: the modules a user imports are
checked, the rest of the package is followed silently.  The run is cold (a fresh cache
directory), as CI's is, so a stale cache cannot hide an error; it takes a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_clean_on_public_api(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"),
         "--config-file", str(ROOT / "pyproject.toml")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mypy failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Success: no issues found" in proc.stdout, proc.stdout


def test_mypy_config_covers_the_public_api() -> None:
    """The checked files are the public API: a new public module must be added there."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert conf["python_version"] == "3.10"
    assert conf["follow_imports"] == "silent"
    for public in ("tileproof/__init__.py", "tileproof/errors.py", "tileproof/_location.py",
                   "tileproof/testing.py", "tileproof/shapes", "tileproof/spec",
                   "tileproof/model", "tileproof/report", "tileproof/project"):
        assert public in conf["files"], public
        assert (ROOT / public).exists(), public
