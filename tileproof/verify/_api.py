"""``tileproof.verify(kernel)``: lower, prove the static obligations, optionally run numerics.

:func:`verify_kernel` is the one runner: the CLI, the pytest plugin, the
testing helper and worker processes all call it, with the project's settings
(:class:`~tileproof.verify._config.Config`) and proof cache when they have them.
"""

from __future__ import annotations

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
    """
    rep = KernelReport(name=kernel.name, source=str(kernel.location))
    if config is not None and config.index_bits is not None and kernel.index_bits == 32:
        kernel = replace(kernel, index_bits=config.index_bits)
    if timeout_ms is None and config is not None:
        timeout_ms = config.timeout_ms
    t0 = time.perf_counter()
    try:
        model = lower(kernel)
    except SpecError as e:
        rep.error = str(e)
        return rep
    rep.lowering_seconds = time.perf_counter() - t0
    skip = dict(config.skip) if config is not None else {}
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
        Obligation(kind, "skipped", f"{kind} obligations not checked", kernel.location, reason=why)
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
    except SpecError as e:
        return NumericResult("skipped", message=str(e))


def verify_many(kernels: Iterable[Kernel], **kw) -> Report:
    return Report([verify_kernel(k, **kw) for k in kernels])


def verify(kernel: Kernel | Iterable[Kernel], **kw) -> Report:
    """Verify a kernel (or several) and return the :class:`Report`."""
    if isinstance(kernel, Kernel):
        return Report([verify_kernel(kernel, **kw)])
    return verify_many(kernel, **kw)
