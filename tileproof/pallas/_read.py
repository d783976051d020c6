"""Read the ``pallas_call`` equations of a traced function (the only module that knows Pallas' internals).

JAX's Pallas internals move between releases, so everything that touches
``jax._src.pallas`` lives here: the rest of :mod:`tileproof.pallas` sees the
plain data classes below.  Written against jax 0.10.x (``GridMapping`` with
``vmapped_dims``, ``BlockMapping.block_shape`` of ``Blocked``/``Squeezed``/
``Element``, the kernel body as an open ``Jaxpr`` whose invars are refs in the
order ``*scalar_prefetch, *inputs, *outputs, *scratch``; see
``jax/_src/pallas/core.py`` class ``GridMapping``).

The user's function is traced with ``jax.make_jaxpr`` on ``jax.export``
symbolic shapes; the pallas_call's own operand list is
``*dynamic_grid_sizes, *scalar_prefetch, *inputs`` (``GridMapping``'s
docstring), so dynamic grid extents (a ``vmap`` over a symbolic batch) are read
back from the ``dim_as_value`` equations that feed them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .. import shapes
from ..lowering._jaxcompat import CALLS
from ..spec._errors import UNKNOWN, Location
from ._tables import _concrete, literal_range

__all__ = ["BlockRead", "CallRead", "loc_of", "read_calls", "semaphore_kind", "user_location"]

try:  # JAX's own Pallas kernels live inside jax/: count their files as user code for locations
    from jax._src import source_info_util as _siu

    _OPS = os.path.join(os.path.dirname(jax.__file__), "experimental", "pallas", "ops") + os.sep
    _siu.register_inclusion(_OPS)
    # tileproof.pallas re-binds the kernel's equations: its own frames are never the user's
    _siu.register_exclusion(os.path.dirname(os.path.abspath(__file__)) + os.sep)
except (ImportError, AttributeError):  # pragma: no cover - locations only
    _siu = None

try:
    from jax._src.pallas import core as _pcore
except ImportError as e:  # pragma: no cover - a JAX without Pallas
    raise ImportError(f"tileproof.pallas needs jax with Pallas (jax._src.pallas): {e}") from None


# the JAX releases whose Pallas internals this module is written against (pyproject.toml, the
# `pallas` extra): [0.10, 0.12).  Outside it every call is read with an unsupported item.
SUPPORTED_JAX = ((0, 10), (0, 12))


def jax_supported(version: str | None = None) -> bool:
    parts = []
    for p in (version or jax.__version__).split(".")[:2]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    lo, hi = SUPPORTED_JAX
    return lo <= tuple(parts) < hi


def user_location(traceback) -> Location:
    """The innermost user frame of a JAX traceback (kernel files under jax/ count as user code)."""
    if _siu is None or traceback is None:
        return UNKNOWN
    try:
        fr = _siu.user_frame(traceback)
    except Exception:  # pragma: no cover
        return UNKNOWN
    if fr is None:
        return UNKNOWN
    return Location(os.path.abspath(fr.file_name), fr.start_line)


def _reaches(eqn, file: str) -> bool:
    tb = getattr(eqn.source_info, "traceback", None)
    if _siu is None or tb is None:
        return False
    return any(os.path.abspath(f.file_name) == file for f in _siu.user_frames(tb))


def loc_of(eqn) -> Location:
    return user_location(getattr(eqn.source_info, "traceback", None))


@dataclass(frozen=True)
class BlockRead:
    """One operand of the kernel: the whole array and how a program's block sits in it.

    ``block`` holds, per array dimension, ``("blocked", n)`` (block index times
    ``n`` elements), ``("element", n)`` (the index map returns an element offset),
    or ``("squeezed", 1)`` (a single index, the dimension is absent in the kernel).
    """

    name: str
    role: str  # "prefetch" | "input" | "output"
    shape: tuple[shapes.Expr, ...]
    dtype: str
    block: tuple[tuple[str, object], ...]  # (kind, int or a JAX symbolic dimension)
    index_map: object  # ClosedJaxpr: (*grid ids, *prefetch refs) -> block indices
    origin: str
    space: str = ""  # the block's memory space: "" (default/VMEM), "smem", "any", "semaphore"


@dataclass
class CallRead:
    """One ``pallas_call`` of the traced function."""

    name: str
    loc: Location
    kernel_loc: Location
    grid: tuple[shapes.Expr, ...]
    vmapped: tuple[int, ...]
    blocks: list[BlockRead]
    body: object  # the kernel's open Jaxpr
    scratch: tuple
    aliases: tuple
    backend: str  # "triton" | "mosaic" | "mosaic_gpu" | "unknown"
    semantics: tuple[str, ...] | None
    problems: list[tuple[str, Location]] = field(default_factory=list)
    scratch_names: list[str] = field(default_factory=list)  # the body's names of its scratch refs
    operand_args: list[int | None] = field(default_factory=list)  # outer arg feeding each input
    operand_values: list[int | None] = field(default_factory=list)  # arg whose elements it holds
    output_results: list[int | None] = field(default_factory=list)
    # (min, max) of an operand that is a trace-time integer constant (``jnp.zeros((1,))``)
    operand_consts: list[tuple[int, int] | None] = field(default_factory=list)


def _dim(d) -> shapes.Expr:
    if isinstance(d, (int, np.integer)):
        return shapes.as_expr(int(d))
    return shapes.from_jax(d)


def _dtype(aval) -> str:
    dt = np.dtype(aval.dtype)
    return "bfloat16" if dt.name == "bfloat16" else dt.name


def semaphore_kind(aval) -> str | None:
    """``"dma"`` for a DMA semaphore scratch (``pltpu.SemaphoreType.DMA``, dtype
    ``jax/_src/pallas/mosaic/core.py`` ``dma_semaphore``), ``"regular"`` for another
    semaphore, None for memory."""
    dt = getattr(aval, "dtype", None)
    if dt is None:
        return None
    try:
        from jax._src.pallas.mosaic import core as _tcore

        if jnp.issubdtype(dt, _tcore.dma_semaphore):
            return "dma"
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - another JAX
        pass
    try:
        np.dtype(dt)
        return None
    except TypeError:
        return "regular"


def _block_dims(bm, where: Location, problems: list) -> tuple[tuple[str, int], ...]:
    out = []
    for b in bm.block_shape:
        if isinstance(b, _pcore.Squeezed):
            out.append(("squeezed", 1))
            continue
        if isinstance(b, _pcore.Blocked):
            kind, n = "blocked", b.block_size
        elif isinstance(b, _pcore.Element):
            kind, n = "element", b.block_size
            if tuple(getattr(b, "padding", (0, 0))) != (0, 0):
                problems.append((f"{bm.origin}: Element block dimension with padding", where))
        else:
            problems.append((f"{bm.origin}: block dimension {b!r} is not modelled", where))
            kind, n = "blocked", 1
        # a symbolic block size stays a JAX dimension expression: a whole-array block of a
        # symbolic array (traced with Pallas' dynamic shapes); accesses through it must slice
        # static tiles, as Triton's would
        out.append((kind, int(n) if isinstance(n, (int, np.integer)) else n))
    return tuple(out)


def _backend(params) -> tuple[str, tuple[str, ...] | None]:
    cp = params.get("compiler_params")
    mod = type(cp).__module__ if cp is not None else ""
    sem = None
    if cp is not None and hasattr(cp, "dimension_semantics"):
        ds = cp.dimension_semantics
        sem = tuple(str(getattr(s, "name", s)).lower() for s in ds) if ds is not None else None
    if "triton" in mod:
        return "triton", sem
    if "mosaic_gpu" in mod:
        return "mosaic_gpu", sem
    if "mosaic" in mod or "tpu" in mod:
        return "mosaic", sem
    if isinstance(cp, dict):  # older JAX: {"triton": {...}} / {"mosaic": {...}}
        for k in ("triton", "mosaic_gpu", "mosaic"):
            if k in cp:
                return k, sem
    return "unknown", sem


def _space(bm) -> str:
    """A block's memory space as the TPU lowering tells them apart (``pltpu.SMEM``,
    ``pl.ANY``/HBM: the kernel gets the whole array, reachable by DMAs only)."""
    ms = getattr(getattr(bm, "block_aval", None), "memory_space", None)
    if ms is None:
        return ""
    name = str(getattr(ms, "name", ms)).lower()
    for key, out in (("smem", "smem"), ("any", "any"), ("hbm", "any"), ("semaphore", "semaphore")):
        if key in name:
            return out
    return ""


def _names(body, n: int, fallback: list[str]) -> list[str]:
    names = list(getattr(getattr(body, "debug_info", None), "arg_names", None) or [])
    out, seen = [], set()
    for k in range(n):
        raw = names[k] if k < len(names) and names[k] else fallback[k]
        nm = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(raw)) or fallback[k]
        if nm[0].isdigit():
            nm = "t" + nm
        base, j = nm, 1
        while nm in seen:
            j += 1
            nm = f"{base}_{j}"
        seen.add(nm)
        out.append(nm)
    return out


def _num_dynamic(gm) -> int:
    """Operands before the scalar prefetch: one per grid extent that is not a Python int
    (``jax/_src/pallas/core.py`` ``unzip_dynamic_grid_bounds``)."""
    return sum(1 for g in gm.grid if not isinstance(g, (int, np.integer)))


def _read_one(eqn, outer_vals: list) -> CallRead:
    p = eqn.params
    gm = p["grid_mapping"]
    loc = loc_of(eqn)
    body = p["jaxpr"]
    kloc = loc
    dbg = getattr(body, "debug_info", None)
    src = getattr(dbg, "func_src_info", None) or ""
    if " at " in src and ":" in src:
        f, _, line = src.rsplit(" at ", 1)[1].rpartition(":")
        if line.isdigit():
            kloc = Location(os.path.abspath(f), int(line))
    if kloc.line and (not loc.line or not _reaches(eqn, kloc.file)):
        # a lazily traced custom_vjp backward: its trace lost the kernel's file (it knows the
        # custom_vjp call site only); the kernel's own line is the best site for it
        loc = kloc
    problems: list[tuple[str, Location]] = []
    # operands: *dynamic grid sizes, *scalar prefetch, *inputs
    dyn_vals = list(outer_vals)
    grid = []
    dyn_k = 0
    for g in gm.grid:
        if isinstance(g, (int, np.integer)):
            grid.append(shapes.as_expr(int(g)))
        elif type(g).__name__ == "DynamicGridDim":
            v = dyn_vals[dyn_k] if dyn_k < len(dyn_vals) else None
            dyn_k += 1
            if isinstance(v, shapes.Expr):
                grid.append(v)
            else:
                problems.append(("a dynamic grid extent that is not a symbolic size", loc))
                grid.append(shapes.as_expr(1))
        else:  # a symbolic extent (Pallas' dynamic shapes): its value is an operand too
            dyn_k += 1
            grid.append(_dim(g))
    nidx, nin, nout = gm.num_index_operands, gm.num_inputs, gm.num_outputs
    nscr = len(gm.scratch_avals)
    fallback = (
        [f"prefetch{k}" for k in range(nidx)]
        + [f"in{k}" for k in range(nin)]
        + [f"out{k}" for k in range(nout)]
        + [f"scratch{k}" for k in range(nscr)]
    )
    names = _names(body, nidx + nin + nout + nscr, fallback)
    blocks: list[BlockRead] = []
    for k in range(nidx):
        aval = gm.index_map_avals[len(gm.grid) + k]
        shape = tuple(_dim(d) for d in getattr(aval, "shape", ()))
        blocks.append(
            BlockRead(
                names[k],
                "prefetch",
                shape,
                _dtype(aval),
                tuple(("blocked", 0) for _ in shape),
                None,
                f"scalar prefetch {k}",
            )
        )
    for k, bm in enumerate(gm.block_mappings):
        role = "input" if k < nin else "output"
        if bm.transforms:
            problems.append(
                (f"{bm.origin}: block transforms {bm.transforms} are not modelled", loc)
            )
        if getattr(bm, "pipeline_mode", None) is not None:
            problems.append((f"{bm.origin}: pipeline_mode is not modelled", loc))
        blocks.append(
            BlockRead(
                names[nidx + k],
                role,
                tuple(_dim(d) for d in bm.array_aval.shape),
                _dtype(bm.array_aval),
                _block_dims(bm, loc, problems),
                bm.index_map_jaxpr,
                str(bm.origin),
                _space(bm),
            )
        )
    backend, sem = _backend(p)
    call = CallRead(
        name=(p.get("name") or getattr(dbg, "func_name", None) or "pallas_kernel"),
        loc=loc,
        kernel_loc=kloc,
        grid=tuple(grid),
        vmapped=tuple(gm.vmapped_dims),
        blocks=blocks,
        body=body,
        scratch=tuple(gm.scratch_avals),
        aliases=tuple(p.get("input_output_aliases") or ()),
        backend=backend,
        semantics=sem,
        problems=problems,
        scratch_names=names[nidx + nin + nout :],
    )
    if not jax_supported():
        problems.append(
            (
                f"jax {jax.__version__} is outside the range tileproof.pallas reads "
                f"({SUPPORTED_JAX[0]}..{SUPPORTED_JAX[1]}, exclusive)",
                loc,
            )
        )
    if getattr(p.get("mesh"), "shape", None):
        problems.append(("pallas_call over a device mesh (core_map) is not modelled", loc))
    return call


_CALLS = CALLS


# primitives whose result holds only elements of their first operand (value ranges carry over)
_SAME_ELEMENTS = (
    "reshape",
    "squeeze",
    "expand_dims",
    "transpose",
    "copy",
    "copy_p",
    "slice",
    "dynamic_slice",
    "broadcast_in_dim",
    "convert_element_type",
    "rev",
)


class _Walk:
    """Find pallas_call equations, tracking symbolic sizes (``dim_as_value``), which outer
    argument feeds a variable, and which inner variable an outer result is (through calls)."""

    def __init__(self):
        self.found: list = []  # (eqn, operand values, operand arg indices)
        self.alias: dict = {}  # outer result var -> the inner var it is
        self.elems_of: dict = {}  # var -> argument whose elements (a subset of) it holds
        self.const_of: dict = {}  # var -> (min, max) of its elements, a trace-time constant

    def walk(self, jaxpr, env: dict, arg_of: dict) -> None:
        for eqn in jaxpr.eqns:
            name = eqn.primitive.name
            ins = [env.get(v) if not hasattr(v, "val") else _lit(v.val) for v in eqn.invars]
            if name == "pallas_call":
                self.found.append(
                    (
                        eqn,
                        ins,
                        [arg_of.get(v) for v in eqn.invars],
                        [self.elems_of.get(v) for v in eqn.invars],
                        [self._const(v) for v in eqn.invars],
                    )
                )
                continue
            if (
                name in _SAME_ELEMENTS
                and eqn.invars
                and self._const(eqn.invars[0]) is not None
                and np.issubdtype(np.dtype(eqn.outvars[0].aval.dtype), np.integer)
                and np.dtype(eqn.outvars[0].aval.dtype) == np.dtype(eqn.invars[0].aval.dtype)
            ):
                # jnp.zeros((1,), jnp.int32) is broadcast_in_dim of a literal: every element
                # is one of the operand's (same dtype: no cast changes a value)
                self.const_of[eqn.outvars[0]] = self._const(eqn.invars[0])
            if name in _SAME_ELEMENTS and eqn.invars and not hasattr(eqn.invars[0], "val"):
                src = arg_of.get(eqn.invars[0], self.elems_of.get(eqn.invars[0]))
                if src is not None and (
                    name != "convert_element_type"
                    or np.dtype(eqn.params["new_dtype"]) == np.dtype(eqn.invars[0].aval.dtype)
                ):
                    self.elems_of[eqn.outvars[0]] = src
            if name == "dim_as_value":
                env[eqn.outvars[0]] = _dim(eqn.params["dim"])
                continue
            if name in ("convert_element_type", "copy", "copy_p") and isinstance(
                ins[0], shapes.Expr
            ):
                env[eqn.outvars[0]] = ins[0]
                continue
            inner = None
            if name in _CALLS:
                inner = (
                    eqn.params.get("jaxpr")
                    or eqn.params.get("call_jaxpr")
                    or eqn.params.get("fun_jaxpr")
                )
            if inner is not None:
                jx = inner.jaxpr if hasattr(inner, "jaxpr") else inner
                sub = {iv: x for iv, x in zip(jx.invars, ins) if x is not None}
                sub_arg = {
                    iv: arg_of[ov]
                    for iv, ov in zip(jx.invars, eqn.invars)
                    if not hasattr(ov, "val") and ov in arg_of
                }
                for iv, ov in zip(jx.invars, eqn.invars):
                    if not hasattr(ov, "val") and ov in self.elems_of:
                        self.elems_of[iv] = self.elems_of[ov]
                    if self._const(ov) is not None:
                        self.const_of[iv] = self._const(ov)
                for cv, c in zip(jx.constvars, getattr(inner, "consts", ())):
                    r = literal_range(c) if _concrete(c) else None
                    if r is not None:
                        self.const_of[cv] = r
                self.walk(jx, sub, sub_arg)
                for ov, iv in zip(eqn.outvars, jx.outvars):
                    if not hasattr(iv, "val"):
                        self.alias[ov] = self.alias.get(iv, iv)
                continue
            for subj in _subjaxprs(eqn):
                self.walk(subj, {}, {})

    def _const(self, v):
        """``(min, max)`` of a trace-time integer constant operand, else None."""
        if hasattr(v, "val"):
            return literal_range(v.val)
        return self.const_of.get(v)


def _subjaxprs(eqn):
    for v in eqn.params.values():
        for x in v if isinstance(v, (tuple, list)) else (v,):
            j = getattr(x, "jaxpr", None)
            if j is not None and hasattr(j, "eqns"):
                yield j
            elif hasattr(x, "eqns"):
                yield x


def _lit(v):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return shapes.as_expr(int(v))
    return None


def read_calls(closed) -> list[CallRead]:
    """Every pallas_call of a traced function (a ClosedJaxpr), in program order.

    ``operand_args[k]`` is the index of the function argument that *is* the call's
    k-th input (through jit boundaries, no other op in between), else None;
    ``output_results[k]`` likewise for the function's results.
    """
    jx = closed.jaxpr
    w = _Walk()
    for cv, c in zip(jx.constvars, closed.consts):
        r = literal_range(c) if _concrete(c) else None
        if r is not None:
            w.const_of[cv] = r
    w.walk(jx, {}, {v: k for k, v in enumerate(jx.invars)})
    result_of = {}
    for k, v in enumerate(jx.outvars):
        if not hasattr(v, "val"):
            result_of.setdefault(w.alias.get(v, v), k)
    calls = []
    for eqn, ins, args, elems, consts in w.found:
        call = _read_one(eqn, ins)
        gm = eqn.params["grid_mapping"]
        ndyn = _num_dynamic(gm)
        call.operand_args = list(args[ndyn:])
        call.operand_values = [a if a is not None else e for a, e in zip(args[ndyn:], elems[ndyn:])]
        call.output_results = [result_of.get(v) for v in eqn.outvars]
        call.operand_consts = list(consts[ndyn:])
        calls.append(call)
    return calls
