"""Find kernel specs in files, folders and modules (what ``tileproof check PATH`` verifies).

Discovery imports user code, so it belongs to the run, not to the authoring API:
a target is a ``.py`` file, a folder (its spec files), a module name, ``FILE:KERNEL``
or ``MODULE:KERNEL``, or nothing (the bundled catalog).  Files that never mention
tileproof are passed over unimported -- that is what lets a pre-commit hook hand
every changed Python file to ``tileproof check`` -- and every file passed over is
reported with its reason, so that a path that verifies nothing never passes
silently.  A :class:`KernelRef` says where a kernel came from, so that a worker
process can load it again.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..spec._declared import kernels_in
from ..spec._errors import Location, SpecError, location_from_traceback
from ..spec._kernel import Kernel

__all__ = ["KernelRef", "collect", "find_kernel", "find_kernels", "kernel_target", "spec_files"]


def _package_name(path: Path) -> tuple[Path, str] | None:
    """(the folder above the top package, dotted name) of a file inside a package, else None.

    A spec file inside a package may import its siblings relatively (``from . import
    _pages``), which only works when it is imported under its package's name."""
    parts = [path.stem]
    folder = path.resolve().parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1 or not all(p.isidentifier() for p in parts):
        return None
    return folder, ".".join(parts)


def _import_path(path: Path):
    packaged = _package_name(path)
    if packaged is not None:
        root, dotted = packaged
        added = str(root) not in sys.path
        if added:
            sys.path.insert(0, str(root))
        try:
            module = _import_module(dotted)
        finally:
            if added:
                sys.path.remove(str(root))
        found = getattr(module, "__file__", None)
        if found and Path(found).resolve() == path.resolve():
            return module
        # another copy of the package shadows this file (an installed one): load the file itself
    name = "tileproof_user_" + "_".join(path.with_suffix("").parts[-3:]).replace("-", "_").replace(
        ".", "_"
    )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import {path}", Location(str(path), 1))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.parent.resolve())
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SpecError:
        raise
    except BaseException as e:  # SystemExit, KeyboardInterrupt too: the module raised it
        loc = location_from_traceback(e.__traceback__)
        raise SpecError(
            f"importing {path} failed: {type(e).__name__}: {e}",
            loc,
            "Fix the spec module so that it imports.",
        ) from None
    finally:
        if added:
            sys.path.remove(folder)
    return module


def _import_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise SpecError(
                f"no spec file or module named {name!r}",
                None,
                "Pass a path to a .py file, a folder, or an importable module name.",
            ) from None
        raise SpecError(
            f"importing {name} failed: {e}", location_from_traceback(e.__traceback__)
        ) from None
    except SpecError:
        raise
    except BaseException as e:  # SystemExit, KeyboardInterrupt too: the module raised it
        raise SpecError(
            f"importing {name} failed: {type(e).__name__}: {e}",
            location_from_traceback(e.__traceback__),
        ) from None


def _mentions_tileproof(path: Path) -> bool:
    try:
        return "tileproof" in path.read_text(errors="ignore")
    except OSError:
        return False


# folders a walk does not enter: hidden ones (.git, .venv, .tileproof_cache, ...) and tool output
_SKIP_DIRS = ("__pycache__", "site-packages", "node_modules")


def _is_test_module(name: str) -> bool:
    """pytest's default test-module names: pytest imports and runs those, tileproof does not."""
    return name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py")


