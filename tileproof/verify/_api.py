"""``tileproof.verify(kernel)``: lower, prove the static obligations, optionally run numerics."""

from __future__ import annotations

import time
from collections.abc import Iterable

from ..lowering import lower
from ..spec._errors import SpecError
from ..spec._kernel import Kernel
from ._report import KernelReport, NumericResult, Report

__all__ = ["verify", "verify_kernel", "verify_many"]


def verify_kernel(
    kernel: Kernel,
    *,
    numeric: bool = False,
    timeout_ms: int | None = None,
    numeric_options: dict | None = None,
) -> KernelReport:
    """Verify one kernel; spec errors become the report's ``error`` instead of escaping."""
    rep = KernelReport(name=kernel.name, source=str(kernel.location))
    t0 = time.perf_counter()
    try:
        model = lower(kernel)
    except SpecError as e:
        rep.error = str(e)
        return rep
    rep.lowering_seconds = time.perf_counter() - t0
    from .static import check_static

    t1 = time.perf_counter()
    kwargs = {} if timeout_ms is None else {"timeout_ms": timeout_ms}
    rep.obligations = check_static(model, **kwargs)
    rep.solver_seconds = time.perf_counter() - t1
    if numeric:
        from .numeric import check_numeric

        extra = [
            o.counterexample for o in rep.obligations if o.status == "violated" and o.counterexample
        ]
        try:
            rep.numeric = check_numeric(kernel, extra_sizes=extra, **(numeric_options or {}))
        except SpecError as e:
            rep.numeric = NumericResult("skipped", message=str(e))
    return rep


def verify_many(kernels: Iterable[Kernel], **kw) -> Report:
    return Report([verify_kernel(k, **kw) for k in kernels])


def verify(kernel: Kernel | Iterable[Kernel], **kw) -> Report:
    """Verify a kernel (or several) and return the :class:`Report`."""
    if isinstance(kernel, Kernel):
        return Report([verify_kernel(kernel, **kw)])
    return verify_many(kernel, **kw)
