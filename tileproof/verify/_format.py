"""Render a :class:`Report`: compiler-style text, the JSON contract, SARIF 2.1.0."""

from __future__ import annotations

import json

from ._report import KernelReport, Report

__all__ = ["render", "to_sarif", "to_text"]


def _ce_lines(ce: dict[str, int] | None) -> list[str]:
    if not ce:
        return []
    return ["    counterexample: " + ", ".join(f"{k}={v}" for k, v in ce.items())]


def _kernel_text(k: KernelReport, verbose: bool) -> list[str]:
    out: list[str] = []
    if k.error:
        out.append(k.error)
        return out
    for o in k.obligations:
        if o.status == "proved" and not verbose:
            continue
        where = str(o.location) if o.location.line else k.source
        out.append(f"{where}: {o.kind}: {o.status}: {o.message}")
        out.extend(_ce_lines(o.counterexample))
        if o.reason and o.status != "violated":
            out.append(f"    reason: {o.reason}")
        if o.hint:
            out.append(f"    hint: {o.hint}")
    n = k.numeric
    if n is not None and (n.status == "mismatch" or verbose):
        errs = ""
        if n.max_abs_err is not None:
            errs = f" (max abs err {n.max_abs_err:.3g}, max rel err {n.max_rel_err:.3g})"
        out.append(f"{k.source}: numeric: {n.status}{errs}: {n.message or ''}".rstrip(": "))
    return out


def to_text(report: Report, *, verbose: bool = False, quiet: bool = False) -> str:
    lines: list[str] = []
    if not quiet:
        for k in report.kernels:
            lines.extend(_kernel_text(k, verbose))
    if not report.kernels:
        return "No kernel specs found."
    rows = []
    for k in report.kernels:
        counts = {s: sum(1 for o in k.obligations if o.status == s) for s in ("proved", "violated", "unknown", "skipped")}
        num = k.numeric.status if k.numeric else "-"
        verdict = "error" if k.error else ("ok" if k.ok else "FAIL")
        rows.append((k.name, counts, num, f"{k.lowering_seconds + k.solver_seconds:.2f}s", verdict))
    if not quiet:
        if lines:
            lines.append("")
        w = max(len(r[0]) for r in rows)
        lines.append(f"{'kernel':<{w}}  proved violated unknown skipped  numeric   time    verdict")
        for name, c, num, t, verdict in rows:
            lines.append(f"{name:<{w}}  {c['proved']:>6} {c['violated']:>8} {c['unknown']:>7} "
                         f"{c['skipped']:>7}  {num:<9} {t:>6}  {verdict}")
    s = report.summary()
    failed = s["failed_kernels"]
    total_violated = s["obligations"]["violated"]
    if failed:
        lines.append(f"Found {total_violated} violated and {s['obligations']['unknown']} unknown obligations "
                     f"in {failed} kernel{'s' * (failed != 1)} (checked {s['kernels']} kernels)")
    else:
        lines.append(f"Success: {s['obligations']['proved']} obligations proved in {s['kernels']} "
                     f"kernel{'s' * (s['kernels'] != 1)}"
                     + (f"; numerics matched for {s['numeric']['matched']}" if s["numeric"]["matched"] else ""))
    return "\n".join(lines)


def to_sarif(report: Report) -> dict:
    """SARIF 2.1.0: one result per violated or unknown obligation (and per numeric mismatch)."""
    from ._report import KINDS

    rules = [{"id": f"tileproof/{k}", "name": k, "shortDescription": {"text": f"{k} obligation"}} for k in KINDS]
    rules.append({"id": "tileproof/numeric", "name": "numeric",
                  "shortDescription": {"text": "tiled execution matches the reference"}})
    rules.append({"id": "tileproof/spec", "name": "spec", "shortDescription": {"text": "spec error"}})
    results = []

    def loc(file: str, line: int):
        return [{"physicalLocation": {"artifactLocation": {"uri": file},
                                      "region": {"startLine": max(1, line)}}}]

    for k in report.kernels:
        kfile, _, kline = k.source.rpartition(":")
        if k.error:
            results.append({"ruleId": "tileproof/spec", "level": "error", "message": {"text": k.error},
                            "locations": loc(kfile or k.source, int(kline) if kline.isdigit() else 1)})
        for o in k.obligations:
            if o.status not in ("violated", "unknown"):
                continue
            file = o.location.file if o.location.line else kfile
            line = o.location.line or (int(kline) if kline.isdigit() else 1)
            text = f"{k.name}: {o.message}"
            if o.counterexample:
                text += " [counterexample: " + ", ".join(f"{a}={b}" for a, b in o.counterexample.items()) + "]"
            results.append({
                "ruleId": f"tileproof/{o.kind}",
                "level": "error" if o.status == "violated" else "warning",
                "message": {"text": text},
                "locations": loc(file, line),
            })
        if k.numeric is not None and k.numeric.status == "mismatch":
            results.append({"ruleId": "tileproof/numeric", "level": "error",
                            "message": {"text": f"{k.name}: {k.numeric.message}"},
                            "locations": loc(kfile, int(kline) if kline.isdigit() else 1)})
    from .. import __version__

    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "tileproof", "version": __version__,
                                      "informationUri": "https://pypi.org/project/tileproof/",
                                      "rules": rules}},
                  "results": results}],
    }


def render(report: Report, fmt: str, *, verbose: bool = False, quiet: bool = False) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2)
    if fmt == "sarif":
        return json.dumps(to_sarif(report), indent=2)
    return to_text(report, verbose=verbose, quiet=quiet)