def spec_files(folder: Path, skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """The ``.py`` files under ``folder`` that may hold kernel specs, sorted.

    Skipped, each with its reason appended to ``skipped`` (``tileproof check --verbose``
    prints them): files that never mention tileproof (not imported), pytest test modules
    (``test_*.py``, ``*_test.py``, ``conftest.py``: pass one by name to verify specs in it),
    and hidden or tool folders.  A name that merely contains "test" is no reason.
    """
    note = skipped.append if skipped is not None else (lambda item: None)
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        keep = []
        for d in sorted(dirs):
            if d.startswith(".") or d in _SKIP_DIRS:
                note((os.path.join(root, d), "a hidden or tool folder (not searched)"))
            else:
                keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            f = Path(root) / name
            if _is_test_module(name):
                note(
                    (
                        str(f),
                        "a pytest test module (pytest runs it; name the file to verify "
                        "specs in it)",
                    )
                )
            elif not _mentions_tileproof(f):
                note((str(f), "never mentions tileproof (not imported)"))
            else:
                found.append(f)
    return sorted(found)


def collect(targets: list[str], skipped: list[tuple[str, str]] | None = None) -> list[Kernel]:
    """Kernels from each target: a .py file, a folder (spec files in it), or a module name.

    Files of a folder that are passed over are appended to ``skipped`` with the reason
    (see :func:`spec_files`).
    """
    kernels: list[Kernel] = []
    for t in targets:
        p = Path(t)
        if p.is_dir():
            mods = [_import_path(f) for f in spec_files(p, skipped)]
        elif p.suffix == ".py" or os.sep in t:
            if not p.exists():
                raise SpecError(f"no such file: {t}", None)
            mods = [_import_path(p)]
        else:
            mods = [_import_module(t)]
        for m in mods:
            for k in kernels_in(m):
                if k not in kernels:
                    kernels.append(k)
    return kernels


def find_kernel(target: str) -> Kernel:
    """``MODULE:KERNEL`` or ``path.py:KERNEL`` (the kernel's name or variable)."""
    if ":" not in target:
        ks = collect([target])
        if len(ks) != 1:
            raise SpecError(
                f"{target} holds {len(ks)} kernels; name one as {target}:NAME "
                f"({', '.join(k.name for k in ks)})",
                None,
            )
        return ks[0]
    where, name = target.rsplit(":", 1)
    p = Path(where)
    module = _import_path(p) if p.suffix == ".py" else _import_module(where)
    value = getattr(module, name, None)
    if isinstance(value, Kernel):
        return value
    for k in kernels_in(module):
        if k.name == name:
            return k
    raise SpecError(
        f"{where} has no kernel named {name!r} "
        f"(kernels: {', '.join(k.name for k in kernels_in(module)) or 'none'})",
        None,
    )


# ------------------------------------------------------------- targets of a run


@dataclass(frozen=True)
class KernelRef:
    """Where a kernel comes from, so that a worker process can load it again."""

    target: str | None  # a path or module; None for the bundled catalog
    index: int
    name: str


def kernel_target(target: str) -> bool:
    """Is ``target`` a ``FILE:KERNEL`` or ``MODULE:KERNEL`` (one kernel), not a path?"""
    where, colon, name = target.rpartition(":")
    return bool(colon and where and name.isidentifier() and not os.path.exists(target))


def _collect(target: str | None, skipped: list[tuple[str, str]] | None = None) -> list:
    if target is None:
        from .. import catalog

        return list(catalog.KERNELS)
    if kernel_target(target):
        return [find_kernel(target)]
    return collect([target], skipped)


def find_kernels(
    targets: Iterable[str] | None,
    *,
    skipped: list[tuple[str, str]] | None = None,
    empty: list[tuple[str, str]] | None = None,
) -> list[tuple[KernelRef, Kernel]]:
    """The kernels of each target (``None``: the catalog).

    ``.py`` files that never mention tileproof are skipped, unimported: that is what lets
    a pre-commit hook pass changed Python files while importing spec modules only.  Files
    passed over are appended to ``skipped`` as ``(path, reason)``, and targets that hold no
    kernel at all to ``empty`` as ``(target, reason)`` (the command makes that a usage error:
    a path that verifies nothing must not pass).
    """
    found: list[tuple[KernelRef, Kernel]] = []
    seen: set[int] = set()
    for target in list(targets) if targets is not None else [None]:
        if (
            target is not None
            and target.endswith(".py")
            and os.path.isfile(target)
            and not _mentions_tileproof(Path(target))
        ):
            why = "it never mentions tileproof, so it was not imported"
            if skipped is not None:
                skipped.append((target, "never mentions tileproof (not imported)"))
            if empty is not None:
                empty.append((target, why))
            continue
        before = len(skipped) if skipped is not None else 0
        kernels = _collect(target, skipped)
        if not kernels and empty is not None and target is not None:
            passed = len(skipped) - before if skipped is not None else 0
            why = (
                f"no spec file in it ({passed} file(s) passed over)"
                if os.path.isdir(target)
                else "it declares no tileproof kernel"
            )
            empty.append((target, why))
        for i, k in enumerate(kernels):
            if id(k) not in seen:
                seen.add(id(k))
                found.append((KernelRef(target, i, k.name), k))
    return found


_LOADED: dict = {}
