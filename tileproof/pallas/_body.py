"""Re-play a Pallas kernel body as a tileproof kernel body (tile accesses on whole arrays).

The kernel jaxpr of a ``pallas_call`` works on *block refs*; the Triton
lowering turns every ref access into pointer arithmetic on the whole array:
the block's start is ``index_map(*program_ids) * block_size`` per dimension
(``Squeezed`` and ``Element`` dimensions take the index map's value itself;
``jax/_src/pallas/triton/lowering.py`` ``_eval_index_map``), and an indexer's
offsets are added to it with no clamping or masking of its own
(``_compute_offsets_from_indices``).  So a block ref access is exactly a
tileproof access to the whole array at ``block start + indexer start``, and
tileproof's array-bounds obligation is Triton's rule "unmasked accesses must
stay inside the array".

:func:`replay` interprets the body equation by equation *while being traced by
tileproof*: ref accesses become ``tp_load``/``tp_store`` (with the mask of a
masked ``pl.load``/``pl.store``), ``program_id``/``num_programs`` the grid's,
control flow is rebuilt with ``lax`` (refs are closed over), and every other
primitive is bound again under the original equation's source information so
findings name the kernel's own lines.  Whatever is not modelled exactly is
bound as a ``tp_unsupported`` operation at its line (fail closed).
"""

from __future__ import annotations

import contextlib

import jax.numpy as jnp
import numpy as np
from jax import lax

from ..lowering._jaxcompat import CALLS, scan_operands
from ..spec import _primitives as P
from ..spec._errors import Location
from ._access import (
    _SEEN,
    _SYM_OPS,
    _apply_transforms,
    _Gather,
    _i32,
    _index_view,
    _jdtype,
    _lin,
    _load,
    _materialize,
    _store,
    _Sym,
    _sym_eval,
    _Unmodelled,
    _unsupported,
    _View,
)
from ._dma import DmaState, Sem, dma_eqn
from ._read import BlockRead, CallRead, semaphore_kind
from ._where import _FALLBACK, _at, at_location, eqn_location

__all__ = ["replay"]

_CALLS = CALLS
_REFS = (_View, Sem)  # refs the replay closes over (never passed through lax as values)
# Pallas primitives whose semantics the model does not hold exactly (fail closed)
# (dma_start/dma_wait are modelled by ._dma for Mosaic TPU kernels)
_UNSUPPORTED_REF = (
    "atomic_rmw",
    "atomic_cas",
    "semaphore_signal",
    "semaphore_wait",
    "semaphore_read",
    "run_scoped",
    "get_barrier_semaphore",
    "device_id",
    "delay",
    "prng_seed",
    "prng_random_bits",
    "run_state",
)


