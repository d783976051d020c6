"""``tileproof.verify(kernel)``: lower, prove the static obligations, optionally run numerics.

:func:`verify_kernel` is the one runner: the CLI, the pytest plugin, the
testing helper and worker processes all call it, with the project's settings
(:class:`~tileproof.verify._config.Config`) and proof cache when they have them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import replace

from ..lowering import lower
from ..spec._errors import SpecError
from ..spec._kernel import Kernel
from ._report import KINDS, KernelReport, NumericResult, Obligation, Report

__all__ = ["verify", "verify_kernel", "verify_many"]


def verify_kernel(
    kernel: Kernel,
    *,
    numeric: bool = False,
    timeout_ms: int | None = None,
    numeric_options: dict | None = None,
    config=None,
    cache=None,
) -> KernelReport:
    """Verify one kernel; spec errors become the report's ``error`` instead of escaping.

    ``config`` applies a project's settings (index width, solver budget, skipped
    kinds with their reasons, numeric budget and tolerances); ``cache`` (a
    :class:`~tileproof.verify._config.ProofCache`) reuses the static results of
    an unchanged lowered model — ``report.cached`` says whether it did.

    Nothing escapes as a pass: a spec error is the report's ``error``; any other exception
    (a bug in tileproof) too, worded as an internal error naming the kernel (re-raised
    with ``TILEPROOF_DEBUG=1``), so one broken kernel fails the run without hiding the others.
    """
    rep = KernelReport(name=kernel.name, source=str(kernel.location))
    try:
        return _verify(rep, kernel, numeric, timeout_ms, numeric_options, config, cache)
    except SpecError as e:
        rep.error = str(e)
    except SystemExit as e:  # the body or the reference (or what they call) exited
        rep.error = (f"{kernel.location}: error: verifying kernel {kernel.name} raised "
                     f"SystemExit({e.code!r}): the body, the reference or something they call "
                     "exited. Kernel code must not call sys.exit().")
    except Exception as e:
        if os.environ.get("TILEPROOF_DEBUG"):
            raise
        rep.error = internal_error(kernel, e)
        rep.internal = True
    return rep


def internal_error(kernel: Kernel, e: BaseException) -> str:
    """One paragraph for an exception that is a bug in tileproof, naming the kernel and where."""
    tb, where = e.__traceback__, ""
    while tb is not None:
        where = f" (at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno})"
        tb = tb.tb_next
    return (f"{kernel.location}: internal error while verifying kernel {kernel.name}: "
            f"{type(e).__name__}: {e}{where}. This is a bug in tileproof, not in your kernel: "
            "rerun with TILEPROOF_DEBUG=1 to see the traceback, and report it.")


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


def _verify(rep, kernel, numeric, timeout_ms, numeric_options, config, cache) -> KernelReport:
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
        Obligation(kind, "skipped", f"{kind} obligations not checked", kernel.location, reason=why,
                   detail={"configured": True})
        for kind, why in skip.items()
    ]
    if numeric:
        extra = [o.counterexample for o in rep.obligations if o.status == "violated" and o.counterexample]
        rep.numeric = _numeric(kernel, config, extra, numeric_options)
    return rep


def _numeric(kernel: Kernel, config, extra: list[dict], options: dict | None) -> NumericResult:
    from .numeric import check_numeric

    kw: dict = {"extra_sizes": extra}
    if config is not None:
        # project tolerances are defaults: a kernel's own numeric={"tolerances": ...} wins
        tol = {**config.tolerances, **dict(kernel.numeric.get("tolerances") or {})}
        kw.update(budget_s=config.numeric_budget_s, tolerances=tol or None)
    kw.update(options or {})
    try:
        return check_numeric(kernel, **kw)
    except SpecError as e:  # the run could not be set up: nothing was compared
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
