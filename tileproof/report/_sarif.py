"""SARIF 2.1.0 for code scanning: one rule per finding code, one result per finding that
fails a run (violated, unknown, unsupported, a kernel error, a numeric mismatch or failed
run), each at its source line.  Rule ids stay ``tileproof/<kind>`` (alerts are keyed by
them); each rule and result carries its code (``properties.code``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

from .._location import UNKNOWN
from ._codes import RULE_TEXT, code_of
from ._findings import FINDING_KINDS, Report
from ._status import Status, legacy

__all__ = ["to_sarif"]


def _uri(file: str, root: Path) -> tuple[str, bool]:
    """A URI for ``file``: relative to ``root`` (and %SRCROOT%) when inside it, else ``file://``."""
    p = Path(file)
    if not p.is_absolute():
        p = (root / p).resolve()
    try:
        return quote(p.relative_to(root).as_posix()), True
    except ValueError:
        return p.as_uri() if p.is_absolute() else quote(file), False


def _split_source(source: str) -> tuple[str, int]:
    file, _, line = source.rpartition(":")
    return (file, int(line)) if file and line.isdigit() else (source, 1)


def to_sarif(
    report: Report, *, root: str | os.PathLike | None = None, failures: list[str] | None = None
) -> dict:
    """SARIF 2.1.0: one result per violated obligation (error) and per unknown one (warning),
    per spec error and per numeric mismatch or failed numeric run (error), each at its source
    location.  ``failures`` (errors of the run itself, such as a path that holds no spec) make
    the invocation unsuccessful, each as a tool notification; so does a kernel that could not
    be verified (a spec or internal error)."""
    from .. import __version__

    base = Path(root or os.getcwd()).resolve()
    ids = list(FINDING_KINDS)
    rules = [  # one rule per code
        {
            "id": f"tileproof/{k}",
            "name": k,
            "shortDescription": {"text": RULE_TEXT[k]},
            "defaultConfiguration": {"level": "error"},
            "properties": {"code": code_of(k)},
        }
        for k in ids
    ]
    results = []

    def result(
        kind: str,
        level: str,
        text: str,
        file: str,
        line: int,
        kernel: str,
        props: dict | None = None,
    ) -> None:
        uri, relative = _uri(file, base)
        art = {"uri": uri, **({"uriBaseId": "%SRCROOT%"} if relative else {})}
        fp = hashlib.sha256(f"{kernel}\0{kind}\0{text}".encode()).hexdigest()[:32]
        results.append(
            {
                "ruleId": f"tileproof/{kind}",
                "ruleIndex": ids.index(kind),
                "level": level,
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": art,
                            "region": {"startLine": max(1, line)},
                        }
                    }
                ],
                "partialFingerprints": {"tileproofFinding/v1": fp},
                "properties": {"kernel": kernel, "code": code_of(kind), **(props or {})},
            }
        )

    for k in report.kernels:
        kfile, kline = _split_source(k.source)
        for f in k.findings():  # the kernel's error, its obligations, its numeric result
            if f.kind == "spec":
                result("spec", "error", f.message, kfile, kline, k.name)
                continue
            if f.kind == "numeric":
                if f.status in (Status.MISMATCH, Status.ERROR):
                    what = "mismatch" if f.status == Status.MISMATCH else "run failed"
                    result(
                        "numeric",
                        "error",
                        f"{k.name}: numeric {what}: {f.message or 'see the report'}",
                        kfile,
                        kline,
                        k.name,
                        {"sizes": f.detail["sizes"]},
                    )
                continue
            if f.status not in (Status.VIOLATED, Status.UNKNOWN):
                continue
            has_loc = f.location is not UNKNOWN and f.location.line
            file, line = (f.location.file, f.location.line) if has_loc else (kfile, kline)
            text = f"{k.name}: {f.message}"
            if f.counterexample:
                text += (
                    " [counterexample: "
                    + ", ".join(f"{a}={b}" for a, b in f.counterexample.items())
                    + "]"
                )
            elif f.status == Status.UNKNOWN and f.reason:
                text += f" (unknown: {f.reason})"
            props = {
                "status": legacy(f.status),
                "outcome": str(f.status),
                **(
                    {"counterexample": {str(a): b for a, b in f.counterexample.items()}}
                    if f.counterexample
                    else {}
                ),
            }
            # an unsupported construct is no inconclusive proof but a model that is not exact
            level = "error" if f.status == Status.VIOLATED or f.kind == "unsupported" else "warning"
            result(f.kind, level, text, file, line, k.name, props)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "tileproof",
                        "version": __version__,
                        "informationUri": "https://pypi.org/project/tileproof/",
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri() + "/"}},
                "invocations": [
                    {
                        "executionSuccessful": not failures
                        and not any(k.error for k in report.kernels),
                        **(
                            {
                                "toolExecutionNotifications": [
                                    {"level": "error", "message": {"text": m}} for m in failures
                                ]
                            }
                            if failures
                            else {}
                        ),
                    }
                ],
                "results": results,
            }
        ],
    }