class _Replay:
    def __init__(self, call: CallRead, pids: list, nums: list, sizes):
        self.call = call
        local = [a for a in range(len(call.grid)) if a not in call.vmapped]
        self.local = local  # body program_id(axis) is the axis-th grid dim that is not vmapped
        self.pids, self.nums, self.sizes = pids, nums, sizes
        # id(value) -> (value, base, stride): integer vectors known to be base + stride * arange(n)
        self._aff: dict = {}
        self._tables: dict = {}  # id(value) -> (value, view): integer tiles read from memory
        self.dma = DmaState()  # the manual DMAs in flight (Mosaic TPU; see ._dma)

    @property
    def affine(self) -> dict:
        return {k: (b, st, ax) for k, (_v, b, st, ax) in self._aff.items()}

    def _note_affine(self, eqn, vals, outs) -> None:
        """Track ``base + stride * iota`` through the integer ops an index vector is built with.

        The base is computed (as the kernel computes it) under the equation's own source
        information, so its arithmetic is reported at the kernel's line."""
        with _at(eqn):
            self._note_affine_at(eqn, vals, outs)

    def _note_affine_at(self, eqn, vals, outs) -> None:
        """Annotate ``out[i] = base + stride * i[axis]`` (constant along the other axes)."""
        name = eqn.primitive.name
        if len(outs) != 1 or not hasattr(outs[0], "shape") or outs[0].shape == ():
            return
        out = outs[0]
        if not jnp.issubdtype(out.dtype, jnp.integer):
            return

        def form(x):
            if isinstance(x, (int, np.integer)):
                return (int(x), 0, None)
            if hasattr(x, "shape") and x.shape == () and jnp.issubdtype(x.dtype, jnp.integer):
                return (x, 0, None)
            got = self._aff.get(id(x))
            return got[1:] if got is not None and got[0] is x else None

        def aligned(x, f):
            """f's axis in out's numbering (NumPy right-aligned broadcasting), or None."""
            if f[1] == 0:
                return None
            shp = tuple(getattr(x, "shape", ()))
            ax = f[2] + len(out.shape) - len(shp)
            return ax if out.shape[ax] == shp[f[2]] else -1

        res = None
        if name == "iota":
            res = (0, 1, eqn.params["dimension"])
        elif name in ("convert_element_type", "copy", "copy_p"):
            res = form(vals[0])
        elif name == "broadcast_in_dim":
            f = form(vals[0])
            if f is not None:
                if f[1] == 0:
                    res = f
                else:
                    ax = eqn.params["broadcast_dimensions"][f[2]]
                    if out.shape[ax] == vals[0].shape[f[2]]:
                        res = (f[0], f[1], ax)
        elif name in ("broadcast_to", "reshape", "squeeze", "expand_dims"):
            f = form(vals[0])
            if f is not None:
                if f[1] == 0:
                    res = f
                elif name == "broadcast_to":
                    ax = aligned(vals[0], f)
                    res = (f[0], f[1], ax) if ax is not None and ax >= 0 else None
                else:
                    src = [a for a, n in enumerate(vals[0].shape) if n != 1]
                    dst = [a for a, n in enumerate(out.shape) if n != 1]
                    if [vals[0].shape[a] for a in src] == [out.shape[a] for a in dst] and f[
                        2
                    ] in src:
                        res = (f[0], f[1], dst[src.index(f[2])])
        elif name in ("add", "sub", "mul"):
            fa, fb = form(vals[0]), form(vals[1])
            if fa is not None and fb is not None:
                aa, ab = aligned(vals[0], fa), aligned(vals[1], fb)
                if -1 in (aa, ab) or (aa is not None and ab is not None and aa != ab):
                    return
                axis = aa if aa is not None else ab
                if name in ("add", "sub"):
                    sign = 1 if name == "add" else -1
                    st = _lin(fa[1], fb[1], sign)
                    base = fa[0] + fb[0] if sign == 1 else fa[0] - fb[0]
                    res = (base, st, axis) if st is not None else None
                else:
                    if fb[1] == 0 and isinstance(fb[0], int):
                        fa, fb = fb, fa
                    if fa[1] == 0 and isinstance(fa[0], int) and isinstance(fb[1], int):
                        res = (fb[0] * fa[0], fb[1] * fa[0], axis)
                    elif fa[1] == 0 and fb[1] == 0:
                        res = (fa[0] * fb[0], 0, None)
        if res is not None and isinstance(res[1], int):
            if res[1] != 0 and (res[2] is None or not 0 <= res[2] < len(out.shape)):
                return
            self._aff[id(out)] = (out, res[0], res[1], res[2] if res[1] != 0 else None)

    # ------------------------------------------------------------------ evaluation
    def run(self, jaxpr, consts, args) -> list:
        env = {}
        for v, c in zip(jaxpr.constvars, consts):
            env[v] = c
        for v, a in zip(jaxpr.invars, args):
            env[v] = a
        used = set()
        for e in jaxpr.eqns:
            used.update(x for x in e.invars if not hasattr(x, "val"))
        used.update(x for x in jaxpr.outvars if not hasattr(x, "val"))
        for eqn in jaxpr.eqns:
            vals = [x.val if hasattr(x, "val") else env[x] for x in eqn.invars]
            loc = eqn_location(eqn, self.call.kernel_loc)
            try:
                with _at(eqn):  # view arithmetic (block start + indexer start) sits here too
                    outs = self.eqn(eqn, vals, loc, used)
            except _Unmodelled as u:
                _unsupported(u.what, u.loc)
                outs = [_poison(v.aval) for v in eqn.outvars]
            if outs and isinstance(outs, list):
                self._note_affine(eqn, vals, outs)
            for v, o in zip(eqn.outvars, outs):
                env[v] = o
        return [x.val if hasattr(x, "val") else env[x] for x in jaxpr.outvars]

    def eqn(self, eqn, vals, loc: Location, used: set) -> list:
        name = eqn.primitive.name
        p = eqn.params
        if name == "program_id":
            return [self.pid(p["axis"], loc)]
        if name == "num_programs":
            return [self.num(p["axis"], loc)]
        if name == "dim_as_value":
            return [self.dim(p["dim"])]
        if any(isinstance(v, _Sym) for v in vals):
            key = p.get("name", "") if name in _CALLS else name
            if key in _SYM_OPS or key in ("floor_divide", "remainder"):
                e = _sym_eval(key, p, vals)
                if e is not None:
                    return [_Sym(e)]
            vals = [_materialize(v) for v in vals]
        if name in ("get", "swap", "addupdate"):
            return self.state_op(eqn, name, vals, loc, used)
        if name in ("dma_start", "dma_wait"):
            return dma_eqn(self, eqn, vals, loc)
        if name == "run_scoped":
            return self.run_scoped(eqn, vals, loc)
        if name in ("masked_load", "load"):
            ref, transforms, mask, other = p["args_tree"].unflatten(vals)
            view = self.view(ref, transforms, loc)
            self.dma.touch(view, False, loc)
            out = _load(view, mask, other, loc)
            if mask is None:
                self._note_table(view, out)
            return [out]
        if name in ("masked_swap", "swap_masked"):
            ref, transforms, val, mask = p["args_tree"].unflatten(vals)
            view = self.view(ref, transforms, loc)
            self.dma.touch(view, True, loc)
            old = None
            if eqn.outvars[0] in used:
                old = _load(view, mask, None, loc)
            _store(view, val, mask, loc)
            return [old if old is not None else jnp.zeros(view.shape, _jdtype(view.block.dtype))]
        if name == "broadcast_to":  # Pallas' own primitive has no batching rule: use lax's
            with _at(eqn):
                return [jnp.broadcast_to(vals[0], tuple(p["shape"]))]
        if name == "multiple_of":
            return [self.multiple_of(eqn, vals[0], tuple(p.get("values") or ()), loc)]
        if name in _CALLS:
            inner = p.get("jaxpr") or p.get("call_jaxpr") or p.get("fun_jaxpr")
            jx = inner.jaxpr if hasattr(inner, "jaxpr") else inner
            return self.run(jx, getattr(inner, "consts", []), vals)
        if name == "cond":
            return self.cond(eqn, vals, loc)
        if name == "while":
            return self.while_(eqn, vals, loc)
        if name == "scan":
            return self.scan(eqn, vals, loc)
        if any(isinstance(v, _REFS) for v in vals) or name in _UNSUPPORTED_REF:
            raise _Unmodelled(
                f"the Pallas operation {name} (a memory access or effect the model does not hold)",
                loc,
            )
        with _at(eqn):
            out = eqn.primitive.bind(*vals, **p)
        return list(out) if eqn.primitive.multiple_results else [out]

    def multiple_of(self, eqn, x, values: tuple, loc: Location):
        """``pl.multiple_of(x, m)``: a claim Triton acts on unchecked (it becomes a divisibility
        attribute of the value, ``jax/_src/pallas/triton/lowering.py``
        ``_multiple_of_rule``), so it is bound as a ``tp_claim`` the ``shape`` obligation
        proves.  The value itself is replayed unchanged: nothing relies on the claim."""
        if len(values) != 1 or not isinstance(values[0], (int, np.integer)):
            raise _Unmodelled(
                f"pl.multiple_of(..., {values}): a claim of several divisors is not modelled", loc
            )
        if isinstance(x, _Sym):  # a size expression: Triton sees a constant; still a claim
            xv = _materialize(x)
        else:
            xv = x
        if not jnp.issubdtype(jnp.asarray(xv).dtype, jnp.integer) or jnp.shape(xv) != ():
            # on a tensor, Triton's divisibility is a per-dimension property of contiguous
            # runs (its axis analysis), not of each element: not modelled (fail closed)
            raise _Unmodelled(
                "pl.multiple_of of a non-scalar or non-integer value (Triton's "
                "divisibility of a tensor is not modelled)",
                loc,
            )
        with _at(eqn):
            P.claim_p.bind(
                xv, modulus=int(values[0]), what=f"pl.multiple_of(..., {int(values[0])})", site=loc
            )
        return x

    def pid(self, axis: int, loc: Location):
        if not 0 <= axis < len(self.local):
            raise _Unmodelled(f"program_id({axis}) on a grid of {len(self.local)} axes", loc)
        return self.pids[self.local[axis]]

    def num(self, axis: int, loc: Location):
        if not 0 <= axis < len(self.local):
            raise _Unmodelled(f"num_programs({axis}) on a grid of {len(self.local)} axes", loc)
        return self.nums[self.local[axis]]

    def dim(self, d):
        from .. import shapes

        if isinstance(d, (int, np.integer)):
            return _Sym(shapes.as_expr(int(d)))
        return _Sym(shapes.from_jax(d))

    def view(self, ref, transforms, loc: Location):
        if not isinstance(ref, _View):
            raise _Unmodelled("a memory access to a ref that is not a kernel operand", loc)
        transforms = list(transforms or ())
        if len(transforms) == 1 and type(transforms[0]).__name__ == "NDIndexer":
            g = self._table_gather(ref, transforms[0], loc)
            if g is not None:
                return g
        return _apply_transforms(ref, transforms, loc, self.affine)

    def _note_table(self, view, out) -> None:
        """An unmasked 1-D tile read from an integer operand: a table a later gather may use."""
        if (
            isinstance(view, _View)
            and hasattr(out, "dtype")
            and len(out.shape) == 1
            and jnp.issubdtype(out.dtype, jnp.integer)
            and sum(d[0] == "range" for d in view.dims) == 1
        ):
            self._tables[id(out)] = (out, view)

    def _table_gather(self, ref: _View, indexer, loc: Location):
        """``ref[table]`` with ``table`` a tile of n > 1 entries read from an index operand:
        each entry is read again on its own (one data symbol each, with the operand's
        declared range) and addresses one slice of ``ref``; exact, since a gather of n
        entries is n reads."""
        visible = [k for k, d in enumerate(ref.dims) if d[0] == "range"]
        idx = list(indexer.indices)
        if len(idx) != len(visible) or not idx:
            return None
        first = idx[0]
        if type(first).__name__ == "Slice" or getattr(first, "shape", ()) in ((), (1,)):
            return None
        hit = self._tables.get(id(first))
        if hit is None or hit[0] is not first or id(first) in self._aff:
            return None
        if any(type(ix).__name__ != "Slice" and getattr(ix, "shape", ()) != () for ix in idx[1:]):
            return None
        _tile, table = hit
        k_tab = next(k for k, d in enumerate(table.dims) if d[0] == "range")
        t0 = table.dims[k_tab][1]
        views = []
        for j in range(int(first.shape[0])):
            tdims = list(table.dims)
            tdims[k_tab] = ("point", _i32(t0) + j)
            tview = _View(table.tensor, table.block, tuple(tdims))
            self.dma.touch(tview, False, loc)  # read again here: not while a copy lands on it
            entry = jnp.reshape(_load(tview, None, None, loc), ())
            rest = _index_view(
                ref,
                type(indexer)(indices=(entry, *idx[1:]), shape=indexer.shape, int_indexer_shape=()),
                loc,
                self.affine,
            )
            k0 = visible[0]
            dims = list(rest.dims)
            dims[k0] = ("range", dims[k0][1], 1)  # the entry's slice, kept as an axis of 1
            views.append(_View(rest.tensor, rest.block, tuple(dims)))
        return _Gather(tuple(views), 0)

    def state_op(self, eqn, name, vals, loc, used) -> list:
        tree = eqn.params["tree"]
        if name == "get":
            ref, flat = vals[0], vals[1:]
            view = self.view(ref, tree.unflatten(flat), loc)
            self.dma.touch(view, False, loc)
            out = _load(view, None, None, loc)
            self._note_table(view, out)
            return [out]
        ref, val, flat = vals[0], vals[1], vals[2:]
        view = self.view(ref, tree.unflatten(flat), loc)
        self.dma.touch(view, True, loc)
        if name == "addupdate":
            old = _load(view, None, None, loc)
            _store(view, old + val, None, loc)
            return []
        old = _load(view, None, None, loc) if eqn.outvars[0] in used else None
        _store(view, val, None, loc)
        return [old if old is not None else jnp.zeros(view.shape, _jdtype(view.block.dtype))]

    def run_scoped(self, eqn, vals, loc: Location) -> list:
        """``pl.run_scoped`` allocating DMA semaphores only (``pltpu.sync_copy``): a block of
        its own with fresh semaphores, its copies paired inside it.  Scoped memory (VMEM or
        SMEM allocations) and collective allocations are not modelled."""
        p = eqn.params
        jx = p["jaxpr"]
        if p.get("collective_axes") or any(t for t in p.get("ref_transforms") or ()):
            raise _Unmodelled("pl.run_scoped with collective axes or ref transforms", loc)
        sems = []
        for v in jx.invars:
            if semaphore_kind(v.aval) != "dma":
                raise _Unmodelled(
                    f"pl.run_scoped allocating {v.aval} (scoped memory is not modelled)", loc
                )
            sems.append(self.dma.scoped_sem(tuple(int(d) for d in v.aval.shape), loc))
        with self.block():
            return self.run(jx, list(vals), sems)

    # ------------------------------------------------------------------ control flow
    @contextlib.contextmanager
    def block(self):
        """A branch or loop body: a straight-line block of its own for the DMA pairing."""
        self.dma.push()
        try:
            yield
        finally:
            self.dma.pop()

    def cond(self, eqn, vals, loc):
        branches = eqn.params["branches"]
        vals = [_materialize(v) for v in vals]
        idx, ops = vals[0], vals[1:]
        keep = [k for k, v in enumerate(ops) if not isinstance(v, _REFS)]

        def make(br):
            def f(*xs):
                full = list(ops)
                for k, x in zip(keep, xs):
                    full[k] = x
                with self.block():
                    return tuple(_materialize(o) for o in self.run(br.jaxpr, br.consts, full))

            return f

        with _at(eqn):
            out = lax.switch(idx, [make(b) for b in branches], *[ops[k] for k in keep])
        return list(out)

    def while_(self, eqn, vals, loc):
        p = eqn.params
        cn, bn = p["cond_nconsts"], p["body_nconsts"]
        vals = [_materialize(v) for v in vals]
        cc, bc, init = vals[:cn], vals[cn : cn + bn], vals[cn + bn :]
        if any(isinstance(v, _REFS) for v in init):
            raise _Unmodelled("a ref carried through a loop", loc)
        cj, bj = p["cond_jaxpr"], p["body_jaxpr"]

        def cf(carry):
            with self.block():
                return _materialize(self.run(cj.jaxpr, cj.consts, list(cc) + list(carry))[0])

        def bf(carry):
            with self.block():
                return tuple(
                    _materialize(o) for o in self.run(bj.jaxpr, bj.consts, list(bc) + list(carry))
                )

        with _at(eqn):
            out = lax.while_loop(cf, bf, tuple(init))
        return list(out)

    def scan(self, eqn, vals, loc):
        p = eqn.params
        vals = [_materialize(v) for v in vals]
        consts, init, xs = scan_operands(p, vals)  # the params differ between JAX 0.10 and 0.11
        ncar = len(init)
        if any(isinstance(v, _REFS) for v in list(init) + list(xs)):
            raise _Unmodelled("a ref carried or scanned through a loop", loc)
        j = p["jaxpr"]

        def step(carry, x):
            with self.block():
                out = [
                    _materialize(o)
                    for o in self.run(j.jaxpr, j.consts, list(consts) + list(carry) + list(x))
                ]
            return tuple(out[:ncar]), tuple(out[ncar:])

        with _at(eqn):
            carry, ys = lax.scan(
                step,
                tuple(init),
                tuple(xs),
                length=p["length"],
                reverse=p["reverse"],
                unroll=p.get("unroll", 1),
            )
        return list(carry) + list(ys)


