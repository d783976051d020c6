"""The runner: one kernel verified with a project's settings and caches.

Every way of running tileproof on a kernel -- ``tileproof check`` (in its own
process or a worker), the pytest plugin, ``tileproof.testing.assert_verified`` --
goes through :func:`run_kernel`, so that settings and caches mean the same in
all of them: the proof cache and the numeric result cache in the settings'
cache folder (off when ``cache = false``), progress lines for ``--verbose``,
and JAX's persistent compilation cache for the command's own processes
(:func:`setup_compile_cache`; a test session importing tileproof keeps its JAX
as it is).  The verification itself is :func:`tileproof.verify.verify_kernel`,
which knows nothing of settings files or cache folders.
"""

from __future__ import annotations

import sys
from typing import Literal, overload

from ..report import KernelReport
from ..spec._kernel import Kernel
from ..verify._api import verify_kernel
from ._cache import ProofCache
from ._settings import Config

__all__ = ["run_kernel", "setup_compile_cache"]


@overload
def run_kernel(
    kernel: Kernel,
    config: Config,
    *,
    numeric: bool,
    points: bool = ...,
    numeric_options: dict | None = ...,
    cached_only: Literal[False] = ...,
) -> KernelReport: ...


@overload
def run_kernel(
    kernel: Kernel,
    config: Config,
    *,
    numeric: bool,
    points: bool = ...,
    numeric_options: dict | None = ...,
    cached_only: bool,
) -> KernelReport | None: ...


def run_kernel(
    kernel: Kernel,
    config: Config,
    *,
    numeric: bool,
    points: bool = False,
    numeric_options: dict | None = None,
    cached_only: bool = False,
) -> KernelReport | None:
    """Verify ``kernel`` under ``config``: its caches, budgets, tolerances and skipped kinds.

    ``points``: a stderr line per numeric size point; ``numeric_options`` go to
    :func:`~tileproof.verify.numeric.check_numeric`; ``cached_only``: answer from the
    caches alone or return None (see :func:`~tileproof.verify.verify_kernel`).
    """
    from ._numcache import NumericCache

    opts = dict(numeric_options or {})
    if points:
        opts["on_point"] = _point_line(kernel.name)
    return verify_kernel(
        kernel,
        config=config,
        numeric=numeric,
        cache=ProofCache(config.cache_path, config.cache),
        numeric_cache=NumericCache(config.cache_path, config.cache),
        numeric_options=opts or None,
        cached_only=cached_only,
    )


_CACHES_SET = False


def setup_compile_cache(config: Config, numeric: bool) -> None:
    """JAX's persistent compilation cache beside the proof cache (once per process, and only
    in the command's own processes: a test session importing tileproof keeps its JAX as is)."""
    global _CACHES_SET
    if numeric and config.cache and not _CACHES_SET:
        from ._numcache import enable_compilation_cache

        _CACHES_SET = enable_compilation_cache(config.cache_path)


def _point_line(name: str):
    """``--verbose``: one stderr line per numeric size point (printed by whichever process
    runs the kernel: workers share the command's stderr)."""

    def on_point(env: dict, run: dict) -> None:
        sizes = ", ".join(f"{k}={v}" for k, v in env.items()) or "(no sizes)"
        what = "mismatch" if run.get("problems") else "ok"
        print(
            f"tileproof: {name}: numeric at {sizes} (seed {run.get('seed')}): {what} "
            f"({run.get('seconds', 0.0):.1f}s)",
            file=sys.stderr,
            flush=True,
        )

    return on_point
