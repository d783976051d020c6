"""How a run is set up: ``[tool.tileproof]`` settings, the proof cache, and the runner using both.

Settings live in the user's ``pyproject.toml`` (the nearest one, walking up
from the working directory, that has a ``[tool.tileproof]`` table)::

    [tool.tileproof]
    paths = ["specs"]                 # what `tileproof check` verifies with no argument
    spec-patterns = ["*_spec.py", "spec_*.py"]   # files the pytest plugin collects
    index-bits = 64                   # for kernels that declare no index_bits= (else 32)
    solver-timeout-ms = 20000         # opt-in wall-clock cap per kernel (verdicts then may depend on load)
    numeric-budget-s = 60             # per kernel
    jobs = 2                          # kernels verified in parallel
    devices = 4                       # ranked kernels' numerics with ranks on the first 4 devices
    cache = true                      # proof, numeric and compilation caches in .tileproof_cache/
    pytest-numeric = true             # the pytest plugin runs numerics too

    [tool.tileproof.tolerances]       # per dtype, for numeric matching
    float32 = { rtol = 1e-5, atol = 1e-6 }

    [tool.tileproof.skip]             # obligation kinds not checked, each with its reason
    barrier = "launched cooperatively by our runtime, which checks residency itself"

The proof cache keys a kernel's static results by a hash of its lowered
model, the solver options and all of tileproof's code (with the z3 and JAX
versions), so an unchanged kernel is not proved again and an edit anywhere
in tileproof never meets a stale verdict.  Results with an ``unknown`` that ran out of time or
resources are not kept (the next run tries again); other unknowns (an
unsupported construct, say) are as final as proofs.  The environment variable
``TILEPROOF_CACHE_DIR`` overrides the cache folder (benchmarks and CI point it at
a scratch folder); the numeric result cache and JAX's compilation cache live in
it too (:mod:`._numcache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

from ..spec._errors import UNKNOWN, LocatedError, Location
from ._api import verify_kernel
from ._report import SKIPPABLE, KernelReport, Obligation

__all__ = [
    "CACHE_DIR",
    "Config",
    "ConfigError",
    "KernelRef",
    "ProofCache",
    "find_kernels",
    "load_config",
    "verify_refs",
]

CACHE_DIR = ".tileproof_cache"


class ConfigError(LocatedError):
    """A ``[tool.tileproof]`` setting that cannot be used; names the pyproject.toml line.

    No :class:`SpecError` (the specs may be fine); the CLI exits 2 for it all the same."""

    def __init__(self, message: str, location: Location | None = None, hint: str = ""):
        if hint and not message.endswith((".", "?", "!")):
            message += "."
        super().__init__(message, location, hint)


DEFAULT_PATTERNS = ("*_spec.py", "spec_*.py")
_SCHEMA = 1  # bump when the cached JSON changes shape


@dataclass(frozen=True)
class Config:
    """Settings for a run; ``root`` is the folder of the pyproject.toml they came from."""

    paths: tuple[str, ...] = ()
    spec_patterns: tuple[str, ...] = DEFAULT_PATTERNS
    index_bits: int | None = None
    timeout_ms: int | None = None
    numeric_budget_s: float | None = None
    tolerances: dict = field(default_factory=dict)
    skip: dict = field(default_factory=dict)  # kind -> reason
    cache: bool = True
    cache_dir: str = CACHE_DIR
    jobs: int = 1
    devices: int | None = None  # ranked kernels' numerics: ranks on the first N devices
    pytest_numeric: bool = True
    root: str = "."
    source: str | None = None  # the pyproject.toml read, if any

    def resolve(self, path: str) -> str:
        """A configured path, relative to the pyproject.toml's folder."""
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.root, path))

    @property
    def cache_path(self) -> Path:
        """The cache folder: ``TILEPROOF_CACHE_DIR`` if set, else ``cache-dir`` (relative to
        the pyproject.toml's folder)."""
        env = os.environ.get("TILEPROOF_CACHE_DIR")
        if env:
            return Path(env).expanduser().resolve()
        return Path(self.resolve(self.cache_dir))


# ------------------------------------------------------------------------------ config


def _load_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(
            f"{path.name} is not valid TOML: {e}",
            Location(str(path), int(m.group(1)) if m else 1),
            "Fix the file's syntax.",
        ) from None


