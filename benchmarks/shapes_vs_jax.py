"""tileproof.shapes against jax.export's own decision procedure, on JAX's own shape corpus.

Runs every ``prove`` and ``bounds`` case of ``tests/data/jax_shape_cases.json``
through both, in this process, and prints: cases decided by each, wrong
answers of each, median and p99 latency per case, and the latency ratio.

Both sides start from strings, per case and from cold caches:

* tileproof: ``shapes.prove(query, assume)`` / ``shapes.bounds(expr, assume)``
  after ``clear_caches()`` (decisions, prepared assumptions and parses);
* JAX: ``SymbolicScope(assume)``, the symbols from ``symbolic_shape``, the
  query built with Python operators on them as JAX's own tests do (JAX's
  shape parser has no ``//`` or ``%``), then its ``>=``/``==``/... or
  ``_bounds_decision(e, BEST)``.  JAX raising
  ``InconclusiveDimensionOperation`` (or any error) is "not decided", except an
  "Unsatisfiable" error on an inconsistent case, which counts as deciding it.

JAX's dimension variables are always ``>= 1``; tileproof lets ``m >= 0``
declare ``m``'s domain.  The corpus follows JAX, so a case that declares such a
bound gets the explicit ``m >= 1`` JAX implies (see ``jax_semantics``).

Usage: ``python benchmarks/shapes_vs_jax.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "jax_shape_cases.json"
WANT = {
    "always": "proved",
    "never": "refuted",
    "depends": "refuted",
    "inconsistent": "inconsistent",
}


def jax_semantics(case: dict) -> list[str]:
    """The case's assumptions plus ``NAME >= 1`` for names it gives a literal lower bound."""
    from tileproof.shapes import coerce_formula
    from tileproof.shapes._context import lower_bound_decl

    declared = set()
    for a in case["assume"]:
        d = lower_bound_decl(coerce_formula(a))
        if d is not None:
            declared.add(d[0])
    return [*case["assume"], *(f"{s} >= 1" for s in sorted(declared))]


def jax_eval(text: str, scope, names: list[str]):
    """Build the query/expression the way JAX's tests do: Python operators on dimensions.

    A small walk over Python's ``ast`` (no ``eval``); ``max``/``min`` are
    ``core.max_dim``/``core.min_dim``, ``floordiv``/``mod`` JAX's ``//``/``%``.
    """
    import ast

    import jax.export
    from jax import core

    dims = dict(zip(names, jax.export.symbolic_shape(", ".join(names), scope=scope), strict=True))
    binops = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.FloorDiv: lambda a, b: a // b,
        ast.Mod: lambda a, b: a % b,
        ast.Pow: lambda a, b: a**b,
    }
    calls = {
        "max": core.max_dim,
        "min": core.min_dim,
        "floordiv": lambda a, b: a // b,
        "mod": lambda a, b: a % b,
    }
    cmps = {
        ast.Eq: lambda a, b: a == b,
        ast.NotEq: lambda a, b: a != b,
        ast.GtE: lambda a, b: a >= b,
        ast.LtE: lambda a, b: a <= b,
        ast.Gt: lambda a, b: a > b,
        ast.Lt: lambda a, b: a < b,
    }

    def ev(node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return dims[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp):
            return binops[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.Call):
            return calls[node.func.id](*map(ev, node.args))
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return cmps[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        raise ValueError(f"unsupported syntax in {text!r}")

    return ev(ast.parse(text.strip(), mode="eval").body)


def run_jax(case: dict, assume: list[str]):
    """(answer, seconds): answer is proved/refuted/inconsistent/[lo, hi] or 'undecided'."""
    import jax.export
    from jax._src.export import shape_poly

    names = sorted(set(case["symbols"]))
    t0 = time.perf_counter()
    try:
        scope = jax.export.SymbolicScope(assume)
        got = jax_eval(case["query"], scope, names)
        if case["kind"] == "prove":
            answer = "proved" if got else "refuted"
        else:
            lo, hi = shape_poly._bounds_decision(got, shape_poly.BoundsPrecision.BEST)
            answer = [
                None if lo == -float("inf") else int(lo),
                None if hi == float("inf") else int(hi),
            ]
    except Exception as err:
        answer = "inconsistent" if "nsatisfiable" in str(err) else "undecided"
    return answer, time.perf_counter() - t0


def run_tileproof(case: dict, assume: list[str]):
    from tileproof import shapes
    from tileproof.shapes._decide import clear_caches

    clear_caches()
    t0 = time.perf_counter()
    try:
        if case["kind"] == "prove":
            d = shapes.prove(case["query"], assume)
            answer = d.verdict if d.verdict != "unknown" else "undecided"
            detail = d
        else:
            answer = list(shapes.bounds(case["query"], assume))
            detail = None
    except shapes.ShapeError:
        answer, detail = "undecided", None
    return answer, time.perf_counter() - t0, detail


def correct(case: dict, answer, detail, assume: list[str]) -> bool:
    if case["kind"] == "bounds":
        return answer == case["truth"]
    if answer != WANT[case["truth"]]:
        return False
    if answer == "refuted" and detail is not None:  # tileproof: re-check the counterexample
        from tileproof.shapes import coerce_formula

        env = detail.counterexample
        try:
            return all(coerce_formula(a).evaluate(env) for a in assume) and (
                "division by zero" in detail.reason
                or not coerce_formula(case["query"]).evaluate(env)
            )
        except ZeroDivisionError:
            return False
    return True


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timing repetitions per case (min taken)")
    args = ap.parse_args(argv)
    if not CORPUS.exists():
        print(f"corpus not found: {CORPUS}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import jax.export  # noqa: F401  (import cost kept out of the timings)

    from tileproof.shapes import prove

    prove("a >= 1", ["b <= 2"])  # warm up: z3 import and module loading

    cases = [c for c in json.loads(CORPUS.read_text())["cases"] if c["kind"] in ("prove", "bounds")]
    stats = {
        "tileproof": {"decided": 0, "wrong": [], "t": []},
        "jax": {"decided": 0, "wrong": [], "t": []},
    }
    for case in cases:
        assume = jax_semantics(case)
        for name in ("tileproof", "jax"):
            best, answer, detail = float("inf"), None, None
            for _ in range(args.repeat):
                if name == "tileproof":
                    answer, dt, detail = run_tileproof(case, assume)
                else:
                    answer, dt = run_jax(case, assume)
                best = min(best, dt)
            s = stats[name]
            s["t"].append(best)
            if answer != "undecided":
                s["decided"] += 1
                if not correct(case, answer, detail if name == "tileproof" else None, assume):
                    s["wrong"].append(case["id"])

    n = len(cases)
    rows = []
    for name in ("tileproof", "jax"):
        s = stats[name]
        rows.append(
            (
                name,
                f"{s['decided']}/{n}",
                str(len(s["wrong"])),
                f"{statistics.median(s['t']) * 1e3:.3f}",
                f"{pct(s['t'], 0.99) * 1e3:.2f}",
            )
        )
    head = ("", "decided", "wrong", "median ms", "p99 ms")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r) -> str:
        return "  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths)))

    print(f"{n} corpus cases (prove + bounds), best of {args.repeat} cold runs each")
    print(line(head))
    for r in rows:
        print(line(r))
    tm, jm = statistics.median(stats["tileproof"]["t"]), statistics.median(stats["jax"]["t"])
    print(f"median latency ratio tileproof/jax: {tm / jm:.2f}")
    for name in ("tileproof", "jax"):
        if stats[name]["wrong"]:
            print(f"{name} wrong on case ids: {stats[name]['wrong']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
