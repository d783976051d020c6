"""The Mosaic TPU rules: a TPU ``pallas_call`` as a tileproof schedule (see docs/pallas.md).

Everything here follows the installed JAX's TPU pipeline
(``jax/_src/pallas/mosaic/lowering.py`` and ``pipeline.py``):

* **The grid is a loop nest.**  The grid runs in row-major order on a core; axes
  whose ``dimension_semantics`` is ``parallel`` (vmapped axes are parallel,
  ``lowering.py`` ``MosaicGridMapping.__init__``; the default is ``arbitrary``) may be
  split across cores (megacore), so they are tileproof *programs* (race-checked), and
  the trailing ``arbitrary`` axes are loops inside each program, in row-major order.
  An ``arbitrary`` axis before a ``parallel`` one is not modelled (unsupported).
* **Blocks are VMEM copies.**  Each input block is copied into a VMEM buffer before an
  iteration; the in-array part of a partial edge block is copied and the rest of the
  buffer is padding whose contents are undefined (poisoned in the numeric executor:
  NaN / the integer minimum).  The kernel accesses the *buffer*, so its indexers are
  checked against the block shape, not the array.  The buffer is a per-program scratch
  tensor ``<operand>_vmem``.
* **Outputs are written back.**  The kernel writes an output's VMEM buffer; when the
  block index changes between consecutive iterations (or the grid ends), the in-array
  part of the *whole* buffer is copied to the array (``pipeline.py``: an output is
  written back when its next block index differs).  A block revisited on consecutive
  iterations of ``arbitrary`` axes accumulates in place; a block revisited later, or
  by another program (a revisit across a ``parallel`` axis), is written back twice: a
  ``coverage`` violation, as it is a race or a lost update on the chip.  An output
  buffer is indexed by the block index when the block moves along an ``arbitrary``
  axis, so a visit never reads what an earlier visit of another block left there.
* **Scratch persists per core**: ``scratch_shapes`` are per-program scratch tensors,
  carried across the ``arbitrary`` loops and fresh per program (a kernel relying on a
  value left by another parallel iteration is reading memory nobody wrote on that core).
* **The block's DMA starts inside the array**: the block's first element is always
  accessed (an unmasked lane of the copy), so a block index past the array is a
  ``bounds`` violation at the ``pallas_call``.
* **Block shapes tile** (``lowering.py`` ``_check_block_mappings``): a ``shape``
  obligation per block mapping (:func:`tiling_claims`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import shapes
from ..spec import _ops as tpo
from ..spec import _primitives as P
from ..spec._errors import Location
from ._access import _SEEN, _i32, _load, _store, _Unmodelled, _unsupported, _View
from ._dma import Sem
from ._read import BlockRead, CallRead, semaphore_kind
from ._where import _FALLBACK, at_location

__all__ = ["TpuPlan", "plan", "replay_tpu", "tiling_claims"]

_PARALLEL = ("parallel", "core_parallel", "subcore_parallel")
DMA_SEM = "dma_sem"  # the dtype a DMA semaphore scratch has in TpuPlan.scratch


@dataclass
class TpuPlan:
    """How a TPU call's grid and memory map onto tileproof programs, loops and tensors."""

    par: list[int]  # call grid axes that are tileproof grid axes (programs)
    arb: list[int]  # trailing arbitrary axes: loops in each program, outermost first
    bufs: dict[str, str] = field(default_factory=dict)  # operand -> its VMEM buffer tensor
    moves: dict[str, bool] = field(default_factory=dict)  # output -> index depends on arb axes
    scratch: list[tuple[str, tuple, str]] = field(default_factory=list)  # name, shape, dtype
    problems: list[tuple[str, Location]] = field(default_factory=list)


def _semantics(call: CallRead) -> list[str]:
    """Per call grid axis (vmapped ones included): parallel or arbitrary."""
    user = list(call.semantics) if call.semantics is not None else None
    out, it = [], iter(user or [])
    for a in range(len(call.grid)):
        if a in call.vmapped:
            out.append("parallel")
        elif user is None:
            out.append("arbitrary")  # lowering.py: dimension_semantics default
        else:
            out.append(next(it, "arbitrary"))
    return out


