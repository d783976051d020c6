"""``[tool.tileproof]`` settings: what a run verifies and how, read from pyproject.toml.

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

Every front end of a run (the command, the pytest plugin, ``tileproof.testing``)
reads its settings here, so a setting means the same everywhere; a value that
cannot be used is a :class:`ConfigError` naming the pyproject.toml line, never a
silent default.  The ``TILEPROOF_CACHE_DIR`` environment variable overrides the
cache folder (see :mod:`._cache`).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..report._findings import SKIPPABLE
from ..spec._errors import LocatedError, Location

__all__ = [
    "CACHE_DIR",
    "DEFAULT_PATTERNS",
    "Config",
    "ConfigError",
    "find_pyproject",
    "load_config",
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
