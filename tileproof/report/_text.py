"""Render a :class:`Report` as text: one finding per line as compilers and linters print
them, ending with its stable code like mypy's, the counterexample underneath, then a
summary table and a closing line::

    specs/paged.py:26: bounds: load of k_cache reads past its end (in kernel paged)  [TP102]
        counterexample: B=1, H=16, P=8, b=0, qt=0
        element: [1024, 0]
        hint: mask the last page
    specs/paged.py:5: barrier: skipped: launched cooperatively by our runtime (in kernel
    paged)  [TP106]

    kernel  proved violated unknown skipped  numeric  time   verdict
    paged       14        1       0       1  -        0.21s  FAIL
    Found 1 violated and 0 unknown obligations in 1 kernel (checked 1 kernel)

With ``color=True`` (stdout is a terminal) the table is drawn by rich.
"""

from __future__ import annotations

import io
import json
import os
import re

from .._location import UNKNOWN
from ._codes import code_of
from ._findings import Finding, KernelReport, Report
from ._status import Status, legacy

__all__ = ["kernel_text", "render", "to_text"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _ce_lines(ce: dict | None) -> list[str]:
    """The counterexample: values on one line, the element (``element[k]`` keys) on the next."""
    if not ce:
        return []
    values = {k: v for k, v in ce.items() if not k.startswith("element[")}
    element = [
        v
        for k, v in sorted(
            ((k, v) for k, v in ce.items() if k.startswith("element[")),
            key=lambda kv: int(kv[0][8:-1]) if kv[0][8:-1].isdigit() else 0,
        )
    ]
    out = []
    if values:
        out.append("    counterexample: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    if element:
        out.append(f"    element: [{', '.join(str(v) for v in element)}]")
    return out


def _where(f: Finding, k: KernelReport) -> str:
    """Where a finding points: its own line, else the kernel's source as the kernel gives
    it (a kernel-level finding: the spec error, the numeric result, a skipped kind)."""
    return str(f.location) if f.location is not UNKNOWN and f.location.line else k.source


_MAXIMA_HINT = "Declare maxima for the sizes"


def _size_overflows(k: KernelReport, static: list[Finding]) -> list[Finding]:
    """Violated overflow findings that declaring maxima for sizes answers: the static check
    hints so, and the counterexample names sizes.  Two or more are printed as one."""
    group = [
        o
        for o in static
        if o.kind == "overflow"
        and o.status == Status.VIOLATED
        and o.hint.startswith(_MAXIMA_HINT)
        and any(s in (o.counterexample or {}) for s in k.sizes)
    ]
    return group if len(group) >= 2 else []


def _overflow_summary(k: KernelReport, group: list[Finding], verbose: bool) -> list[str]:
    """One finding for many size-driven overflows: which maxima to declare, and where."""
    names = [s for s in k.sizes if any(s in (o.counterexample or {}) for o in group)]
    least = {
        s: min((o.counterexample or {})[s] for o in group if s in (o.counterexample or {}))
        for s in names
    }
    sites = sorted(
        {_where(o, k) for o in group},
        key=lambda w: (
            w.rpartition(":")[0],
            int(w.rpartition(":")[2] or 0) if w.rpartition(":")[2].isdigit() else 0,
        ),
    )
    widths = sorted(
        {f"int{b}" for o in group for b in re.findall(r"\bint(\d+)\b", o.message)},
        key=lambda w: int(w[3:]),
    )
    past = f"past {' / '.join(widths)} " if widths else ""
    out = [
        f"{k.source}: overflow: {len(group)} offsets and values in kernel {k.name} go {past}when "
        f"sizes are large ({len(sites)} site{'s' * (len(sites) != 1)}): declare maxima for "
        f"{', '.join(names)} (assume=[...])  [{code_of('overflow')}]",
        "    smallest sizes in the counterexamples: "
        + ", ".join(f"{s}={v:,}" for s, v in least.items()),
        f"    sites: {', '.join(sites[:6])}"
        + (f" and {len(sites) - 6} more" if len(sites) > 6 else ""),
        "    hint: declare maxima for these sizes, or compute the offsets in 64 bits "
        "(index_bits=64); --verbose lists each finding",
    ]
    if verbose:
        for o in group:
            out.append(f"    {_where(o, k)}: {o.message}")
    return out


def _named(text: str, k: KernelReport, kind: str | None = None) -> str:
    """Every finding names its kernel (several kernels share a file) and ends with its
    code (``[TP102]``, two spaces before it as mypy prints its codes)."""
    text = text if f"kernel {k.name}" in text else f"{text} (in kernel {k.name})"
    return f"{text}  [{code_of(kind)}]" if kind else text


def _static_lines(k: KernelReport, static: list[Finding], verbose: bool) -> list[str]:
    """The obligations: violated and unknown ones each with its counterexample, reason and
    hint; skipped and duplicate ones once per kind and word; proved ones if verbose."""
    out: list[str] = []
    # not decided here: asked to be skipped, or a duplicate of a finding reported elsewhere;
    # printed once per kind and word
    skipped: dict[tuple[str, Status], tuple[Finding, int]] = {}
    collapsed = _size_overflows(k, static)
    for o in static:
        if o.status in (Status.SKIPPED, Status.DUPLICATE):
            first, n = skipped.get((o.kind, o.status), (o, 0))
            skipped[(o.kind, o.status)] = (first, n + 1)
            continue
        if o.status == Status.PROVED and not verbose:
            continue
        if collapsed and o is collapsed[0]:
            out.extend(_overflow_summary(k, collapsed, verbose))
        if any(o is c for c in collapsed):
            continue
        status = "" if o.status == Status.VIOLATED else f"{o.status}: "
        out.append(_named(f"{_where(o, k)}: {o.kind}: {status}{o.message}", k, o.kind))
        out.extend(_ce_lines(o.counterexample))
        if o.reason and o.status != Status.VIOLATED:
            out.append(f"    reason: {o.reason}")
        if o.hint and o.status != Status.PROVED:
            out.append(f"    hint: {o.hint}")
    for (kind, status), (o, n) in skipped.items():
        count = f" ({_plural(n, 'obligation')})" if n > 1 else ""
        why = o.reason or ("skipped by configuration" if _configured(o) else "no reason given")
        out.append(_named(f"{k.source}: {kind}: {status}{count}: {why}", k, kind))
    return out


def _numeric_lines(k: KernelReport, num: Finding, verbose: bool) -> list[str]:
    """The numeric result (:meth:`KernelReport.findings` puts its errors, sizes and rerun
    point in ``detail``), at the kernel's source as the kernel spells it; a mismatch ends
    with the command that runs that point again."""
    d = num.detail
    errs = ""
    if d.get("max_abs_err") is not None:
        rel = f", max rel err {d['max_rel_err']:.3g}" if d.get("max_rel_err") is not None else ""
        errs = f" (max abs err {d['max_abs_err']:.3g}{rel})"
    line = f"{k.source}: numeric: {num.status}{errs}"
    out = [_named(f"{line}: {num.message}" if num.message else line, k, "numeric")]
    sizes = d.get("sizes") or []
    if sizes and (num.status == Status.MISMATCH or verbose):
        out.append(
            "    sizes: "
            + "; ".join(", ".join(f"{a}={b}" for a, b in s.items()) for s in sizes[:4])
        )
    rerun = d.get("rerun")
    if rerun:
        point = ", ".join(f"{a}={b}" for a, b in rerun["sizes"].items()) or "(no sizes)"
        out.append(f"    failing point: {point}, inputs drawn with seed {rerun['seed']}")
        for name, values in (rerun.get("index") or {}).items():
            out.append(f"    {name} = {values}")
        if rerun.get("command"):
            out.append(f"    rerun: {rerun['command']}")
    return out


def kernel_text(k: KernelReport, *, verbose: bool = False) -> list[str]:
    """One kernel's findings (:meth:`KernelReport.findings`, what JSON and SARIF report
    too): violated and unknown, skipped once per kind, proved if verbose, then the numeric
    result unless it matched (or if verbose).

    Each finding names its kernel; two or more overflow findings that only need maxima for
    sizes are printed as one that names the sizes; a numeric mismatch ends with the command
    that runs exactly that point again.  A kernel that could not be verified prints its
    error alone.
    """
    findings = k.findings()
    errors = [f for f in findings if f.kind == "spec"]
    if errors:
        return [_named(f.message, k, "spec") for f in errors]
    out = _static_lines(k, [f for f in findings if f.kind != "numeric"], verbose)
    if verbose and k.index_bits is not None:
        origin = {
            "kernel": "declared by the kernel",
            "config": "[tool.tileproof] index-bits",
            "default": "the default",
        }.get(k.index_bits_from, k.index_bits_from)
        out.append(_named(f"{k.source}: offsets checked in int{k.index_bits} ({origin})", k))
    for num in (f for f in findings if f.kind == "numeric"):
        if num.status != Status.MATCHED or verbose:  # a skip says why
            out.extend(_numeric_lines(k, num, verbose))
    return out


def _configured(o: Finding) -> bool:
    """Was this obligation skipped because ``[tool.tileproof.skip]`` named its kind?"""
    return o.status == Status.SKIPPED and bool((o.detail or {}).get("configured"))


def _rows(report: Report) -> list[tuple]:
    rows = []
    for k in report.kernels:
        findings = k.findings()
        # the table's columns are the JSON's status words (duplicates count as skipped)
        c = {
            s: sum(
                1 for o in findings if o.kind not in ("spec", "numeric") and legacy(o.status) == s
            )
            for s in ("proved", "violated", "unknown", "skipped")
        }
        num = next((str(f.status) for f in findings if f.kind == "numeric"), "-")
        verdict = "error" if k.error else ("ok" if k.ok else "FAIL")
        secs = k.lowering_seconds + k.solver_seconds + (k.numeric.seconds if k.numeric else 0.0)
        rows.append((k.name, c, num, f"{secs:.2f}s", verdict))
    return rows


def _plain_table(rows: list[tuple]) -> list[str]:
    w = max(6, *(len(r[0]) for r in rows))
    out = [f"{'kernel':<{w}}  proved violated unknown skipped  numeric   time    verdict"]
    for name, c, num, t, verdict in rows:
        out.append(
            f"{name:<{w}}  {c['proved']:>6} {c['violated']:>8} {c['unknown']:>7} "
            f"{c['skipped']:>7}  {num:<9} {t:>6}  {verdict}"
        )
    return out


def _rich_table(rows: list[tuple]) -> str:
    from rich.console import Console
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for col, just in (
        ("kernel", "left"),
        ("proved", "right"),
        ("violated", "right"),
        ("unknown", "right"),
        ("skipped", "right"),
        ("numeric", "left"),
        ("time", "right"),
        ("verdict", "left"),
    ):
        t.add_column(col, justify="left" if just == "left" else "right")
    style = {"ok": "green", "FAIL": "bold red", "error": "bold red"}
    for name, c, num, secs, verdict in rows:
        t.add_row(
            name,
            str(c["proved"]),
            f"[red]{c['violated']}[/]" if c["violated"] else "0",
            f"[yellow]{c['unknown']}[/]" if c["unknown"] else "0",
            str(c["skipped"]),
            f"[red]{num}[/]" if num in ("mismatch", "error") else num,
            secs,
            f"[{style[verdict]}]{verdict}[/]",
        )
    buf = io.StringIO()
    width = int(os.environ.get("COLUMNS", "0") or 0) or 120
    Console(file=buf, force_terminal=True, width=width).print(t)
    return buf.getvalue().rstrip("\n")


def _closing(report: Report) -> str:
    s = report.summary()
    failed = s["failed_kernels"]
    if failed:
        extra = ""
        mism, runs, errs = s["numeric"]["mismatch"], s["numeric"]["error"], s["errors"]
        extra += f", {mism} numeric mismatch{'es' * (mism != 1)}" if mism else ""
        extra += f", {_plural(runs, 'failed numeric run')}" if runs else ""
        extra += f", {_plural(errs, 'kernel error')}" if errs else ""
        return (
            f"Found {s['obligations']['violated']} violated and "
            f"{s['obligations']['unknown']} unknown obligations{extra} in "
            f"{_plural(failed, 'kernel')} (checked {_plural(s['kernels'], 'kernel')})"
        )
    text = (
        f"Success: {s['obligations']['proved']} obligations proved in "
        f"{_plural(s['kernels'], 'kernel')}"
    )
    configured = sum(1 for k in report.kernels for o in k.obligations if _configured(o))
    other = s["obligations"]["skipped"] - configured
    if configured:
        text += f"; {configured} skipped by configuration"
    if other:  # asked for in the spec, or duplicates of findings reported once
        text += f"; {other} skipped (reasons above)"
    if s["numeric"]["matched"]:
        text += f"; numerics matched for {s['numeric']['matched']}"
    return text


def to_text(
    report: Report, *, verbose: bool = False, quiet: bool = False, color: bool = False
) -> str:
    """Findings, then (unless ``quiet``) the summary table and the closing line.

    ``quiet`` prints the findings only — nothing at all when everything passed.
    """
    if not report.kernels:
        return "" if quiet else "No kernel specs found."
    lines: list[str] = []
    for k in report.kernels:
        lines.extend(kernel_text(k, verbose=verbose))
    if quiet:
        return "\n".join(lines)
    if lines:
        lines.append("")
    rows = _rows(report)
    if color:
        lines.append(_rich_table(rows))
    else:
        lines.extend(_plain_table(rows))
    lines.append(_closing(report))
    return "\n".join(lines)


def render(
    report: Report, fmt: str, *, verbose: bool = False, quiet: bool = False, color: bool = False
) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2)
    if fmt == "sarif":
        from ._sarif import to_sarif

        return json.dumps(to_sarif(report), indent=2)
    return to_text(report, verbose=verbose, quiet=quiet, color=color)