def find_pyproject(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest pyproject.toml with a ``[tool.tileproof]`` table, walking up from ``start``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                text = candidate.read_text(errors="replace")
            except OSError:
                continue
            if re.search(r"^\s*\[\s*tool\s*\.\s*tileproof\b", text, re.M):
                return candidate
    return None


def _line_of(text: str, key: str, table: str = "tool.tileproof") -> int:
    """The line of ``key`` in ``[table]`` (or of the table itself); 1 when not found."""
    lines = text.splitlines()
    head = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, table.split("."))) + r"\s*\]")
    start = next((i for i, line in enumerate(lines) if head.match(line)), None)
    if start is None:
        return 1
    pat = re.compile(r'^\s*["\']?' + re.escape(key) + r'["\']?\s*[=.]')
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if pat.match(lines[i]):
            return i + 1
    return start + 1


_KEYS = {
    "paths": "a list of files or folders",
    "spec-patterns": "a list of glob patterns",
    "index-bits": "32 or 64",
    "solver-timeout-ms": "a positive integer",
    "numeric-budget-s": "a positive number of seconds",
    "tolerances": "a table of dtype = { rtol = ..., atol = ... }",
    "skip": 'a table of kind = "reason"',
    "cache": "true or false",
    "cache-dir": "a folder name",
    "jobs": "a positive integer",
    "devices": "a positive integer (ranks on the first N devices)",
    "pytest-numeric": "true or false",
}


def load_config(
    start: str | os.PathLike | None = None, *, path: str | os.PathLike | None = None
) -> Config:
    """The settings in force at ``start`` (default: the working directory); defaults if none."""
    pyproject = Path(path) if path is not None else find_pyproject(start)
    if pyproject is not None and not pyproject.is_file():
        raise ConfigError(
            f"no such settings file: {pyproject}",
            None,
            "Pass an existing pyproject.toml to --config.",
        )
    if pyproject is None:
        return Config(root=str(Path(start or os.getcwd()).resolve()))
    table = _load_toml(pyproject).get("tool", {}).get("tileproof", {})
    text = pyproject.read_text(errors="replace")

    def bad(key: str, got: object, table_name: str = "tool.tileproof") -> ConfigError:
        what = _KEYS.get(key, "")
        return ConfigError(
            f"[{table_name}] {key} = {got!r} in {pyproject.name} must be {what}".rstrip(),
            Location(str(pyproject), _line_of(text, key, table_name)),
            "Fix the setting (see README.md, Configuration).",
        )

    if not isinstance(table, dict):
        raise bad("tileproof", table, "tool")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown setting [tool.tileproof] {unknown[0]} in {pyproject.name}",
            Location(str(pyproject), _line_of(text, unknown[0])),
            f"Known settings: {', '.join(_KEYS)}.",
        )
    kw: dict = {"root": str(pyproject.parent.resolve()), "source": str(pyproject)}

    def strings(key: str) -> tuple[str, ...]:
        v = table[key]
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise bad(key, v)
        return tuple(v)

    def positive(key: str, kind: type) -> int | float:
        v = table[key]
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float) if kind is float else int)
            or v <= 0
        ):
            raise bad(key, v)
        return v

    def flag(key: str) -> bool:
        if not isinstance(table[key], bool):
            raise bad(key, table[key])
        return table[key]

    if "paths" in table:
        kw["paths"] = strings("paths")
    if "spec-patterns" in table:
        v = table["spec-patterns"]
        kw["spec_patterns"] = () if v == [] else strings("spec-patterns")
    if "index-bits" in table:
        if table["index-bits"] not in (32, 64) or isinstance(table["index-bits"], bool):
            raise bad("index-bits", table["index-bits"])
        kw["index_bits"] = table["index-bits"]
    if "solver-timeout-ms" in table:
        kw["timeout_ms"] = positive("solver-timeout-ms", int)
    if "numeric-budget-s" in table:
        kw["numeric_budget_s"] = float(positive("numeric-budget-s", float))
    if "jobs" in table:
        kw["jobs"] = positive("jobs", int)
    if "devices" in table:
        kw["devices"] = positive("devices", int)
    for key, attr in (("cache", "cache"), ("pytest-numeric", "pytest_numeric")):
        if key in table:
            kw[attr] = flag(key)
    if "cache-dir" in table:
        kw["cache_dir"] = strings("cache-dir")[0]
    if "tolerances" in table:
        tol = table["tolerances"]
        if not isinstance(tol, dict):
            raise bad("tolerances", tol)
        for dtype, spec in tol.items():
            ok = (
                isinstance(spec, dict)
                and spec
                and set(spec) <= {"rtol", "atol"}
                and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                    for x in spec.values()
                )
            )
            if not ok:
                raise ConfigError(
                    f"[tool.tileproof.tolerances] {dtype} = {spec!r} must be a table "
                    "{ rtol = <number>, atol = <number> }",
                    Location(
                        str(pyproject),
                        _line_of(text, dtype, "tool.tileproof.tolerances")
                        if "[tool.tileproof.tolerances]" in text
                        else _line_of(text, "tolerances"),
                    ),
                    "Fix the tolerance.",
                )
        kw["tolerances"] = {k: dict(v) for k, v in tol.items()}
    if "skip" in table:
        skip = table["skip"]
        if not isinstance(skip, dict):
            raise bad("skip", skip)
        in_table = "[tool.tileproof.skip]" in text
        for kind, reason in skip.items():
            line = (
                _line_of(text, kind, "tool.tileproof.skip") if in_table else _line_of(text, "skip")
            )
            if kind == "unsupported":
                raise ConfigError(
                    "[tool.tileproof.skip] cannot skip 'unsupported': a construct the model "
                    "cannot represent exactly leaves what depends on it unproved",
                    Location(str(pyproject), line),
                    "Rewrite the construct the report names, or declare what it computes.",
                )
            if kind not in SKIPPABLE:
                raise ConfigError(
                    f"[tool.tileproof.skip] names {kind!r}, which is no obligation kind",
                    Location(str(pyproject), line),
                    f"Kinds: {', '.join(SKIPPABLE)}.",
                )
            if not isinstance(reason, str) or not reason.strip():
                raise ConfigError(
                    f"[tool.tileproof.skip] {kind} needs a reason (a non-empty string), "
                    f"got {reason!r}",
                    Location(str(pyproject), line),
                    f'Write why, e.g. {kind} = "checked by the runtime".',
                )
        kw["skip"] = {k: v.strip() for k, v in skip.items()}
    return Config(**kw)


