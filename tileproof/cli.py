"""The ``tileproof`` command: ``check``, ``lower``, ``shapes prove|bounds``.

Exit codes (a stable contract): 0 everything proved (and numerics matched
where run); 1 something violated, unknown or refuted; 2 usage or spec error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 on usage errors already; keep its message short
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build() -> argparse.ArgumentParser:
    p = _Parser(prog="tileproof", description=__doc__.splitlines()[0])
    from . import __version__

    p.add_argument("--version", action="version", version=f"tileproof {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("check", help="verify kernel specs (the bundled catalog when no target is given)")
    c.add_argument("targets", nargs="*", metavar="PATH_OR_MODULE")
    c.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    c.add_argument("--static", action="store_true", help="z3 obligations only, no numeric run (pre-commit)")
    c.add_argument("--numeric", action="store_true", help="run numerics (the default unless --static)")
    c.add_argument("--timeout-ms", type=int, default=None, help="solver limit per query")
    c.add_argument("-q", "--quiet", action="store_true")
    c.add_argument("-v", "--verbose", action="store_true", help="list proved obligations too")

    lo = sub.add_parser("lower", help="print the schedule model of MODULE:KERNEL")
    lo.add_argument("target", metavar="MODULE:KERNEL")

    s = sub.add_parser("shapes", help="decide shape-arithmetic facts")
    ssub = s.add_subparsers(dest="shapes_command", required=True, parser_class=_Parser)
    for name, what in (("prove", "QUERY"), ("bounds", "EXPR")):
        q = ssub.add_parser(name)
        q.add_argument("query", metavar=what)
        q.add_argument("--assume", action="append", default=[], metavar="C")
        q.add_argument("--format", choices=("text", "json"), default="text")
    return p


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


def _check(args) -> int:
    from .spec import SpecError
    from .spec._discover import collect
    from .verify import verify_many
    from .verify._format import render

    try:
        if args.targets:
            kernels = collect(args.targets)
        else:
            from . import catalog

            kernels = list(catalog.KERNELS)
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    if not kernels:
        where = " ".join(args.targets) if args.targets else "the bundled catalog"
        msg = f"No kernel specs found in {where}."
        if args.format == "json":
            print(json.dumps({"kernels": [], "summary": {"kernels": 0, "ok": True}}))
        else:
            print(msg)
        return EXIT_OK
    report = verify_many(kernels, numeric=not args.static, timeout_ms=args.timeout_ms)
    print(render(report, args.format, verbose=args.verbose, quiet=args.quiet))
    if any(k.error for k in report.kernels):
        return EXIT_USAGE
    return EXIT_OK if report.ok else EXIT_FAIL


def _lower(args) -> int:
    from .lowering import lower
    from .spec import SpecError
    from .spec._discover import find_kernel

    try:
        print(lower(find_kernel(args.target)).listing())
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _build().parse_args(argv)
    if args.command == "shapes":
        return _shapes(args)
    if args.command == "lower":
        return _lower(args)
    return _check(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
