"""pytest plugin (entry point ``pytest11``): spec modules are tests, one item per kernel.

In a repository with tileproof installed, ``pytest`` collects every file named
like a spec (``*_spec.py`` or ``spec_*.py``; ``spec-patterns`` in
``[tool.tileproof]`` changes that) and every file under the configured
``paths``, and verifies each kernel in it: the static proofs, and numerics
unless ``pytest-numeric = false`` or ``--tileproof-static``.  A failing
kernel's report is the failure message.  ``-p no:tileproof`` turns it off.

Files pytest already collects as test modules (``python_files``) are left to
pytest, and a file is imported only when it mentions tileproof, so a test
session without specs pays nothing but a glance at each file.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest

_SETTINGS = pytest.StashKey[object]()


def pytest_addoption(parser):
    group = parser.getgroup("tileproof", "tileproof kernel specs")
    group.addoption(
        "--tileproof-static",
        action="store_true",
        default=False,
        help="verify collected kernel specs statically only (no numeric run)",
    )
    group.addoption(
        "--no-tileproof-specs",
        action="store_true",
        default=False,
        help="do not collect kernel spec modules",
    )


def _settings(config):
    """``[tool.tileproof]`` for this session (loaded once, on the first candidate file)."""
    if _SETTINGS not in config.stash:
        from .project import load_config
        from .spec._errors import LocatedError

        try:
            config.stash[_SETTINGS] = load_config(config.rootpath)
        except LocatedError as e:  # a ConfigError
            raise pytest.UsageError(str(e)) from None
    return config.stash[_SETTINGS]


def _mentions_tileproof(path: Path) -> bool:  # as project._discover's, which would import jax
    try:
        return "tileproof" in path.read_text(errors="ignore")
    except OSError:
        return False


def _selected(path: Path, settings) -> bool:
    if any(fnmatch.fnmatch(path.name, p) for p in settings.spec_patterns):
        return True
    here = os.path.realpath(path)
    for p in settings.paths:
        root = os.path.realpath(settings.resolve(p))
        if here == root or here.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def pytest_collect_file(file_path: Path, parent):
    config = parent.config
    if file_path.suffix != ".py" or config.getoption("no_tileproof_specs"):
        return None
    if any(fnmatch.fnmatch(file_path.name, p) for p in config.getini("python_files")):
        return None  # a test module: pytest's own
    if file_path.name == "conftest.py" or not _mentions_tileproof(file_path):
        return None
    if not _selected(file_path, _settings(config)):
        return None
    return SpecModule.from_parent(parent, path=file_path)


class SpecModule(pytest.File):
    """A spec file: one :class:`KernelItem` per kernel it declares."""

    def collect(self):
        from .project import find_kernels
        from .spec._errors import LocatedError

        try:
            found = find_kernels([str(self.path)])
        except LocatedError as e:  # a spec or setting error
            raise self.CollectError(str(e)) from None
        names: set[str] = set()
        for ref, kernel in found:
            name = kernel.name if kernel.name not in names else f"{kernel.name}[{ref.index}]"
            names.add(name)
            yield KernelItem.from_parent(self, name=name, kernel=kernel)


class KernelFailed(Exception):
    """A kernel that did not verify; the text report is the message."""


class KernelItem(pytest.Item):
    def __init__(self, *, kernel, **kw):
        super().__init__(**kw)
        self.kernel = kernel
        self.add_marker("tileproof")

    def runtest(self):
        from .project import run_kernel
        from .report import Report, to_text

        settings = _settings(self.config)
        numeric = settings.pytest_numeric and not self.config.getoption("tileproof_static")
        rep = run_kernel(self.kernel, settings, numeric=numeric)
        if not rep.ok:
            raise KernelFailed(to_text(Report([rep])))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, KernelFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return (
            self.path,
            max(self.kernel.location.line - 1, 0),
            f"tileproof kernel {self.kernel.name}",
        )


def pytest_configure(config):
    config.addinivalue_line("markers", "tileproof: a kernel spec verified by tileproof")
    # a broken [tool.tileproof] is a usage error up front; without one nothing is loaded yet
    for folder in (config.rootpath, *config.rootpath.parents):
        if _mentions_tileproof(folder / "pyproject.toml"):
            _settings(config)
            break
