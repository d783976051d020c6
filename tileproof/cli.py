"""The ``tileproof`` command: ``check``, ``lower``, ``show``, ``shapes prove|bounds``.

Exit codes (a stable contract): 0 everything proved (and numerics matched
where run); 1 something violated, unknown or refuted; 2 usage or spec error.
Errors are one paragraph naming the file and line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(
        self, message: str
    ):  # argparse exits 2 on usage errors already; keep its message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("--jobs must be 0 (one per CPU) or more")
    return n or (os.cpu_count() or 1)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of devices, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("--devices must be 1 or more")
    return n


def _build() -> argparse.ArgumentParser:
    p = _Parser(prog="tileproof", description=__doc__.splitlines()[0])
    from . import __version__

    p.add_argument("--version", action="version", version=f"tileproof {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser(
        "check",
        help="verify kernel specs (the bundled catalog when no target is given)",
        description="Verify every kernel spec found in the targets: with none, the "
        "[tool.tileproof] paths of pyproject.toml, else the bundled catalog. "
        ".py files that never mention tileproof are skipped unimported.",
    )
    c.add_argument(
        "targets",
        nargs="*",
        metavar="PATH_OR_MODULE",
        help="files, folders, modules, or one kernel as FILE:KERNEL or MODULE:KERNEL",
    )
    c.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    c.add_argument(
        "--static", action="store_true", help="z3 obligations only, no numeric run (pre-commit)"
    )
    c.add_argument(
        "--numeric", action="store_true", help="run numerics (the default unless --static)"
    )
    c.add_argument("--timeout-ms", type=int, default=None, help="solver limit per kernel")
    c.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=None,
        metavar="N",
        help="verify kernels in N processes (0: one per CPU)",
    )
    c.add_argument(
        "--no-cache", action="store_true", help="prove again instead of reading .tileproof_cache"
    )
    c.add_argument("--config", metavar="PYPROJECT", help="read [tool.tileproof] from this file")
    c.add_argument(
        "--sizes",
        action="append",
        default=[],
        metavar="B=1,S=48",
        help="run numerics at exactly these sizes (with --seed: a mismatch's rerun command)",
    )
    c.add_argument(
        "--seed", type=int, default=None, help="seed of the numeric inputs (of the first point)"
    )
    c.add_argument(
        "--devices",
        type=_positive,
        default=None,
        metavar="N",
        help="run ranked kernels' numerics with ranks on the first N devices",
    )
    c.add_argument(
        "-q", "--quiet", action="store_true", help="print findings only, no table or summary"
    )
    c.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list proved obligations too, and the settings and cache used",
    )

    lo = sub.add_parser("lower", help="print the schedule model of MODULE:KERNEL")
    lo.add_argument("target", metavar="MODULE:KERNEL")

    sh = sub.add_parser(
        "show",
        help="draw pictures of MODULE:KERNEL's schedule at concrete sizes",
        description="Run the schedule model at concrete sizes and draw it (PNG).",
    )
    sh.add_argument("target", metavar="MODULE:KERNEL")
    sh.add_argument(
        "--sizes",
        action="append",
        default=[],
        metavar="B=1,S=48",
        help="concrete sizes (defaults: the kernel's defaults=...)",
    )
    sh.add_argument(
        "--coverage", metavar="PNG", help="heat map of stores per output element (0, 1, 2+)"
    )
    sh.add_argument(
        "--ring", metavar="PNG", help="rank x step chart of the chunks received and folded"
    )
    sh.add_argument("--timeline", metavar="PNG", help="phases, barriers and lanes per program")
    sh.add_argument(
        "--tensor",
        action="append",
        default=None,
        metavar="NAME",
        help="tensor(s) for --coverage (default: every output and scratch)",
    )
    sh.add_argument(
        "--violation",
        nargs="?",
        const="*",
        default=None,
        metavar="KIND",
        help="prove the kernel first and draw the first violated obligation (of KIND): "
        "its counterexample's sizes, its element marked",
    )
    sh.add_argument("--mark", metavar="I,J,...", help="mark this element in --coverage")
    sh.add_argument("--seed", type=int, default=0, help="seed for sampled index-tensor contents")
    sh.add_argument(
        "--programs",
        type=int,
        default=64,
        metavar="N",
        help="draw the first N programs in --timeline (default 64)",
    )

    s = sub.add_parser("shapes", help="decide shape-arithmetic facts")
    ssub = s.add_subparsers(dest="shapes_command", required=True, parser_class=_Parser)
    for name, what in (("prove", "QUERY"), ("bounds", "EXPR")):
        q = ssub.add_parser(name)
        q.add_argument("query", metavar=what)
        q.add_argument("--assume", action="append", default=[], metavar="C")
        q.add_argument("--format", choices=("text", "json"), default="text")
    return p


# ------------------------------------------------------------------------------ shapes


def _shapes(args) -> int:
    from . import shapes

    try:
        if args.shapes_command == "prove":
            d = shapes.prove(args.query, assume=tuple(args.assume))
            if args.format == "json":
                print(json.dumps({"verdict": d.verdict, "counterexample": d.counterexample}))
            else:
                line = d.verdict
                if d.counterexample:
                    line += ": " + ", ".join(f"{k}={v}" for k, v in d.counterexample.items())
                if d.reason and d.verdict != "proved":
                    line += f" ({d.reason})"
                print(line)
            return EXIT_OK if d.verdict == "proved" else EXIT_FAIL
        lo, hi = shapes.bounds(args.query, assume=tuple(args.assume))
        if args.format == "json":
            print(json.dumps({"lower": lo, "upper": hi}))
        else:
            print(f"[{'-inf' if lo is None else lo}, {'+inf' if hi is None else hi}]")
        return EXIT_OK
    except shapes.ShapeError as e:
        print(f"tileproof: error: {e}", file=sys.stderr)
        return EXIT_USAGE


# ------------------------------------------------------------------------------- check


class _Progress:
    """Progress on stderr: a rich bar on a terminal (once a run has taken a second), else one
    line per kernel (``lines``); a numeric run still going after a few seconds says once
    that ``--static`` proves without running numerics."""

    NOTE_AFTER_S = 3.0

    def __init__(
        self,
        total: int,
        enabled: bool = False,
        *,
        bar: bool | None = None,
        lines: bool = False,
        numeric: bool = False,
    ):
        bar = enabled if bar is None else bar  # ``enabled``: the bar alone (older callers)
        self.total, self.done, self.bar = total, 0, None
        self.lines, self.numeric = lines, numeric
        self.lock = threading.Lock()
        self.timer = threading.Timer(1.0, self._show) if bar else None
        if self.timer:
            self.timer.daemon = True
            self.timer.start()
        self.note = (
            threading.Timer(self.NOTE_AFTER_S, self._note) if numeric and (bar or lines) else None
        )
        if self.note:
            self.note.daemon = True
            self.note.start()

    def _note(self) -> None:
        with self.lock:
            if self.note is None:
                return
            msg = (
                f"tileproof: running numerics for {self.total} kernel(s): compiling and running "
                "each at several sizes takes a while the first time (later runs are answered "
                "from .tileproof_cache); `tileproof check --static` proves without running them"
            )
            if self.bar is not None:
                self.bar.console.print(msg, markup=False, highlight=False)
            else:
                print(msg, file=sys.stderr, flush=True)

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with self.lock:
            if self.timer is None:
                return
            self.bar = Progress(
                TextColumn("verifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task("", total=self.total, completed=self.done)
            self.bar.start()

    def advance(self, report) -> None:
        with self.lock:
            self.done += 1
            if self.bar is not None:
                self.bar.update(self.task, completed=self.done, description=report.name)
            if self.lines:
                print(_kernel_line(report, self.done, self.total), file=sys.stderr, flush=True)

    def close(self) -> None:
        with self.lock:
            for t in (self.timer, self.note):
                if t is not None:
                    t.cancel()
            self.timer = self.note = None
            if self.bar is not None:
                self.bar.stop()
                self.bar = None


def _kernel_line(k, done: int, total: int) -> str:
    """``tileproof: [3/12] paged_decode: ok (lowering 0.1s, static 0.4s, numeric 6.0s)``."""
    verdict = "error" if k.error else ("ok" if k.ok else "FAIL")
    t = k.timings()
    parts = [
        f"lowering {t['lowering_s']:.1f}s",
        f"static {t['static_s']:.1f}s" + (" (cached)" if k.cached else ""),
    ]
    if k.numeric is not None:
        num = f"numeric {k.numeric.status} {t['numeric_s']:.1f}s"
        parts.append(num + (" (cached)" if k.numeric_cached else ""))
    return f"tileproof: [{done}/{total}] {k.name}: {verdict} ({', '.join(parts)})"


def _check(args) -> int:
    from dataclasses import replace

    from .project import choose_jobs, find_kernels, load_config, verify_refs

    config = load_config(path=args.config)
    over = {}
    if args.timeout_ms is not None:
        over["timeout_ms"] = args.timeout_ms
    if args.no_cache:
        over["cache"] = False
    if args.devices is not None:
        over["devices"] = args.devices
    config = replace(config, **over)
    sizes = _parse_point(args.sizes)
    if isinstance(sizes, str):
        return _usage(
            f"--sizes: cannot read {sizes!r}.",
            "Write sizes as NAME=INT, e.g. --sizes B=1,S=48 (pinned index values as lens[0]=5).",
        )
    if (sizes or args.seed is not None) and args.static:
        return _usage("--sizes and --seed choose numeric inputs;", "drop --static to run them.")
    if not args.static:
        # before JAX's first look at the device (``choose_jobs`` asks for the backend): a
        # GPU client grabs 75% of the memory at start-up unless told otherwise, which would
        # starve the worker processes that may follow, so every process allocates as it goes
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if config.devices is not None and not args.static:
        import jax

        have = len(jax.devices())
        if have < config.devices:
            return _usage(
                f"--devices {config.devices}: JAX sees only {have} {jax.default_backend()} "
                f"device(s).",
                "Ask for at most that many, or, on a CPU, start with "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={config.devices}.",
            )
    numeric_options: dict = {}
    if sizes:
        numeric_options.update(sizes=sizes, only=True)
    if args.seed is not None:
        numeric_options["seed"] = args.seed
    jobs = choose_jobs(args.jobs, config, static=args.static)
    if jobs > 1:
        # the workers (spawned: they inherit the environment) say so when a point finds the
        # device full because the others hold part of it
        os.environ["TILEPROOF_SHARED_DEVICE"] = str(jobs)
    targets = list(args.targets) or [config.resolve(p) for p in config.paths] or None
    skipped: list[tuple[str, str]] = []
    empty: list[tuple[str, str]] = []
    items = find_kernels(targets, skipped=skipped, empty=empty)
    if args.verbose:
        where = config.source or "no pyproject.toml with [tool.tileproof]: defaults"
        print(
            f"tileproof: settings from {where}; cache "
            f"{config.cache_path if config.cache else 'off'}; {jobs} job(s)",
            file=sys.stderr,
        )
        for path, why in skipped:
            print(f"tileproof: skipped {path}: {why}", file=sys.stderr)
    if empty:  # a path that verifies nothing must not pass: a typo, or specs not found
        given = "given on the command line" if args.targets else f"in paths of {config.source}"
        messages = [
            f"tileproof: error: {target} ({given}) holds no kernel spec: {why}. "
            "Pass files or folders that declare kernels with @tileproof.spec.kernel"
            + ("" if args.verbose else " (--verbose lists the files passed over)")
            + "."
            for target, why in empty
        ]
        for m in messages:
            print(m, file=sys.stderr)
        _print_failed_run(args.format, messages)
        return EXIT_USAGE
    if not items:
        print("tileproof: error: no kernel specs found.", file=sys.stderr)
        return EXIT_USAGE
    numeric = not args.static
    tty = sys.stderr.isatty()
    progress = _Progress(
        len(items),
        bar=numeric and not args.quiet and tty,
        lines=not tty and ((numeric and not args.quiet) or args.verbose),
        numeric=numeric and not args.quiet,
    )
    try:
        reports, hits = verify_refs(
            items,
            config,
            numeric=numeric,
            jobs=jobs,
            on_done=progress.advance,
            points=args.verbose and numeric,
            numeric_options=numeric_options or None,
            compile_cache=True,
        )
    finally:
        progress.close()
    from .report import Report, render

    report = Report(reports)
    text = render(
        report,
        args.format,
        verbose=args.verbose,
        quiet=args.quiet,
        color=args.format == "text" and sys.stdout.isatty() and not os.environ.get("NO_COLOR"),
    )
    if text:
        print(text)
    if args.verbose and config.cache:
        print(f"tileproof: {hits} of {len(items)} kernel(s) proved from the cache", file=sys.stderr)
    if any(k.error for k in report.kernels):
        return EXIT_USAGE
    return EXIT_OK if report.ok else EXIT_FAIL


def _print_failed_run(fmt: str, messages: list[str]) -> None:
    """For machine-read formats, a document that says the run failed (the errors are on
    stderr too): JSON with ``ok: false``, SARIF with an unsuccessful invocation."""
    from .report import Report

    if fmt == "json":
        doc = Report([]).to_json()
        doc["summary"].update(ok=False, errors=len(messages), messages=messages)
        print(json.dumps(doc, indent=2))
    elif fmt == "sarif":
        from .report import to_sarif

        print(json.dumps(to_sarif(Report([]), failures=messages), indent=2))


# ------------------------------------------------------------------------- lower, show


def _lower(args) -> int:
    from .lowering import lower
    from .project import find_kernel

    print(lower(find_kernel(args.target)).listing())
    return EXIT_OK


def _usage(message: str, hint: str) -> int:
    print(f"tileproof: error: {message} {hint}".rstrip(), file=sys.stderr)
    return EXIT_USAGE


def _parse_sizes(items: list[str]) -> dict[str, int] | str:
    sizes: dict[str, int] = {}
    for item in items:
        for part in item.replace(" ", ",").split(","):
            if not part:
                continue
            name, eq, value = part.partition("=")
            try:
                if not eq or not name.isidentifier():
                    raise ValueError
                sizes[name] = int(value)
            except ValueError:
                return part
    return sizes


def _parse_point(items: list[str]) -> dict[str, int] | str:
    """``--sizes`` of ``check``: ``NAME=INT`` and pinned index values ``NAME[i,j]=INT``
    (what a rerun command carries), separated by commas or spaces."""
    import re

    point: dict[str, int] = {}
    item = re.compile(r"\s*([A-Za-z_]\w*(?:\[\s*\d+(?:\s*,\s*\d+)*\s*\])?)\s*=\s*(-?\d+)\s*")
    for text in items:
        pos = 0
        while pos < len(text):
            m = item.match(text, pos)
            if not m:
                return text[pos:].split(",")[0] or text
            point[m[1].replace(" ", "")] = int(m[2])
            pos = m.end()
            if pos < len(text) and text[pos] in ", ":
                pos += 1
    return point


def _show(args) -> int:
    outputs = [
        (what, path)
        for what, path in (
            ("coverage", args.coverage),
            ("ring", args.ring),
            ("timeline", args.timeline),
        )
        if path
    ]
    if not outputs:
        return _usage(
            "nothing to draw.", "Pass --coverage, --ring or --timeline with a .png file name."
        )
    sizes = _parse_sizes(args.sizes)
    if isinstance(sizes, str):
        return _usage(
            f"--sizes: cannot read {sizes!r}.", "Write sizes as NAME=INT, e.g. --sizes B=1,S=48."
        )
    mark = None
    if args.mark:
        try:
            mark = (
                args.tensor[0] if args.tensor else None,
                tuple(int(x) for x in args.mark.split(",")),
                "marked element",
            )
        except ValueError:
            return _usage(
                f"--mark: cannot read {args.mark!r}.", "Give the element as I,J,... integers."
            )
    from .lowering import lower
    from .model import RunError
    from .project import find_kernel
    from .spec._errors import SpecError

    kernel = find_kernel(args.target)
    try:
        return _draw(args, kernel, lower(kernel), sizes, mark, outputs)
    except RunError as e:  # a spec error (exit 2), at the kernel when the run has no line
        where = e.location if e.location is not None and e.location.line else kernel.location
        raise SpecError(e.message, where, e.hint) from None


def _draw(args, kernel, model, sizes, mark, outputs) -> int:
    from . import model as interp
    from . import show

    if args.violation is not None:
        from .verify.static import check_static

        wanted = [
            o
            for o in check_static(model)
            if o.status == "violated" and args.violation in ("*", o.kind)
        ]
        if not wanted:
            what = "" if args.violation == "*" else f" {args.violation}"
            print(
                f"tileproof: {kernel.name} has no violated{what} obligation; "
                "drawing without a mark",
                file=sys.stderr,
            )
        else:
            ob = wanted[0]
            print(f"{ob.location}: {ob.kind}: {ob.message}", file=sys.stderr)
            ce_sizes = {k: int(v) for k, v in (ob.counterexample or {}).items() if k in model.sizes}
            replaced = sorted(k for k in ce_sizes if k in sizes and sizes[k] != ce_sizes[k])
            if replaced:  # the marked element is the counterexample's at its own sizes
                print(
                    f"tileproof: drawing at the counterexample's "
                    f"{', '.join(f'{k}={ce_sizes[k]}' for k in replaced)}",
                    file=sys.stderr,
                )
            sizes.update(ce_sizes)
            if mark is None:
                mark = show.element_of(ob, list(model.tensors))
    sizes = interp.resolve_sizes(model, sizes, kernel.defaults, kernel.location)
    schedule = interp.run(model, sizes, seed=args.seed, derive=kernel.numeric.get("derive"))
    for node in {id(n): n for n in schedule.unsupported}.values():  # a partial model says so
        print(
            f"tileproof: warning: {node.loc}: unsupported construct: {node.what}; the "
            "pictures leave out what it governs",
            file=sys.stderr,
        )
    for what, path in outputs:
        try:
            if what == "coverage":
                info = show.coverage(schedule, path, tensors=args.tensor, mark=mark)
            elif what == "ring":
                info = show.ring(schedule, path)
            else:
                info = show.timeline(schedule, path, max_programs=max(args.programs, 1))
        except OSError as e:
            return _usage(
                f"cannot write {path}: {e.strerror or e}.", "Choose a writable file name."
            )
        print(f"wrote {path} ({what}: {_describe(info)})")
    return EXIT_OK


def _describe(info) -> str:
    if isinstance(info, list):
        return ", ".join(info)
    parts = []
    for k, v in info.items():
        parts.append(f"{k}={len(v) if isinstance(v, (list, dict)) else v}")
    return ", ".join(parts)


# -------------------------------------------------------------------------------- main


def _internal(e: BaseException) -> str:
    tb = e.__traceback__
    where = ""
    while tb is not None:
        where = f" (at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno})"
        tb = tb.tb_next
    return (
        f"tileproof: internal error: {type(e).__name__}: {e}{where}. This is a bug in tileproof, "
        "not in your kernel: rerun with TILEPROOF_DEBUG=1 to see the traceback, and report it."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _build().parse_args(argv)
    run = {"shapes": _shapes, "lower": _lower, "show": _show, "check": _check}[args.command]
    try:
        return run(args)
    except KeyboardInterrupt:
        print("tileproof: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tileproof check | head`: the reader left; say nothing more
        try:  # the documented recipe: point stdout at devnull so the final flush is silent
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except Exception:  # stdout is no real file (a test's stand-in): nothing to silence
            pass
        return EXIT_FAIL
    except Exception as e:
        errors = sys.modules.get("tileproof.spec._errors")
        # a spec, setting or executor-setup error (SpecError, ConfigError, NumericUnsupported)
        if errors is not None and isinstance(e, errors.LocatedError):
            print(str(e), file=sys.stderr)
            return EXIT_USAGE
        if os.environ.get("TILEPROOF_DEBUG"):
            raise
        print(_internal(e), file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