def _depends(jaxpr, invars: set) -> bool:
    """Whether any output of an index map depends on the given input variables."""
    dep = set(invars)
    for eqn in jaxpr.eqns:
        if any(not hasattr(v, "val") and v in dep for v in eqn.invars):
            dep.update(eqn.outvars)
    return any(not hasattr(v, "val") and v in dep for v in jaxpr.outvars)


def ref_shape(b: BlockRead) -> tuple:
    """The kernel ref's shape: the block without its squeezed dimensions."""
    return tuple(n for kind, n in b.block if kind != "squeezed")


def plan(call: CallRead, taken: set[str]) -> TpuPlan:
    sem = _semantics(call)
    par, arb, problems = [], [], []
    for a, s in enumerate(sem):
        if s in _PARALLEL and not arb:
            par.append(a)
        elif s == "arbitrary":
            arb.append(a)
        else:
            problems.append(
                (
                    f"grid axis {a} is {s!r} after an 'arbitrary' axis (or of an unknown "
                    "semantics): the order of its iterations is not modelled",
                    call.loc,
                )
            )
            arb.append(a)
    p = TpuPlan(par=par, arb=arb, problems=problems)

    def fresh(base: str) -> str:
        nm, j = base, 1
        while nm in taken:
            j += 1
            nm = f"{base}_{j}"
        taken.add(nm)
        return nm

    narb = len(call.grid)
    for b in call.blocks:
        if b.role == "prefetch" or b.space == "any":
            continue
        if any(not isinstance(n, (int, np.integer)) for _, n in b.block):
            continue  # a symbolic block: its accesses are unsupported (tile sizes must be static)
        p.bufs[b.name] = fresh(f"{b.name}_vmem")
        if b.role == "output":
            invars = b.index_map.jaxpr.invars
            p.moves[b.name] = _depends(b.index_map.jaxpr, {invars[a] for a in arb if a < narb})
    for k, s in enumerate(call.scratch):
        dt = getattr(s, "dtype", None)
        try:
            dname = "bfloat16" if np.dtype(dt).name == "bfloat16" else np.dtype(dt).name
        except TypeError:  # a semaphore or DMA-semaphore type
            dname = None
        name = fresh(call.scratch_names[k] if k < len(call.scratch_names) else f"scratch{k}")
        if dname is None and semaphore_kind(s) == "dma":  # its DMAs are modelled (._dma)
            p.scratch.append((name, tuple(int(d) for d in s.shape), DMA_SEM))
            continue
        if dname is None:
            problems.append((f"scratch {s} (a semaphore) is not modelled", call.loc))
            p.scratch.append((name, (), ""))
            continue
        p.scratch.append((name, tuple(int(d) for d in s.shape), dname))
    return p


def buffer_shape(call: CallRead, p: TpuPlan, b: BlockRead) -> tuple:
    """``(*programs, [*block indices,] *block)``: one buffer per program (and visited block)."""
    progs = tuple(call.grid[a] for a in p.par) or (1,)
    blocks = ()
    if b.role == "output" and p.moves.get(b.name):
        blocks = tuple(
            shapes.cdiv(d, n) if kind == "blocked" else d for (kind, n), d in zip(b.block, b.shape)
        )
    return progs + blocks + ref_shape(b)


def grid_extents(call: CallRead, p: TpuPlan) -> tuple:
    return tuple(call.grid[a] for a in p.par) or (shapes.as_expr(1),)


# ---------------------------------------------------------------------- tiling rule


