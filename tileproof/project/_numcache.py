"""The numeric result cache and JAX's persistent compilation cache, beside the proof cache.

A numeric run compiles the tiled executor (and its transpose for gradients) at
every size point: that is most of a cold ``tileproof check``.  Two caches make
the next run cheap:

* :class:`NumericCache` keeps a kernel's ``matched`` result on disk.  The key
  hashes everything that can change the result: the lowered model, the body's
  traced jaxpr (it holds the floating-point math the model abstracts away, and
  every helper the body calls), the source files of the spec and of the user code
  its body, reference, ``derive`` and backward spec reach (:func:`_closure_files`), the kernel's ``numeric={...}``
  settings, the numeric options of the run (sizes, budget, seed, tolerances,
  devices), all of tileproof's code with the jax/jaxlib versions, and the
  backend with its devices.  Only ``matched`` results are kept: a mismatch or an
  error is never answered from disk, so a failure always shows a fresh run.
  A key that cannot be computed (a body that does not trace, a source file that
  cannot be read) means no caching, never a stale hit.
* :func:`enable_compilation_cache` points JAX's persistent compilation cache
  at ``<cache>/jax`` so that after an edit only what changed is compiled again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
from pathlib import Path

from ..report import NumericResult

__all__ = ["NumericCache", "enable_compilation_cache"]

_SCHEMA = 1  # bump when the cached JSON changes shape


def enable_compilation_cache(cache_dir: str | os.PathLike) -> bool:
    """Point JAX's persistent compilation cache at ``cache_dir/jax`` (every compilation kept).

    Returns False (and changes nothing) when the folder cannot be made: a read-only
    checkout just compiles again.  Set before the first compilation of the process.
    """
    import jax

    folder = Path(cache_dir) / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _ignore(Path(cache_dir))
    except OSError:
        return False
    try:
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    except Exception:  # an option this JAX does not know: run without the cache
        return False
    return True


def _ignore(folder: Path) -> None:
    ignore = folder / ".gitignore"
    if not ignore.exists():
        folder.mkdir(parents=True, exist_ok=True)
        ignore.write_text("# created by tileproof: the proof cache is local\n*\n")


def _library(path: str) -> bool:
    """A file of the Python installation or an installed package (versioned, not user code)."""
    real = os.path.realpath(path)
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    return "site-packages" in real.split(os.sep) or any(
        real.startswith(r.rstrip(os.sep) + os.sep) for r in roots
    )


def _code_names(code) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if inspect.iscode(c):
            names |= _code_names(c)
    return names


def _closure_files(fns) -> set[str | None]:
    """The user source files that ``fns`` (a reference, a ``derive``) read: their own files,
    and, following the globals and closure cells their code names, the files of the user
    functions, classes and modules they reach (a module is covered by its file).  Library
    code is left out (its version is in the key through jax/jaxlib and tileproof's code).
    ``None`` in the set means a function whose source file does not exist (``python -c``):
    the caller then does not cache at all."""
    import functools

    files: set[str | None] = set()
    seen: set[int] = set()
    stack = [f for f in fns if f is not None]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None:
            continue
        seen.add(id(obj))
        if inspect.ismodule(obj):
            f = getattr(obj, "__file__", None)
            if f and not _library(f):
                files.add(f)
            continue
        if isinstance(obj, functools.partial):
            stack += [obj.func, *obj.args, *obj.keywords.values()]
            continue
        fn = inspect.unwrap(obj) if callable(obj) else obj
        code = getattr(fn, "__code__", None)
        if code is None:
            if inspect.isclass(fn) or callable(fn):
                mod = sys.modules.get(getattr(fn, "__module__", "") or "")
                if mod is not None:
                    stack.append(mod)
            continue
        f = code.co_filename
        if _library(f):
            continue
        files.add(f if os.path.isfile(f) else None)
        g = getattr(fn, "__globals__", {}) or {}
        stack += [g[n] for n in _code_names(code) if n in g]
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                stack.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        stack += list(getattr(fn, "__defaults__", None) or ())
    return files


def _sources(kernel, seen: set[int] | None = None) -> set[str | None]:
    """Files whose text the numeric result depends on, beyond tileproof's own code."""
    seen = set() if seen is None else seen
    if id(kernel) in seen:
        return set()
    seen.add(id(kernel))
    files = {kernel.location.file}
    files |= _closure_files(
        [
            kernel.body,
            kernel.reference,
            kernel.numeric.get("derive"),
            # a front end's size-specific reference (the Pallas one)
            getattr(kernel.reference, "at_sizes", None),
        ]
    )
    if kernel.backward is not None:
        files |= _sources(kernel.backward, seen)
    return files


def _body_jaxpr(kernel) -> str:
    """The body's traced jaxpr, constants included: the math the schedule model abstracts."""
    import numpy as np

    from ..verify.numeric._plan import traced

    t = traced(kernel)
    h = hashlib.sha256(str(t.closed.jaxpr).encode())
    for c in t.closed.consts:
        a = np.asarray(c)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _backend(devices: int | None) -> list:
    import jax

    devs = jax.devices()
    return [jax.default_backend(), len(devs), sorted({d.device_kind for d in devs}), devices]


class NumericCache:
    """``matched`` numeric results on disk, one small JSON file per key (see the module doc)."""

    def __init__(self, directory: str | os.PathLike, enabled: bool = True):
        self.dir = Path(directory)
        self.enabled = enabled

    def key(self, kernel, model, options: dict) -> str | None:
        """The key of ``kernel``'s numeric run with ``options``, or None (do not cache)."""
        if not self.enabled:
            return None
        from ._cache import _canon, _code_fingerprint

        try:
            sources = _sources(kernel)
            files = sorted(f for f in sources if f is not None)
            if len(files) != len(sources):
                return None  # a function whose source we cannot see: no caching
            texts = [[f, hashlib.sha256(Path(f).read_bytes()).hexdigest()] for f in files]
            parts = [
                _SCHEMA,
                _code_fingerprint(),
                _canon(model),
                texts,
                _body_jaxpr(kernel) + (_body_jaxpr(kernel.backward) if kernel.backward else ""),
                _canon({k: v for k, v in kernel.numeric.items() if k != "derive"}),
                _canon(options),
                _backend(options.get("devices")),
            ]
            blob = json.dumps(parts, separators=(",", ":"), default=repr)
        except Exception:  # anything we cannot hash soundly is not cached
            return None
        return hashlib.sha256(blob.encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.dir / "numeric" / f"v{_SCHEMA}" / key[:2] / f"{key}.json"

    def get(self, key: str | None) -> NumericResult | None:
        if not self.enabled or key is None:
            return None
        try:
            d = json.loads(self._file(key).read_text())
            res = NumericResult(
                d["status"],
                [dict(s) for s in d["sizes"]],
                d["max_abs_err"],
                d["max_rel_err"],
                d["gradients"],
                d["message"],
                d["seconds"],
                {k: d[k] for k in ("placements", "conditions") if d.get(k)},
            )
        except (OSError, ValueError, KeyError, TypeError, AssertionError):
            return None
        return res if res.status == "matched" else None

    def put(self, key: str | None, res: NumericResult) -> None:
        """Keep ``res`` if it matched; a mismatch or an error is always run again."""
        if not self.enabled or key is None or res.status != "matched":
            return
        target = self._file(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _ignore(self.dir)
            tmp = target.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(
                json.dumps(
                    {
                        "status": res.status,
                        "sizes": res.sizes,
                        "max_abs_err": res.max_abs_err,
                        "max_rel_err": res.max_rel_err,
                        "gradients": res.gradients,
                        "message": res.message,
                        "seconds": res.seconds,
                        "placements": (res.detail or {}).get("placements"),
                        "conditions": (res.detail or {}).get("conditions"),
                    },
                    default=repr,
                )
            )
            os.replace(tmp, target)
        except (OSError, TypeError, ValueError):
            pass  # a read-only checkout just runs again
