"""``tileproof.verify(kernel)``: lower, prove the static obligations, optionally run numerics.

:func:`verify_kernel` is the verification of one kernel: the command, the pytest
plugin, the testing helper and worker processes all reach it through the run
layer (:func:`tileproof.project.run_kernel`), which passes the project's settings
(:class:`tileproof.project.Config`) and caches.  It takes them as arguments and
imports nothing from the run layer, so the verifier stays below it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import replace

from ..lowering import lower
from ..report import KINDS, KernelReport, NumericResult, Obligation, Report
from ..shapes._decide import forget_history
from ..spec._errors import LocatedError
from ..spec._kernel import Kernel

__all__ = ["verify", "verify_kernel", "verify_many"]


def verify_kernel(
    kernel: Kernel,
    *,
    numeric: bool = False,
    timeout_ms: int | None = None,
    numeric_options: dict | None = None,
    config=None,
    cache=None,
    numeric_cache=None,
    cached_only: bool = False,
) -> KernelReport | None:
    """Verify one kernel; spec errors become the report's ``error`` instead of escaping.

    ``config`` applies a project's settings (index width, solver budget, skipped
    kinds with their reasons, numeric budget and tolerances); ``cache`` (a
    :class:`tileproof.project.ProofCache`) reuses the static results of
    an unchanged lowered model — ``report.cached`` says whether it did; ``numeric_cache``
    (a :class:`tileproof.project.NumericCache`) reuses a ``matched`` numeric
    result of an unchanged kernel, reference and run (``report.numeric_cached``).
    ``cached_only``: answer from the caches alone, or return None (nothing is proved or
    run): the runner asks this first so that a warm run starts no worker process.

    Nothing escapes as a pass: a spec error is the report's ``error``; any other exception
    (a bug in tileproof) too, worded as an internal error naming the kernel (re-raised
    with ``TILEPROOF_DEBUG=1``), so one broken kernel fails the run without hiding the others.
    """
    rep = KernelReport(name=kernel.name, source=str(kernel.location))
    try:
        return _verify(
            rep,
            kernel,
            numeric,
            timeout_ms,
            numeric_options,
            config,
            cache,
            numeric_cache,
            cached_only,
        )
    except _Miss:
        return None
    except LocatedError as e:  # a spec, setting or executor-setup error: the report says it
        if cached_only:  # reported by the real run
            return None
        rep.error = str(e)
    except SystemExit as e:  # the body or the reference (or what they call) exited
        rep.error = (
            f"{kernel.location}: error: verifying kernel {kernel.name} raised "
            f"SystemExit({e.code!r}): the body, the reference or something they call "
            "exited. Kernel code must not call sys.exit()."
        )
    except Exception as e:
        if cached_only:
            return None
        if os.environ.get("TILEPROOF_DEBUG"):
            raise
        rep.error = internal_error(kernel, e)
        rep.internal = True
    return rep


class _Miss(Exception):
    """``cached_only`` and a cache does not hold the answer."""


def internal_error(kernel: Kernel, e: BaseException) -> str:
    """One paragraph for an exception that is a bug in tileproof, naming the kernel and where."""
    tb, where = e.__traceback__, ""
    while tb is not None:
        where = f" (at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno})"
        tb = tb.tb_next
    return (
        f"{kernel.location}: internal error while verifying kernel {kernel.name}: "
        f"{type(e).__name__}: {e}{where}. This is a bug in tileproof, not in your kernel: "
        "rerun with TILEPROOF_DEBUG=1 to see the traceback, and report it."
    )


def index_width(kernel: Kernel, config=None) -> tuple[int, str]:
    """The index width offsets are checked in, and where it comes from.

    A kernel's own ``index_bits=`` wins; ``[tool.tileproof] index-bits`` only widens kernels
    that declared none; else 32.
    """
    if kernel.index_bits is not None:
        return kernel.index_bits, "kernel"
    if config is not None and config.index_bits is not None:
        return config.index_bits, "config"
    return 32, "default"


def _verify(
    rep,
    kernel,
    numeric,
    timeout_ms,
    numeric_options,
    config,
    cache,
    numeric_cache=None,
    cached_only=False,
) -> KernelReport:
    # the report is a function of this kernel alone, whatever the process verified before
    forget_history()
    bits, rep.index_bits_from = index_width(kernel, config)
    rep.index_bits = bits
    if timeout_ms is None and config is not None:
        timeout_ms = config.timeout_ms
    t0 = time.perf_counter()
    # the width only matters to the model; numerics keep the kernel object (and its caches)
    model = lower(kernel if kernel.index_bits == bits else replace(kernel, index_bits=bits))
    rep.lowering_seconds = time.perf_counter() - t0
    skip = dict(config.skip) if config is not None else {}
    skip.pop("unsupported", None)  # never skipped: unsupported constructs fail closed
    kinds = tuple(k for k in KINDS if k not in skip)
    options = {"timeout_ms": timeout_ms, "kinds": kinds}
    key = cache.key(model, options) if cache is not None and cache.enabled else None
    obligations = cache.get(key) if key else None
    rep.cached = obligations is not None
    if obligations is None and cached_only:
        raise _Miss
    if obligations is None:
        from .static import check_static

        kw: dict = {"kinds": kinds}
        if timeout_ms is not None:
            kw["timeout_ms"] = timeout_ms
        t1 = time.perf_counter()
        obligations = check_static(model, **kw)
        rep.solver_seconds = time.perf_counter() - t1
        if key:
            cache.put(key, obligations)
    rep.obligations = list(obligations) + [
        Obligation(
            kind,
            "skipped",
            f"{kind} obligations not checked",
            kernel.location,
            reason=why,
            detail={"configured": True},
        )
        for kind, why in skip.items()
    ]
    rep.sizes = list(model.sizes)
    if numeric:
        extra = [
            o.counterexample for o in rep.obligations if o.status == "violated" and o.counterexample
        ]
        t2 = time.perf_counter()
        rep.numeric, rep.numeric_cached = _numeric(
            kernel, config, extra, numeric_options, model, numeric_cache, cached_only
        )
        if rep.numeric_cached:  # the time this run spent, not the cached run's
            rep.numeric.seconds = time.perf_counter() - t2
        rerun = (rep.numeric.detail or {}).get("rerun")
        if rerun is not None:
            rerun["command"] = rerun_command(
                kernel, {**rerun["sizes"], **rerun.get("pins", {})}, rerun["seed"]
            )
    return rep


def rerun_target(kernel: Kernel) -> str:
    """``MODULE:KERNEL`` (or ``FILE:KERNEL``) that ``tileproof check`` loads this kernel from:
    a loaded module where the name resolves to this very kernel object (the body's module
    first, then public module names, shortest first), else the spec's file."""
    import sys

    from ..spec._declared import kernels_in

    def resolves(mod) -> bool:
        value = getattr(mod, kernel.name, None)
        if isinstance(value, Kernel):
            return value is kernel
        found = [k for k in kernels_in(mod) if k.name == kernel.name]
        return bool(found) and found[0] is kernel

    home = getattr(kernel.body, "__module__", "") or ""
    mods = [(name, m) for name, m in list(sys.modules.items()) if m is not None]
    holders = [
        (name, m)
        for name, m in mods
        if name == home
        or any(v is kernel for v in list(vars(m).values()))
        or any(v is kernel for v in (getattr(m, "VARIANTS", ()) or ()))
    ]
    holders.sort(
        key=lambda nm: (nm[0] != home, any(p.startswith("_") for p in nm[0].split(".")), len(nm[0]))
    )
    for name, mod in holders:
        if not resolves(mod):
            continue
        if not name.startswith("tileproof_user_") and name != "__main__":
            return f"{name}:{kernel.name}"
        if getattr(mod, "__file__", None):
            return f"{_rel(mod.__file__)}:{kernel.name}"
    return f"{_rel(kernel.location.file)}:{kernel.name}"


