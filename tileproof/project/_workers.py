"""Many kernels of one run, in this process or in a pool of worker processes.

``tileproof check`` verifies kernels in ``jobs`` processes when asked to (numerics
on a CPU are compile-bound and single-threaded).  A worker gets a picklable
:class:`~._discover.KernelRef` and loads the kernel again from its target (a
kernel object does not travel between processes); what the caches already hold
is answered here first, so a warm run starts no worker at all.  Workers are
spawned, never forked: JAX runs threads, and forking a process that imported it
is unsafe.  A worker that dies or fails outside the checks fails its kernel with
an internal error naming it -- never a pass, and never hiding the other kernels.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..report import KernelReport
from ..spec._errors import LocatedError
from ..spec._kernel import Kernel
from ._discover import KernelRef, _collect
from ._runner import run_kernel, setup_compile_cache
from ._settings import Config

__all__ = ["choose_jobs", "verify_refs"]


def choose_jobs(requested: int | None, config: Config, *, static: bool) -> int:
    """How many processes verify the kernels: ``requested`` (``--jobs``) if given, else the
    settings' ``jobs``; when neither asks for more than one, numeric runs use several:

    * on a CPU up to 4 cores, because they are compile-bound and single-threaded;
    * on an accelerator up to 8 processes sharing it, one per two host cores: there too the
      run is bound by XLA's compiles on the host, not by the device (the catalog's cold check
      on an H200 took 459 s in one process and 235 s in eight).  The workers allocate device
      memory as they go, and a point that then finds the device full is reported as not run,
      naming ``--jobs 1``.

    Not for static runs, where worker start-up would cost more than the proofs."""
    jobs = requested if requested is not None else config.jobs
    if requested is None and config.jobs == 1 and not static:
        cores = os.cpu_count() or 1
        jobs = min(cores, 4) if _cpu_backend() else max(1, min(cores // 2, 8))
    return jobs


def _cpu_backend() -> bool:
    import jax

    return jax.default_backend() == "cpu"


_LOADED: dict = {}


def _load(ref: KernelRef):
    """The kernel ``ref`` names, loaded again in this process (each target once)."""
    if ref.target not in _LOADED:
        _LOADED[ref.target] = _collect(ref.target)
    return _LOADED[ref.target][ref.index]


def _job(
    ref: KernelRef,
    config: Config,
    numeric: bool,
    points: bool = False,
    options: dict | None = None,
    compile_cache: bool = False,
) -> tuple[KernelReport, bool]:
    """One kernel in a worker process: load it again, verify, return a picklable report."""
    import pickle

    if compile_cache:
        setup_compile_cache(config, numeric)
    try:
        rep = run_kernel(
            _load(ref), config, numeric=numeric, points=points, numeric_options=options
        )
    except LocatedError as e:  # a spec or setting error (as the run in process reports it)
        return KernelReport(ref.name, "?", error=str(e)), False
    except Exception as e:  # loading it again failed in an unforeseen way: a bug, reported
        return _worker_failed(ref, e), False
    try:
        pickle.dumps(rep)
    except Exception:  # details a checker left that do not travel between processes
        for o in rep.obligations:
            o.detail = {}
        if rep.numeric is not None:
            rep.numeric.detail = {k: v for k, v in rep.numeric.detail.items() if k == "rerun"}
    return rep, rep.cached


def _worker_failed(ref: KernelRef, e: BaseException) -> KernelReport:
    """The report of a kernel whose verification ended in an exception outside the checks."""
    if os.environ.get("TILEPROOF_DEBUG"):
        raise e
    return KernelReport(
        ref.name,
        ref.target or "tileproof.catalog",
        internal=True,
        error=f"internal error while verifying kernel {ref.name} "
        f"(from {ref.target or 'the catalog'}): {type(e).__name__}: {e}. "
        "This is a bug in tileproof, not in your kernel: rerun with "
        "TILEPROOF_DEBUG=1 to see the traceback, and report it.",
    )


def verify_refs(
    items: list[tuple[KernelRef, Kernel]],
    config: Config,
    *,
    numeric: bool,
    jobs: int = 1,
    on_done: Callable[[KernelReport], None] | None = None,
    points: bool = False,
    numeric_options: dict | None = None,
    compile_cache: bool = False,
) -> tuple[list[KernelReport], int]:
    """Verify kernels (in ``jobs`` processes if more than 1): reports in order, and cache hits.

    ``points``: print a line per numeric size point on stderr; ``numeric_options`` go to
    :func:`~tileproof.verify.numeric.check_numeric` (``sizes``, ``seed``, ``only``);
    ``compile_cache``: keep JAX's compilations in the cache folder (the command does).
    """
    reports: list[KernelReport | None] = [None] * len(items)
    hits = 0
    if compile_cache:
        setup_compile_cache(config, numeric)
    pending = list(range(len(items)))
    if jobs > 1 and len(items) > 1 and config.cache:
        # answer what the caches hold here first: a warm run then starts no worker at all
        # (each would import JAX again and trace the kernels again)
        for i in list(pending):
            rep = run_kernel(
                items[i][1],
                config,
                numeric=numeric,
                numeric_options=numeric_options,
                cached_only=True,
            )
            if rep is not None:
                reports[i] = rep
                hits += rep.cached
                pending.remove(i)
                if on_done:
                    on_done(rep)
    if jobs <= 1 or len(pending) <= 1:
        for i in pending:
            rep = run_kernel(
                items[i][1], config, numeric=numeric, points=points, numeric_options=numeric_options
            )
            reports[i] = rep
            hits += rep.cached
            if on_done:
                on_done(rep)
        return _every_report(reports), hits
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    if numeric:  # longest first: a long kernel started last would end the run alone
        from ..verify.numeric._plan import cost_hint

        pending.sort(key=lambda i: -cost_hint(items[i][1]))

    # spawn: JAX runs threads, so forking a process that imported it is unsafe
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = {
            pool.submit(
                _job, items[i][0], config, numeric, points, numeric_options, compile_cache
            ): i
            for i in pending
        }
        died = []
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                done, hit = fut.result()
            except BrokenProcessPool:  # a worker died (killed for memory, most likely)
                died.append(i)
                continue
            except Exception as e:  # a crash outside the checks: this kernel fails
                done, hit = _worker_failed(items[i][0], e), False
            reports[i] = done
            hits += hit
            if on_done:
                on_done(done)
    # a worker killed while the others held memory (on an H200, fused_decode at the authors'
    # sizes beside seven other kernels) takes the pool down with it: the kernels it left
    # unanswered run again here, one at a time, with the machine to themselves; a second
    # failure is theirs
    for i in sorted(died):
        try:
            rep = run_kernel(
                items[i][1], config, numeric=numeric, points=points, numeric_options=numeric_options
            )
        except Exception as e:
            rep = _worker_failed(items[i][0], e)
        reports[i] = rep
        hits += rep.cached
        if on_done:
            on_done(rep)
    return _every_report(reports), hits


def _every_report(reports: list[KernelReport | None]) -> list[KernelReport]:
    """The reports in order, checked complete: every kernel was answered by the caches, a
    run here or a worker (whose failure becomes a failed report), so none is missing."""
    done = [r for r in reports if r is not None]
    if len(done) != len(reports):
        raise AssertionError(f"{len(reports) - len(done)} kernels have no report")
    return done
