"""The proof cache: a kernel's static results on disk, so an unchanged kernel is not proved again.

The key hashes the lowered model, the solver options and all of tileproof's
code (with the z3 and JAX versions), so an edit anywhere in tileproof never
meets a stale verdict.  Results with an ``unknown`` that ran out of time or
resources are not kept (the next run tries again); other unknowns (an
unsupported construct, say) are as final as proofs.  The folder is the
settings' :attr:`~._settings.Config.cache_path` (``TILEPROOF_CACHE_DIR``
overrides it: benchmarks and CI point it at a scratch folder); the numeric
result cache and JAX's compilation cache live in it too (:mod:`._numcache`),
and share :func:`_canon` and :func:`_code_fingerprint` for their keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import fields, is_dataclass
from pathlib import Path

from ..report import CexKey, Obligation
from ..report._keys import key_of
from ..spec._errors import UNKNOWN, Location

__all__ = ["ProofCache"]

_SCHEMA = 2  # bump when the cached JSON changes shape (2: counterexample keys with their roles)


def _canon(obj, seen: set[int] | None = None):
    """A JSON-able, deterministic image of a model (expressions by their structural key)."""
    seen = set() if seen is None else seen
    if obj is None or isinstance(obj, (bool, int, str, float)):
        return obj
    key = getattr(obj, "_key", None)
    if key is not None and type(obj).__module__.startswith("tileproof.shapes"):
        return ["X", repr(key)]
    if isinstance(obj, Location):
        return ["L", obj.file, obj.line]
    if isinstance(obj, (list, tuple)):
        return [_canon(x, seen) for x in obj]
    if isinstance(obj, dict):
        return [
            "D",
            sorted(([repr(k), _canon(v, seen)] for k, v in obj.items()), key=lambda kv: kv[0]),
        ]
    if isinstance(obj, (set, frozenset)):
        return ["S", sorted(repr(x) for x in obj)]
    if is_dataclass(obj) and not isinstance(obj, type):
        if id(obj) in seen:
            return ["cycle"]
        seen.add(id(obj))
        out = [
            type(obj).__name__,
            [[f.name, _canon(getattr(obj, f.name), seen)] for f in fields(obj)],
        ]
        seen.discard(id(obj))
        return out
    return ["R", type(obj).__name__, repr(obj)]  # an address in a repr only costs a cache miss


_CODE_HASH: str | None = None


def _code_fingerprint() -> str:
    """Hash of all the code that can change a verdict: every module of the ``tileproof``
    package (spec, lowering, shapes, verify, ... -- not a hand-kept list, so an edit anywhere
    misses the cache), with the versions of z3 and JAX (whose tracing the lowering reads)."""
    global _CODE_HASH
    if _CODE_HASH is None:
        from importlib.metadata import PackageNotFoundError, version

        from .. import __version__

        h = hashlib.sha256(f"tileproof {__version__}".encode())
        for dist in ("z3-solver", "jax", "jaxlib"):
            try:
                h.update(f" {dist} {version(dist)}".encode())
            except PackageNotFoundError:
                pass
        pkg = Path(__file__).resolve().parent.parent
        for f in sorted(pkg.rglob("*.py"), key=lambda q: q.relative_to(pkg).as_posix()):
            h.update(b"\0" + f.relative_to(pkg).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


def _ob_to_json(o: Obligation) -> dict:
    detail = {}
    for k, v in (o.detail or {}).items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        detail[k] = v
    return {
        "kind": o.kind,
        "status": o.status,
        "message": o.message,
        "location": [o.location.file, o.location.line],
        # the keys with their roles (``CexKey.to_json``), in order, beside their values
        "counterexample": None
        if o.counterexample is None
        else [[key_of(k).to_json(), v] for k, v in o.counterexample.items()],
        "reason": o.reason,
        "hint": o.hint,
        "seconds": o.seconds,
        "detail": detail,
    }


def _ob_from_json(d: dict) -> Obligation:
    file, line = d["location"]
    loc = UNKNOWN if (file, line) == (UNKNOWN.file, UNKNOWN.line) else Location(file, line)
    ce = d["counterexample"]
    return Obligation(
        d["kind"],
        d["status"],
        d["message"],
        loc,
        None if ce is None else {CexKey.from_json(k): v for k, v in ce},
        d["reason"],
        d["hint"],
        d["seconds"],
        d["detail"],
    )


# unknowns whose reason names a limit may be decided by a calmer or longer run: never cached
_RETRY = re.compile(r"time|budget|cancel|resource|limit|memory|interrupt|undecided", re.I)


class ProofCache:
    """Static results on disk, one small JSON file per (model, options, verifier code)."""

    def __init__(self, directory: str | os.PathLike, enabled: bool = True):
        self.dir = Path(directory)
        self.enabled = enabled

    def key(self, model, options: dict) -> str:
        blob = json.dumps(
            [_SCHEMA, _code_fingerprint(), _canon(options), _canon(model)],
            separators=(",", ":"),
            default=repr,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.dir / f"v{_SCHEMA}" / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[Obligation] | None:
        if not self.enabled:
            return None
        try:
            data = json.loads(self._file(key).read_text())
            return [_ob_from_json(d) for d in data["obligations"]]
        except (OSError, ValueError, KeyError, TypeError, AssertionError):
            return None  # absent or unreadable: prove again

    def put(self, key: str, obligations: list[Obligation]) -> None:
        if not self.enabled or any(
            o.status == "unknown" and _RETRY.search(o.reason or "undecided") for o in obligations
        ):
            return  # undecided for lack of time or resources: the next run tries again
        target = self._file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            ignore = self.dir / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# created by tileproof: the proof cache is local\n*\n")
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"obligations": [_ob_to_json(o) for o in obligations]}))
            os.replace(tmp, target)
        except OSError:
            pass  # a read-only checkout just runs without a cache