def _rel(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if rel.startswith(".." + os.sep + "..") else rel


def rerun_command(kernel: Kernel, sizes: dict, seed: int) -> str:
    """One command that runs exactly this numeric point again (same sizes, same inputs):
    ``sizes`` may hold pinned index values too (``"seq_lens[0]": 0``)."""
    import shlex

    cmd = ["tileproof", "check", rerun_target(kernel)]
    if sizes:
        cmd += ["--sizes", ",".join(f"{k}={v}" for k, v in sizes.items())]
    cmd += ["--seed", str(seed)]
    return " ".join(shlex.quote(c) for c in cmd)


def _numeric(
    kernel: Kernel,
    config,
    extra: list[dict],
    options: dict | None,
    model=None,
    numeric_cache=None,
    cached_only=False,
) -> tuple[NumericResult, bool]:
    """The numeric result and whether it came from ``numeric_cache``."""
    from .numeric import check_numeric

    kw: dict = {"extra_sizes": extra}
    if config is not None:
        # project tolerances are defaults: a kernel's own numeric={"tolerances": ...} wins
        tol = {**config.tolerances, **dict(kernel.numeric.get("tolerances") or {})}
        kw.update(budget_s=config.numeric_budget_s, tolerances=tol or None)
        if config.devices is not None:
            kw["devices"] = config.devices
    kw.update(options or {})
    on_point = kw.pop("on_point", None)  # progress only: not part of what is computed
    key = None
    if numeric_cache is not None and model is not None:
        key = numeric_cache.key(kernel, model, kw)
        hit = numeric_cache.get(key)
        if hit is not None:
            return hit, True
    if cached_only:
        raise _Miss
    if on_point is not None:
        kw["on_point"] = on_point
    res = _run_numeric(kernel, check_numeric, kw)
    if key is not None:
        numeric_cache.put(key, res)
    return res, False


def _run_numeric(kernel: Kernel, check_numeric, kw: dict) -> NumericResult:
    try:
        return check_numeric(kernel, **kw)
    except LocatedError as e:  # the run could not be set up: nothing was compared
        return NumericResult("error", message=str(e))
    except SystemExit as e:
        return NumericResult("error", message=f"the numeric run raised SystemExit({e.code!r})")
    except Exception as e:
        if os.environ.get("TILEPROOF_DEBUG"):
            raise
        return NumericResult("error", message=internal_error(kernel, e))


def verify_many(kernels: Iterable[Kernel], **kw) -> Report:
    return Report([verify_kernel(k, **kw) for k in kernels])


def verify(kernel: Kernel | Iterable[Kernel], **kw) -> Report:
    """Verify a kernel (or several) and return the :class:`Report`."""
    if isinstance(kernel, Kernel):
        return Report([verify_kernel(kernel, **kw)])
    return verify_many(kernel, **kw)