def _poison(aval):
    shape = getattr(aval, "shape", ())
    dtype = getattr(aval, "dtype", jnp.float32)
    try:
        if np.issubdtype(dtype, np.floating):
            return jnp.full(shape, jnp.nan, dtype)
        return jnp.zeros(shape, dtype)
    except TypeError:  # a ref or token type
        return jnp.zeros((), jnp.int32)


def replay(call: CallRead, refs: dict, pids: list, nums: list, sizes) -> None:
    """Run ``call``'s index maps and body on tileproof refs (inside a tileproof body trace).

    ``refs`` maps operand names to tileproof Refs; ``pids``/``nums`` are the grid's
    program ids and extents (traced scalars); ``sizes(expr)`` evaluates a symbolic size.
    """
    _FALLBACK.append(call.kernel_loc)
    _SEEN.append(set())
    try:
        _replay(call, refs, pids, nums, sizes)
    finally:
        _FALLBACK.pop()
        _SEEN.pop()


def _whole(call: CallRead, refs: dict) -> dict:
    """Whole-array views of the scalar-prefetch operands (index maps and the body read them)."""
    return {
        b.name: _View(
            refs[b.name], b, tuple(("range", jnp.int32(0), _const(d, b)) for d in b.shape)
        )
        for b in call.blocks
        if b.role == "prefetch"
    }