# ------------------------------------------------------------------------------- cache


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
        "counterexample": o.counterexample,
        "reason": o.reason,
        "hint": o.hint,
        "seconds": o.seconds,
        "detail": detail,
    }


def _ob_from_json(d: dict) -> Obligation:
    file, line = d["location"]
    loc = UNKNOWN if (file, line) == (UNKNOWN.file, UNKNOWN.line) else Location(file, line)
    return Obligation(
        d["kind"],
        d["status"],
        d["message"],
        loc,
        d["counterexample"],
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


# ------------------------------------------------------------------------------ runner


# --------------------------------------------------------------- kernels and processes


@dataclass(frozen=True)
class KernelRef:
    """Where a kernel comes from, so that a worker process can load it again."""

    target: str | None  # a path or module; None for the bundled catalog
    index: int
    name: str


def kernel_target(target: str) -> bool:
    """Is ``target`` a ``FILE:KERNEL`` or ``MODULE:KERNEL`` (one kernel), not a path?"""
    where, colon, name = target.rpartition(":")
    return bool(colon and where and name.isidentifier() and not os.path.exists(target))


def _collect(target: str | None, skipped: list[tuple[str, str]] | None = None) -> list:
    if target is None:
        from .. import catalog

        return list(catalog.KERNELS)
    if kernel_target(target):
        from ..spec._discover import find_kernel

        return [find_kernel(target)]
    from ..spec._discover import collect

    return collect([target], skipped)


def find_kernels(
    targets: Iterable[str] | None,
    *,
    skipped: list[tuple[str, str]] | None = None,
    empty: list[tuple[str, str]] | None = None,
) -> list[tuple[KernelRef, object]]:
    """The kernels of each target (``None``: the catalog).

    ``.py`` files that never mention tileproof are skipped, unimported: that is what lets
    a pre-commit hook pass changed Python files while importing spec modules only.  Files
    passed over are appended to ``skipped`` as ``(path, reason)``, and targets that hold no
    kernel at all to ``empty`` as ``(target, reason)`` (the command makes that a usage error:
    a path that verifies nothing must not pass).
    """
    found: list[tuple[KernelRef, object]] = []
    seen: set[int] = set()
    from ..spec._discover import _mentions_tileproof

    for target in list(targets) if targets is not None else [None]:
        if (
            target is not None
            and target.endswith(".py")
            and os.path.isfile(target)
            and not _mentions_tileproof(Path(target))
        ):
            why = "it never mentions tileproof, so it was not imported"
            if skipped is not None:
                skipped.append((target, "never mentions tileproof (not imported)"))
            if empty is not None:
                empty.append((target, why))
            continue
        before = len(skipped) if skipped is not None else 0
        kernels = _collect(target, skipped)
        if not kernels and empty is not None and target is not None:
            passed = len(skipped) - before if skipped is not None else 0
            why = (f"no spec file in it ({passed} file(s) passed over)" if os.path.isdir(target)
                   else "it declares no tileproof kernel")
            empty.append((target, why))
        for i, k in enumerate(kernels):
            if id(k) not in seen:
                seen.add(id(k))
                found.append((KernelRef(target, i, k.name), k))
    return found


_LOADED: dict = {}


def _load(ref: KernelRef):
    if ref.target not in _LOADED:
        _LOADED[ref.target] = _collect(ref.target)
    return _LOADED[ref.target][ref.index]


def _job(ref: KernelRef, config: Config, numeric: bool, points: bool = False,
         options: dict | None = None, compile_cache: bool = False) -> tuple[KernelReport, bool]:
    """One kernel in a worker process: load it again, verify, return a picklable report."""
    import pickle

    if compile_cache:
        _setup_compile_cache(config, numeric)
    try:
        rep = _verify_one(_load(ref), config, numeric, points, options)
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


_CACHES_SET = False


def _setup_compile_cache(config: Config, numeric: bool) -> None:
    """JAX's persistent compilation cache beside the proof cache (once per process, and only
    in the command's own processes: a test session importing tileproof keeps its JAX as is)."""
    global _CACHES_SET
    if numeric and config.cache and not _CACHES_SET:
        from ._numcache import enable_compilation_cache

        _CACHES_SET = enable_compilation_cache(config.cache_path)


def _point_line(name: str):
    """``--verbose``: one stderr line per numeric size point (printed by whichever process
    runs the kernel: workers share the command's stderr)."""

    def on_point(env: dict, run: dict) -> None:
        sizes = ", ".join(f"{k}={v}" for k, v in env.items()) or "(no sizes)"
        what = "mismatch" if run.get("problems") else "ok"
        print(f"tileproof: {name}: numeric at {sizes} (seed {run.get('seed')}): {what} "
              f"({run.get('seconds', 0.0):.1f}s)", file=sys.stderr, flush=True)

    return on_point


def _verify_one(kernel, config: Config, numeric: bool, points: bool,
                options: dict | None, cached_only: bool = False) -> KernelReport | None:
    from ._numcache import NumericCache

    opts = dict(options or {})
    if points:
        opts["on_point"] = _point_line(kernel.name)
    return verify_kernel(kernel, config=config, numeric=numeric,
                         cache=ProofCache(config.cache_path, config.cache),
                         numeric_cache=NumericCache(config.cache_path, config.cache),
                         numeric_options=opts or None, cached_only=cached_only)


def _worker_failed(ref: KernelRef, e: BaseException) -> KernelReport:
    """The report of a kernel whose verification ended in an exception outside the checks."""
    if os.environ.get("TILEPROOF_DEBUG"):
        raise e
    return KernelReport(ref.name, ref.target or "tileproof.catalog", internal=True,
                        error=f"internal error while verifying kernel {ref.name} "
                              f"(from {ref.target or 'the catalog'}): {type(e).__name__}: {e}. "
                              "This is a bug in tileproof, not in your kernel: rerun with "
                              "TILEPROOF_DEBUG=1 to see the traceback, and report it.")


def verify_refs(
    items: list[tuple[KernelRef, object]],
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
        _setup_compile_cache(config, numeric)
    pending = list(range(len(items)))
    if jobs > 1 and len(items) > 1 and config.cache:
        # answer what the caches hold here first: a warm run then starts no worker at all
        # (each would import JAX again and trace the kernels again)
        for i in list(pending):
            rep = _verify_one(items[i][1], config, numeric, False, numeric_options,
                              cached_only=True)
            if rep is not None:
                reports[i] = rep
                hits += rep.cached
                pending.remove(i)
                if on_done:
                    on_done(rep)
    if jobs <= 1 or len(pending) <= 1:
        for i in pending:
            reports[i] = _verify_one(items[i][1], config, numeric, points, numeric_options)
            hits += reports[i].cached
            if on_done:
                on_done(reports[i])
        return reports, hits  # type: ignore[return-value]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if numeric:  # longest first: a long kernel started last would end the run alone
        from .numeric._plan import cost_hint

        pending.sort(key=lambda i: -cost_hint(items[i][1]))

    # spawn: JAX runs threads, so forking a process that imported it is unsafe
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = {pool.submit(_job, items[i][0], config, numeric, points, numeric_options,
                               compile_cache): i
                   for i in pending}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                reports[i], hit = fut.result()
            except Exception as e:  # the worker died (out of memory, a crash): this kernel fails
                reports[i], hit = _worker_failed(items[i][0], e), False
            hits += hit
            if on_done:
                on_done(reports[i])
    return reports, hits  # type: ignore[return-value]
