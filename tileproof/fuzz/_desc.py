"""Random kernels as data: a small description language, rendered to spec source and loaded.

A generated kernel is a :class:`KernelDesc` (plain tuples and dataclasses) so
hypothesis can shrink it and a failing case prints as readable spec source:
:func:`render` writes the ``@tp.kernel`` module text, :func:`build` writes it
to a file and imports it (real file names, so every node of the lowered
model and every run-time flag names a line of that text).  Every access and
every construct sits on a line of its own, which is how obligations and
flags are matched to the statements the oracle (:mod:`._oracle`) executes.

Integer expressions (``Ex``) are tuples:

* ``("c", k)`` a constant; ``("s", "N")`` a size; ``("p", k)`` program id of
  grid axis ``k``; ``("i", d)`` the index of the enclosing loop at depth ``d``;
  ``("lane",)`` the lane id; ``("d", k)`` a value read from the index tensor;
* ``(op, a, b)`` with ``op`` in ``+ - * // %`` (``//`` and ``%`` by a positive
  constant: Python floor semantics, which ``jnp`` keeps), ``min`` or ``max``;
  ``("sel", cond, a, b)`` is ``jnp.where(cond, a, b)``.

Conditions (``Cond``) are ``(cmp, a, b)`` with ``cmp`` in ``< <= == != >=``
or ``("and", c1, c2)``.  Index dimensions are ``("pt", e)``, ``("ds", e, t)``
or ``("all", n)`` (``:`` over a constant extent ``n``).  A mask is ``(j, cmp, bound)``: tile
dimension ``j`` keeps coordinates ``start + c`` with ``start + c cmp bound``.

Statements:

* ``("load", tensor, index, mask)`` adds the sum of the tile to the running
  value; ``("store", tensor, index, mask)`` writes the running value;
* ``("data", k, index)`` reads ``d<k>`` from the index tensor ``idx``;
* ``("loop", lo, hi, body)`` a ``lax.fori_loop``; ``("wloop", lo, hi, body)`` the same
  loop as a ``lax.while_loop`` over an ``(i, value)`` carry; ``("scan", lo, hi, step,
  body)`` a ``lax.scan`` over ``jnp.arange(lo, hi, step)`` (constants); ``("when", cond, body)``;
* ``("barrier", scope)``; ``("exit", cond)`` (``tp.exit_if``);
* ``("lanes", n, body)`` task-parallel lanes; ``("halve", n, t, index)``
  a ``lanes(n, halve=0)`` region loading ``x[index]`` (a ``t`` tile first)
  and taking its ``lane_part``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass, field

__all__ = ["KernelDesc", "TensorDesc", "build", "render", "render_expr"]

Ex = tuple
Cond = tuple


@dataclass(frozen=True)
class TensorDesc:
    """One tensor: ``role`` input/output/scratch/index, a shape of size expressions (text)."""

    name: str
    role: str
    shape: tuple[str, ...]
    values: str | None = None  # index tensors: the declared range, a condition on v


@dataclass(frozen=True)
class KernelDesc:
    """A generated kernel: sizes and domain, grid, tensors, body statements."""

    sizes: tuple[str, ...]
    assume: tuple[str, ...]
    grid: tuple[str, ...]  # extents of axes p0, p1, ...
    tensors: tuple[TensorDesc, ...]
    body: tuple = ()
    box: int = 6  # every size point with all sizes <= box is brute-forced
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def tensor(self, name: str) -> TensorDesc:
        return next(t for t in self.tensors if t.name == name)


_BIN = ("+", "-", "*", "//", "%")


def render_expr(e: Ex) -> str:
    tag = e[0]
    if tag == "c":
        return str(e[1])
    if tag == "s":
        return e[1]
    if tag == "p":
        return f"p{e[1]}"
    if tag == "i":
        return f"i{e[1]}"
    if tag == "lane":
        return "lane"
    if tag == "d":
        return f"d{e[1]}"
    if tag in _BIN:
        return f"({render_expr(e[1])} {tag} {render_expr(e[2])})"
    if tag in ("min", "max"):
        return f"jnp.{tag}imum({render_expr(e[1])}, {render_expr(e[2])})"
    if tag == "sel":
        return f"jnp.where({render_cond(e[1])}, {render_expr(e[2])}, {render_expr(e[3])})"
    raise ValueError(f"unknown expression {e!r}")


def render_cond(c: Cond) -> str:
    if c[0] == "and":
        return f"({render_cond(c[1])} & {render_cond(c[2])})"
    return f"({render_expr(c[1])} {c[0]} {render_expr(c[2])})"


def _render_index(index) -> str:
    parts = []
    for d in index:
        if d[0] == "pt":
            parts.append(render_expr(d[1]))
        elif d[0] == "ds":
            parts.append(f"tp.ds({render_expr(d[1])}, {d[2]})")
        else:
            parts.append("slice(None)")
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def tile_dims(index) -> list[tuple[Ex, int]]:
    """(start, extent) of each tile dimension (``ds`` and ``:``; points are dropped)."""
    out = []
    for d in index:
        if d[0] == "ds":
            out.append((d[1], d[2]))
        elif d[0] == "all":
            out.append((("c", 0), d[1]))
    return out


def _render_mask(index, mask) -> str:
    if mask is None:
        return ""
    j, cmp, bound = mask
    dims = tile_dims(index)
    start, t = dims[j]
    iota = f"({render_expr(start)} + jnp.arange({t}))"
    if len(dims) == 2:
        iota += "[:, None]" if j == 0 else "[None, :]"
    return f", mask={iota} {cmp} {render_expr(bound)}"


class _Writer:
    def __init__(self, first_line: int):
        self.lines: list[str] = []
        self.nfun = 0
        self.first = first_line  # source line of lines[0]
        self.at: dict[tuple, int] = {}  # statement path -> its source line

    def mark(self, path: tuple) -> None:
        """The next emitted line is the one of statement ``path``."""
        self.at[path] = self.first + len(self.lines)

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)


def _render_body(w: _Writer, stmts, ind: int, acc: int, path: tuple = ()) -> None:
    """Statements at indentation ``ind``; the running value is ``a<acc>``."""
    a = f"a{acc}"
    for n, s in enumerate(stmts):
        tag = s[0]
        here = (*path, n)
        if tag not in ("loop", "wloop", "scan", "when", "halve"):
            w.mark(here)
        if tag == "load":
            _, t, index, mask = s
            w.emit(
                ind,
                f"{a} = {a} + jnp.sum(tp.load({t}, {_render_index(index)}"
                f"{_render_mask(index, mask)}))",
            )
        elif tag == "store":
            _, t, index, mask = s
            w.emit(ind, f"tp.store({t}, {_render_index(index)}, {a}{_render_mask(index, mask)})")
        elif tag == "data":
            _, k, index = s
            w.emit(ind, f"d{k} = tp.load(idx, {_render_index(index)})")
        elif tag == "loop":
            _, lo, hi, body = s
            w.nfun += 1
            name, depth = f"loop{w.nfun}", acc + 1
            w.emit(ind, f"def {name}(i{depth}, a{depth}):")
            _render_body(w, body, ind + 1, depth, here)
            w.emit(ind + 1, f"return a{depth}")
            w.mark(here)
            w.emit(ind, f"{a} = lax.fori_loop({render_expr(lo)}, {render_expr(hi)}, {name}, {a})")
        elif tag == "wloop":
            _, lo, hi, body = s
            w.nfun += 1
            depth, name = acc + 1, f"body{w.nfun}"
            w.emit(ind, f"def {name}(carry):")
            w.emit(ind + 1, f"i{depth}, a{depth} = carry")
            _render_body(w, body, ind + 1, depth, here)
            w.emit(ind + 1, f"return i{depth} + 1, a{depth}")
            w.mark(here)
            w.emit(
                ind,
                f"_, {a} = lax.while_loop(lambda carry: carry[0] < {render_expr(hi)}, "
                f"{name}, (jnp.int32({render_expr(lo)}), {a}))",
            )
        elif tag == "scan":
            _, lo, hi, step, body = s
            w.nfun += 1
            depth, name = acc + 1, f"scan{w.nfun}"
            w.emit(ind, f"def {name}(a{depth}, i{depth}):")
            _render_body(w, body, ind + 1, depth, here)
            w.emit(ind + 1, f"return a{depth}, None")
            w.mark(here)
            w.emit(ind, f"{a}, _ = lax.scan({name}, {a}, jnp.arange({lo}, {hi}, {step}))")
        elif tag == "when":
            _, cond, body = s
            w.nfun += 1
            depth = acc + 1
            w.mark(here)
            w.emit(ind, f"@tp.when({render_cond(cond)})")
            w.emit(ind, f"def _when{w.nfun}():")
            w.emit(ind + 1, f"a{depth} = {a}")
            _render_body(w, body, ind + 1, depth, here)
            if not body:
                w.emit(ind + 1, "pass")
        elif tag == "barrier":
            w.emit(ind, f"tp.barrier({s[1]!r})")
        elif tag == "exit":
            w.emit(ind, f"tp.exit_if({render_cond(s[1])})")
        elif tag == "lanes":
            _, n, body = s
            w.emit(ind, f"with tp.lanes({n}) as lane:")
            _render_body(w, body, ind + 1, acc, here)
            if not body:
                w.emit(ind + 1, "pass")
        elif tag == "halve":
            _, n, t, index = s
            w.mark(here)
            w.emit(ind, f"with tp.lanes({n}, halve=0) as lane:")
            w.mark((*here, "load"))
            w.emit(ind + 1, f"tile = tp.load(x, {_render_index(index)})")
            w.mark((*here, "part"))
            w.emit(ind + 1, f"{a} = {a} + jnp.sum(tp.lane_part(tile, axis=0))")
        else:
            raise ValueError(f"unknown statement {s!r}")


def _sizes_used(desc: KernelDesc) -> list[str]:
    return list(desc.sizes)


def render(desc: KernelDesc, name: str = "fuzz_kernel") -> str:
    """Spec source of ``desc``: a module defining the kernel ``name``."""
    return render_lines(desc, name)[0]


def render_lines(desc: KernelDesc, name: str = "fuzz_kernel") -> tuple[str, dict[tuple, int]]:
    """:func:`render` and the source line of every statement (by its path in the body)."""
    out = ["import jax.numpy as jnp", "from jax import lax", "", "import tileproof.spec as tp", ""]
    grid = "{" + ", ".join(f'"p{k}": "{g}"' for k, g in enumerate(desc.grid)) + "}"
    tens = []
    for t in desc.tensors:
        shape = (
            "(" + ", ".join(f'"{d}"' for d in t.shape) + ("," if len(t.shape) == 1 else "") + ")"
        )
        if t.role == "index":
            tens.append(f'{t.name}=tp.Input({shape}, "int32", values="{t.values}")')
        else:
            tens.append(f"{t.name}=tp.{t.role.capitalize()}({shape})")
    out.append(f"@tp.kernel(grid={grid}, assume={list(desc.assume)!r},")
    out.append('           launch=tp.Launch(cores=4096, start="together"),')
    out.append(f"           tensors=dict({', '.join(tens)}))")
    out.append(f"def {name}({', '.join(t.name for t in desc.tensors)}):")
    w = _Writer(len(out) + 1)
    for k in range(len(desc.grid)):
        w.emit(1, f"p{k} = tp.program_id({k})")
    for s in _sizes_used(desc):
        w.emit(1, f'{s} = tp.size("{s}")')
    w.emit(1, "a0 = jnp.float32(0)")
    _render_body(w, desc.body, 1, 0)
    out += w.lines
    return "\n".join(out) + "\n", w.at


_DIR = None


def build(desc: KernelDesc, name: str = "fuzz_kernel"):
    """The ``tp.kernel`` of ``desc`` (its source written to a file and imported) and the source."""
    global _DIR
    src = render(desc, name)
    if _DIR is None:
        _DIR = tempfile.mkdtemp(prefix="tileproof_fuzz_")
    h = hashlib.sha1(src.encode()).hexdigest()[:16]
    path = os.path.join(_DIR, f"fuzz_{h}.py")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(src)
    modname = f"_tileproof_fuzz_{h}"
    mod = sys.modules.get(modname)
    if mod is None:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[modname] = mod
    return getattr(mod, name), src, path