def tiling_claims(call: CallRead) -> list[tuple]:
    """``_check_block_mappings`` (``jax/_src/pallas/mosaic/lowering.py``) as size formulas.

    Rank >= 2: the last block dim equals the array's or is divisible by 128, and the
    second-to-last equals the array's or is divisible by 8 (squeezed dims count as 1).
    Rank 1: equal to the array's, a multiple of ``8 * 128`` (sublanes * lanes), or a
    power of two of at least ``128 * (32 // bitwidth)``.  SMEM blocks with a trivial
    window and whole-array blocks in ``ANY`` are exempt, as there.
    """
    out = []
    for b in call.blocks:
        if b.role == "prefetch" or b.space in ("any", "semaphore"):
            continue
        bs = [1 if kind == "squeezed" else n for kind, n in b.block]
        if any(not isinstance(n, (int, np.integer)) for n in bs):
            continue  # a whole symbolic array: equal to the array by construction
        bs = [int(n) for n in bs]
        shp = list(b.shape)
        if b.space == "smem" and all(d.is_const and d.const_value == n for d, n in zip(shp, bs)):
            continue
        parts, text = [], []
        if len(bs) >= 2:
            for pos, mult in ((-1, 128), (-2, 8)):
                if bs[pos] % mult:
                    parts.append(shapes.eq(shp[pos], bs[pos]))
                    text.append(
                        f"dim {len(bs) + pos} of {bs[pos]} must equal the array's "
                        f"{shp[pos]} (it is not a multiple of {mult})"
                    )
        elif len(bs) == 1:
            bits = 8 * (
                1
                if b.dtype == "bool"
                else 2
                if b.dtype == "bfloat16"
                else np.dtype(b.dtype).itemsize
            )
            n = bs[0]
            if not (n % 1024 == 0 or (n >= 128 * max(32 // bits, 1) and n & (n - 1) == 0)):
                parts.append(shapes.eq(shp[0], n))
                text.append(
                    f"the rank-1 block of {n} must equal the array's {shp[0]} (it is "
                    f"neither a multiple of 1024 nor a power of two >= "
                    f"{128 * max(32 // bits, 1)})"
                )
        if parts:
            out.append(
                (
                    f"the TPU block shape {tuple(bs)} of {b.name} tiles its array "
                    f"{tuple(str(d) for d in shp)}: " + "; ".join(text),
                    shapes.conj(*parts),
                    call.loc,
                    "Mosaic requires the last two block dims divisible by 8 and 128 or "
                    "equal to the array's (jax/_src/pallas/mosaic/lowering.py "
                    "_check_block_mappings); pick such a block or assume the array dim.",
                )
            )
    return out


def revisit_claims(call: CallRead, p: TpuPlan) -> list[tuple]:
    """The revisit rule (:mod:`._revisit`) for each output whose block moves along the
    ``arbitrary`` axes; an index map it cannot evaluate becomes an unsupported item."""
    from ._revisit import revisit_claim

    out = []
    for b in call.blocks:
        if b.role != "output" or not p.moves.get(b.name):
            continue
        formula, shown = revisit_claim(b.name, b.index_map, list(call.grid), p.par, p.arb)
        if formula is None:
            p.problems.append(
                (
                    f"the block index of {b.name} moves along the 'arbitrary' axes "
                    f"and its index map is not evaluated ({shown}): whether a block "
                    "comes back after another is not checked",
                    call.loc,
                )
            )
            continue
        axes = ", ".join(str(a) for a in p.arb)
        out.append(
            (
                f"each output block of {b.name} is visited on consecutive iterations of "
                f"the arbitrary grid axes ({axes}) only",
                formula,
                call.loc,
                "Mosaic writes an output block back when the next iteration's block index "
                "differs; a block that comes back later starts from garbage "
                "(jax/_src/pallas/mosaic/pipeline.py). Make revisits consecutive (the "
                "accumulating axis innermost).",
                *shown,
            )
        )
    return out


# ---------------------------------------------------------------------- replay


def replay_tpu(call: CallRead, p: TpuPlan, refs: dict, pids: list, sizes) -> None:
    _FALLBACK.append(call.kernel_loc)
    _SEEN.append(set())
    try:
        _replay(call, p, refs, pids, sizes)
    finally:
        _FALLBACK.pop()
        _SEEN.pop()


def _size(e) -> object:
    e = shapes.as_expr(e)
    return jnp.int32(e.const_value) if e.is_const else P.size_p.bind(name="", expr=e)


def _replay(call: CallRead, p: TpuPlan, refs: dict, pids: list, sizes) -> None:
    from ._body import _Replay, _whole

    for what, loc in p.problems:
        _unsupported(what, loc)
    progs = [pids[j] for j in range(len(p.par))] if p.par else [jnp.int32(0)]
    with at_location(call.loc):
        extents = [_size(e) for e in call.grid]

    def iteration(ks: list) -> None:
        full = [None] * len(call.grid)
        for j, a in enumerate(p.par):
            full[a] = pids[j]
        for j, a in enumerate(p.arb):
            full[a] = ks[j]
        r = _Replay(call, full, extents, sizes)
        whole = _whole(call, refs)
        prefetch = [whole[b.name] for b in call.blocks if b.role == "prefetch"]
        views, outs = [], []
        for b in call.blocks:
            if b.role == "prefetch":
                views.append(whole[b.name])
                continue
            if b.name not in p.bufs:  # ANY memory (only DMAs reach it) or a symbolic block
                views.append(whole.get(b.name) or _whole_view(refs[b.name], b))
                continue
            idx = _index(r, b, full, prefetch)
            buf = _buffer_view(call, p, b, refs[p.bufs[b.name]], progs, idx)
            if b.role == "input":
                with at_location(call.loc):  # the pipeline's copy-in, at the pallas_call
                    arr = _array_view(refs[b.name], b, idx)
                    keep = _in_array(arr, b)
                    _store(buf, _load(arr, keep, None, call.loc), None, call.loc)
            else:
                outs.append((b, idx, buf, refs[b.name]))
            views.append(buf)
        for name, shape, _dt in p.scratch:
            if _dt == DMA_SEM:  # a DMA semaphore array: its copies are paired in ._dma
                views.append(Sem(name, tuple(shape)))
                continue
            if not shape and name not in refs:
                views.append(None)
                continue
            sb = BlockRead(
                name,
                "scratch",
                tuple(shapes.as_expr(n) for n in shape),
                _dt,
                tuple(("blocked", n) for n in shape),
                None,
                "scratch",
            )
            views.append(
                _View(
                    refs[name],
                    sb,
                    tuple(("point", x) for x in progs)
                    + tuple(("range", jnp.int32(0), n) for n in shape),
                )
            )
        r.run(call.body, [], views)
        r.dma.finish()
        with at_location(call.loc):  # the pipeline's bookkeeping, at the pallas_call
            _writebacks(call, p, outs, ks, full, extents, prefetch, sizes)

    def loop(level: int, ks: list) -> None:
        if level == len(p.arb):
            iteration(ks)
            return

        def step(k, carry):
            loop(level + 1, [*ks, k])
            return carry

        with at_location(call.loc):
            lax.fori_loop(0, extents[p.arb[level]], step, jnp.int32(0))

    loop(0, [])


def _writebacks(call, p, outs, ks, full, extents, prefetch, sizes) -> None:
    from ._body import _Replay

    """Each output's copy-out: at the last iteration, or when the next iteration's block
    index differs (``pipeline.py``); the index map is evaluated at the successor."""
    final = _final(ks, p, extents)
    for b, idx, buf, out_ref in outs:
        cond = final
        if p.moves.get(b.name):
            nxt = _next(ks, p, extents, final)
            full2 = list(full)
            for j, a in enumerate(p.arb):
                full2[a] = nxt[j]
            idx2 = _index(_Replay(call, full2, extents, sizes), b, full2, prefetch)
            moved = jnp.zeros((), bool)
            for x, y in zip(idx, idx2):
                moved = moved | (_i32(x) != _i32(y))
            cond = final | moved
        _writeback(call, b, out_ref, buf, idx, cond)


def _whole_view(ref, b: BlockRead) -> _View:
    return _View(
        ref,
        b,
        tuple(("range", jnp.int32(0), d.const_value if d.is_const else None) for d in b.shape),
    )


def _index(r, b: BlockRead, full: list, prefetch: list) -> list:
    ij = b.index_map
    try:
        return r.run(ij.jaxpr, ij.consts, list(full) + prefetch)
    except _Unmodelled as u:
        _unsupported(u.what, u.loc)
        return [jnp.int32(0)] * len(b.block)


def _starts(b: BlockRead, idx) -> list:
    """Per array dimension: the block's first element (Mosaic: block index times size)."""
    out = []
    for (kind, n), i in zip(b.block, idx):
        i = _i32(i)
        out.append(i * n if kind == "blocked" else i)
    return out


def _array_view(ref, b: BlockRead, idx) -> _View:
    dims = []
    for (kind, n), s in zip(b.block, _starts(b, idx)):
        dims.append(("point", s) if kind == "squeezed" else ("range", s, int(n)))
    return _View(ref, b, tuple(dims))


def _buffer_view(call: CallRead, p: TpuPlan, b: BlockRead, ref, progs, idx) -> _View:
    dims = [("point", x) for x in progs]
    if b.role == "output" and p.moves.get(b.name):
        dims += [("point", _i32(i)) for i in idx]
    dims += [("range", jnp.int32(0), int(n)) for n in ref_shape(b)]
    return _View(ref, b, tuple(dims))


def _in_array(view: _View, b: BlockRead):
    """The block's elements inside the array, and always its first (the DMA's start)."""
    ranges = [(d, e) for d, e in zip(view.dims, b.shape) if d[0] == "range"]
    shape = view.shape
    inside = jnp.ones(shape, bool)
    first = jnp.ones(shape, bool)
    for ax, (d, e) in enumerate(ranges):
        io = lax.broadcasted_iota(jnp.int32, shape, ax)
        inside = inside & (io < _size(e) - d[1])  # no i32 sum the chip never computes
        first = first & (io == 0)
    return inside | first


def _final(ks: list, p: TpuPlan, extents: list):
    out = jnp.ones((), bool)
    for k, a in zip(ks, p.arb):
        out = out & (k == extents[a] - 1)
    return out


def _next(ks: list, p: TpuPlan, extents: list, final) -> list:
    """The row-major successor of the arbitrary indices (the current ones at the end)."""
    out, carry = [], jnp.ones((), bool)
    for k, a in reversed(list(zip(ks, p.arb))):
        last = k == extents[a] - 1
        out.append(jnp.where(carry, jnp.where(last, 0, k + 1), k))
        carry = carry & last
    out.reverse()
    return [jnp.where(final, k, n) for k, n in zip(ks, out)]


def _writeback(call: CallRead, b: BlockRead, ref, buf: _View, idx, cond) -> None:
    arr = _array_view(ref, b, idx)

    @tpo.when(cond)
    def _():
        with at_location(call.loc):  # the pipeline's copy-out, at the pallas_call
            keep = _in_array(arr, b)
            _store(arr, _load(buf, keep, None, call.loc), keep, call.loc)


def tracing_patches():
    """What tracing on symbolic shapes needs, and what makes it fail closed.

    * A ``pl.CostEstimate`` (a scheduling hint that must hold Python ints,
      ``jax/_src/pallas/core.py``) of symbolic sizes is accepted unchecked.
    * The truth value of a symbolic size raises: ``_DimExpr`` has no ``__bool__``
      (``jax/_src/export/shape_poly.py``), so ``if k % tk:`` is silently *true* for every
      size and the traced program is not the one that runs where ``k % tk == 0``
      (megablox's ``_calculate_irregular_num_tiles``).  Such a function must be traced
      at concrete sizes instead.
    """
    import contextlib

    from ._read import _pcore

    ce = getattr(_pcore, "CostEstimate", None)
    try:
        from jax._src.export import shape_poly as _sp
    except ImportError:  # pragma: no cover
        _sp = None
    dim = getattr(_sp, "_DimExpr", None)

    def _no_bool(self):
        raise _sp.InconclusiveDimensionOperation(
            f"the truth value of the symbolic size {self} is taken in Python (as in "
            f"`if {self}:`), which JAX silently treats as true for every size"
        )

    @contextlib.contextmanager
    def patch():
        orig_ce = ce.__post_init__ if ce is not None else None
        had_bool = dim is not None and "__bool__" in vars(dim)
        orig_bool = vars(dim).get("__bool__") if dim is not None else None
        if ce is not None:
            ce.__post_init__ = lambda self: None
        if dim is not None:
            dim.__bool__ = _no_bool
        try:
            yield
        finally:
            if ce is not None:
                ce.__post_init__ = orig_ce
            if dim is not None:
                if had_bool:
                    dim.__bool__ = orig_bool
                else:
                    del dim.__bool__

    return patch()