def _replay(call: CallRead, refs: dict, pids: list, nums: list, sizes) -> None:
    r = _Replay(call, pids, nums, sizes)
    whole = _whole(call, refs)
    prefetch = [whole[b.name] for b in call.blocks if b.role == "prefetch"]
    views = []
    for b in call.blocks:
        if b.role == "prefetch":
            views.append(whole[b.name])
            continue
        ij = b.index_map
        try:
            idx = r.run(ij.jaxpr, ij.consts, list(pids) + prefetch)
        except _Unmodelled as u:
            _unsupported(u.what, u.loc)
            idx = [jnp.int32(0)] * len(b.block)
        dims = []
        with at_location(call.loc):  # Triton's block start arithmetic, at the pallas_call
            _block_dims(b, idx, dims, sizes)
        views.append(_View(refs[b.name], b, tuple(dims)))
    for s in call.scratch:
        _unsupported(f"scratch memory {s} is not modelled", call.loc)
        views.append(None)
    r.run(call.body, [], views)
    r.dma.finish()


def _block_dims(b: BlockRead, idx, dims: list, sizes) -> None:
    """Per array dimension of ``b``: a point (squeezed) or a range at the block's start."""
    for (kind, n), i in zip(b.block, idx):
        i = _i32(i)
        static = isinstance(n, (int, np.integer))
        if kind == "squeezed":
            dims.append(("point", i))
        elif kind == "element":
            dims.append(("range", i, n if static else None))
        else:  # Triton: start = block index * block size, in i32 (_eval_index_map)
            dims.append(("range", i * (n if static else _i32(sizes(n))), n if static else None))


def _const(d, b: BlockRead) -> int | None:
    """A whole-array view's extent: None when symbolic (only point indexing is modelled then)."""
    return d.const_value if d.is_const else None
