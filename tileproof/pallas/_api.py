"""``tileproof.pallas(fn, args=[Arg(...)], ...)``: a verifiable kernel from an unmodified ``pallas_call``.

The function is traced once, at declaration time, on ``jax.export`` symbolic
shapes; each ``pallas_call`` found becomes an ordinary tileproof
:class:`~tileproof.spec.Kernel` whose tensors are the call's operands (whole
arrays, symbolic shapes), whose grid is the call's grid, and whose body re-plays
the Pallas kernel body on them (:mod:`._body`).  Everything downstream (the
lowering, the static obligations, the numeric executor, ``tileproof check``,
JSON/SARIF, the pytest plugin) treats it exactly like a native spec.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import traceback as _tb
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import jax
import numpy as np

from .. import shapes
from ..spec import _ops as tpo
from ..spec._decl import Input, Output, Scratch, parse_condition
from ..spec._errors import Location, SpecError, caller_location
from ..spec._kernel import GridAxis, Kernel
from . import _tpu
from ._body import replay
from ._concrete import interpret_reference
from ._read import _OPS, CallRead, _pcore, _read_one, read_calls
from ._reduced import Traversed
from ._tables import table_range

__all__ = ["Arg", "pallas"]

BACKENDS = {"gpu": "triton", "triton": "triton", "tpu": "mosaic", "mosaic": "mosaic"}


@dataclass(frozen=True)
class Arg:
    """One argument of the user's function: a shape of size expressions and a dtype.

    ``values`` declares an integer argument's element range (``"0 <= v < P"``, a
    page table); ``distinct`` its elements pairwise different.  ``reduced`` (``"all"``
    or a ``tp.Region``) declares elements the kernel must read: the ``reads``
    obligation (a floor-divided reduction grid that drops a tail is a defect even when
    every output element is written); the argument must be the call's operand itself.
    """

    shape: tuple
    dtype: str = "float32"
    values: object = None
    distinct: bool = False
    reduced: object = None


def _frame_location(tb) -> Location | None:
    """The innermost frame of a Python traceback in the user's or a Pallas kernel's file."""
    best = None
    for fr, line in _tb.walk_tb(tb):
        f = os.path.abspath(fr.f_code.co_filename)
        if f.startswith(_OPS) or not (
            f"{os.sep}jax{os.sep}" in f
            or f"{os.sep}jaxlib{os.sep}" in f
            or f"{os.sep}tileproof{os.sep}" in f
            or f.startswith("<")
        ):
            best = Location(f, line)
    return best


def _symbolic_args(args: Sequence[Arg], assume: Sequence[str], where: Location):
    """ShapeDtypeStructs on jax.export symbolic dimensions, one scope for all of them.

    Conditions of the domain that JAX's symbolic shapes can hold (``>=``/``<=`` on
    sizes) are passed as the scope's constraints, so the function's own Python-level
    shape checks see them; the verifier still proves everything over the whole domain.
    """
    from jax import export

    exprs = []
    names: list[str] = []
    for k, a in enumerate(args):
        if not isinstance(a, Arg):
            raise SpecError(
                f"args[{k}] must be tileproof.pallas.Arg(shape, dtype), got {a!r}", where
            )
        dims = []
        for d in a.shape:
            try:
                e = shapes.as_expr(d)
            except shapes.ShapeError as err:
                raise SpecError(f"args[{k}]: {err}", where) from None
            dims.append(e)
            for n in sorted(e.free_symbols()):
                if n not in names:
                    names.append(n)
        exprs.append(dims)
    constraints = []
    for c in assume:
        text = str(c).replace("**", "^")
        if any(op in str(c) for op in (">=", "<=")) and "%" not in str(c) and "^" not in text:
            try:
                export.symbolic_shape(",".join(names) or "1", constraints=(str(c),))
                constraints.append(str(c))
            except Exception:  # not a constraint JAX can hold: the verifier still assumes it
                pass
    scope = export.SymbolicScope(constraints) if names else None
    sds = []
    for a, dims in zip(args, exprs):
        jd = tuple(shapes.to_jax(e, scope) if not e.is_const else e.const_value for e in dims)
        dt = jax.numpy.bfloat16 if a.dtype == "bfloat16" else np.dtype(a.dtype)
        sds.append(jax.ShapeDtypeStruct(jd, dt))
    return sds, exprs


def _trace(fn, sds, static, where: Location):
    f = functools.partial(fn, **dict(static or {}))
    try:
        try:
            with _dynamic_shapes(), _tpu.tracing_patches():
                return jax.make_jaxpr(f)(*sds)
        except SpecError:
            raise
        except Exception as first:
            # a grid extent computed from data (megablox's number of active tiles) is a
            # dynamic grid only outside Pallas' dynamic-shapes export mode
            # (jax/_src/pallas/core.py get_grid_mapping): try once more without it
            try:
                with _tpu.tracing_patches():
                    return jax.make_jaxpr(f)(*sds)
            except Exception:
                raise first from None
    except SpecError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else ""
        loc = _frame_location(e.__traceback__) or where
        raise SpecError(
            f"tracing {getattr(fn, '__name__', fn)!r} on symbolic shapes failed: "
            f"{type(e).__name__}: {msg}",
            loc,
            "Make the failing size concrete in args=, or state the fact the function checks "
            "(a divisibility as a shape like '16*k', a bound in assume=).",
        ) from None


def _grad_of(fn, argnums: list[int], static):
    """The gradient of ``sum(fn(*args))`` with respect to ``argnums``, as a function of all args."""
    import jax.numpy as jnp

    f = functools.partial(fn, **dict(static or {}))

    def grad_fn(*args):
        def loss(*xs):
            full = list(args)
            for i, x in zip(argnums, xs):
                full[i] = x
            out = f(*full)
            return sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(out))

        return jax.grad(loss, argnums=tuple(range(len(argnums))))(*[args[i] for i in argnums])

    grad_fn.__name__ = f"grad_{getattr(fn, '__name__', 'fn')}"
    return grad_fn


def _dynamic_shapes():
    """Pallas' own switch for symbolic block shapes and grids (whole-array refs of a symbolic
    array); ``jax/_src/pallas/core.py`` ``pallas_export_experimental``."""
    ctx = getattr(_pcore, "pallas_export_experimental", None)
    return ctx(dynamic_shapes=True) if ctx is not None else contextlib.nullcontext()


def _table_range(call: CallRead, k: int, b, ai) -> tuple[int, int] | None:
    """The inferred range of scalar-prefetch operand ``k`` when the wrapper passes a
    trace-time constant (not a user argument): see :mod:`._tables`."""
    consts = getattr(call, "operand_consts", None) or []
    init = consts[k] if k < len(consts) else None
    if ai is not None or init is None or b.role != "prefetch":
        return None
    invars = getattr(call.body, "invars", ())
    if k >= len(invars):
        return None
    return table_range(call.body, invars[k], init)


def _index_bits(b, assume) -> int:
    """Triton's offset width for an operand: 64 bits when the array may exceed 2**32 bytes.

    ``jax/_src/pallas/triton/lowering.py`` ``_compute_offsets_from_indices`` picks i64
    offsets iff ``prod(shape) * itemsize > 2**32`` and otherwise computes *element*
    offsets in i32.  For an itemsize >= 2 the i32 case holds at most ``2**31`` elements,
    so every offset fits: 64 (no element offset can overflow).  One-byte arrays of
    ``2**31 .. 2**32`` elements do overflow i32: they are checked at 32 bits.
    """
    itemsize = 2 if b.dtype == "bfloat16" else np.dtype(b.dtype).itemsize
    return 32 if itemsize == 1 else 64


def _build(
    call: CallRead,
    fn_name: str,
    args,
    arg_exprs,
    assume,
    texts,
    where,
    reference,
    defaults,
    numeric,
    backend: str,
    index: int,
    count: int,
    traced=None,
) -> Kernel:
    tensors = {}
    for k, b in enumerate(call.blocks):
        ai = call.operand_values[k] if k < len(call.operand_values) else None
        spec_arg = args[ai] if ai is not None else None
        kw: dict = {"index_bits": _index_bits(b, assume)}
        if spec_arg is not None and spec_arg.reduced is not None:
            if call.operand_args[k] != ai:
                raise SpecError(
                    f"args[{ai}] declares reduced=, but pallas_call {call.name} "
                    "reads a reshaped or computed copy of it: the region would "
                    "name other elements",
                    where,
                )
            kw["reduced"] = spec_arg.reduced
        if spec_arg is not None and spec_arg.values is not None:
            kw["values"] = spec_arg.values
            kw["distinct"] = spec_arg.distinct
        elif (rng := _table_range(call, k, b, ai)) is not None:
            # a prefetch table the wrapper fills with a constant: its values are the
            # constant's and what the kernel stores back (an inductive range, ._tables)
            kw["values"] = f"{rng[0]} <= v <= {rng[1]}"
        elif b.dtype.startswith("int") and b.role != "output":
            kw["values"] = f"{-(2**31)} <= v < 2**31" if b.dtype == "int32" else None
            if kw["values"] is None:
                kw.pop("values")
        if b.role == "input" and "reduced" not in kw:  # inferred unless stated (see _reduced)
            kw["reduced"] = Traversed(call.loc)
        shape = tuple(b.shape)
        decl = Output(shape, b.dtype, **kw) if b.role == "output" else Input(shape, b.dtype, **kw)
        object.__setattr__(decl, "where", call.loc)
        tensors[b.name] = decl
    grid = tuple(GridAxis(f"pid{a}", e) for a, e in enumerate(call.grid))
    problems = list(call.problems)
    # A backend whose rules are not modelled gets no schedule at all: its semantics differ
    # (Mosaic GPU's warpgroups), so replaying it with another backend's rules would report
    # wrong verdicts.  Tracing the kernel raises a spec error at the call instead (the kernel
    # is reported, never proved).
    refusal = None
    if call.backend not in ("triton", "mosaic"):
        refusal = (
            f"pallas_call {call.name} is lowered for {call.backend!r}, whose rules are not "
            "modelled yet (tileproof.pallas models Triton and Mosaic TPU)"
        )
    elif BACKENDS.get(backend, backend) != call.backend:
        refusal = (
            f"pallas_call {call.name} is lowered for {call.backend!r}, not the declared "
            f"backend {backend!r}"
        )
    if call.aliases:
        problems.append((f"input_output_aliases {call.aliases} are not modelled", call.loc))
    tpu = call.backend == "mosaic" and refusal is None
    claims: tuple = ()
    if tpu:
        # Mosaic TPU (jax/_src/pallas/mosaic/lowering.py): blocks are VMEM copies, arbitrary
        # axes are loops, outputs are written back; see tileproof/pallas/_tpu.py
        tp_plan = _tpu.plan(call, set(tensors))
        for b in call.blocks:
            # Mosaic indexes memrefs per dimension (no flattened offset): each dimension's
            # index is i32 arithmetic the model checks in its own width
            tensors[b.name] = dataclasses.replace(tensors[b.name], index_bits=64)
            object.__setattr__(tensors[b.name], "where", call.loc)
        for b in call.blocks:
            if b.name in tp_plan.bufs:
                # the per-program prefix is the model's (each core has its own VMEM)
                t = Scratch(_tpu.buffer_shape(call, tp_plan, b), b.dtype, index_bits=64)
                object.__setattr__(t, "where", call.loc)
                tensors[tp_plan.bufs[b.name]] = t
        for nm, shp, dt in tp_plan.scratch:
            if dt and dt != _tpu.DMA_SEM:
                t = Scratch(tuple(_tpu.grid_extents(call, tp_plan)) + tuple(shp), dt, index_bits=64)
                object.__setattr__(t, "where", call.loc)
                tensors[nm] = t
        ext = _tpu.grid_extents(call, tp_plan)
        axes = tp_plan.par or [0]
        grid = tuple(GridAxis(f"pid{a}", e) for a, e in zip(axes, ext))
        claims = tuple(_tpu.tiling_claims(call)) + tuple(_tpu.revisit_claims(call, tp_plan))

    def body(*refs):
        if refusal is not None:
            raise SpecError(
                refusal,
                call.loc,
                "Verify it with the backend the call is lowered "
                "for: backend='gpu' (Triton) or backend='tpu' (Mosaic).",
            )
        named = dict(zip(tensors, refs))
        for what, loc in problems:
            tpo.P.unsupported_p.bind(what=what, site=loc)
        pids = [tpo.program_id(a) for a in range(len(grid))]
        nums = [tpo.num_programs(a) for a in range(len(grid))]

        def sizes(d):  # a symbolic block size: an exact size expression
            return tpo.P.size_p.bind(name="", expr=shapes.from_jax(d))

        if tpu:
            _tpu.replay_tpu(call, tp_plan, named, pids, sizes)
        else:
            replay(call, named, pids, nums, sizes)

    body.__name__ = call.name
    name = fn_name if count == 1 else f"{fn_name}/{index}.{call.name}"  # no ':' (MODULE:KERNEL)
    ref_fn = _reference(call, reference, len(args)) if reference is not None else None
    numeric = dict(numeric or {})
    if ref_fn is None and traced is not None:
        # the call's operands are not the function's arguments (the function reshapes, pads or
        # splits them): compare with the same call in Pallas' interpret mode instead
        fn, static = traced
        outs = [b for b in call.blocks if b.role == "output"]
        ref_fn = interpret_reference(
            fn, static, args, index, [b.name for b in outs], [b.shape for b in outs]
        )
        numeric.setdefault("gradients", False)
    k = Kernel(
        name=name,
        body=body,
        tensors=tensors,
        grid=grid,
        assume=tuple(assume),
        assume_text=tuple(texts),
        defaults=dict(defaults or {}),
        reference=ref_fn,
        launch=None,
        ranks=None,
        index_bits=32,
        location=call.kernel_loc
        if call.kernel_loc.line
        else (call.loc if call.loc.line else where),
        numeric=numeric,
        doc=f"pallas_call {call.name} of {fn_name} (kernel at {call.kernel_loc})",
        claims=claims,
    )
    unknown = set(k.defaults) - set(k.sizes)
    if unknown:
        raise SpecError(f"defaults name unknown sizes: {', '.join(sorted(unknown))}", where)
    return k


def _reference(call: CallRead, reference: Callable, nargs: int):
    """The user's reference, on the call's operands: only when they *are* the function's args."""
    ins = [b for b in call.blocks if b.role != "output"]
    outs = [b for b in call.blocks if b.role == "output"]
    if (
        len(ins) != nargs
        or sorted(a for a in call.operand_args if a is not None) != list(range(nargs))
        or any(r is None for r in call.output_results)
    ):
        return None
    order = list(call.operand_args)
    res_order = list(call.output_results)

    def ref(*operands):
        by_arg = [None] * nargs
        for op, ai in zip(operands, order):
            by_arg[ai] = op
        res = reference(*by_arg)
        res = res if isinstance(res, (tuple, list)) else (res,)
        return {b.name: res[r] for b, r in zip(outs, res_order)}

    return ref


def pallas(
    fn: Callable,
    *,
    args: Sequence[Arg],
    static: Mapping[str, object] | None = None,
    assume: Sequence[object] = (),
    reference: Callable | None = None,
    backend: str = "gpu",
    name: str | None = None,
    defaults: Mapping[str, int] | None = None,
    numeric: Mapping[str, object] | None = None,
    grad: bool = False,
) -> Kernel | tuple[Kernel, ...]:
    """Verify the unmodified ``fn`` (a function that calls ``pl.pallas_call``) for every shape.

    ``args`` gives each positional argument's symbolic shape and dtype; ``static``
    keyword arguments are held concrete; ``assume`` is the domain of the sizes;
    ``reference`` a plain JAX function of the same arguments.  Returns the kernel of
    the function's one ``pallas_call`` (a tuple of kernels when it has several; put
    them in the module's ``KERNELS``).  ``grad=True`` traces the gradient of the sum of
    the function's outputs with respect to its floating-point arguments instead, so the
    forward *and* backward kernels of a ``custom_vjp`` are verified.
    """
    where = caller_location()
    if backend not in BACKENDS:
        raise SpecError(f"backend must be one of {sorted(BACKENDS)}, not {backend!r}", where)
    parsed = tuple(parse_condition(a, where, "the domain (assume=...)") for a in assume)
    texts = tuple(str(a) for a in assume)
    sds, exprs = _symbolic_args(args, texts, where)
    if grad:
        fn = _grad_of(fn, [k for k, a in enumerate(args) if "float" in a.dtype], static)
        static = None
    closed = _trace(fn, sds, static, where)
    calls = read_calls(closed)
    fn_name = name or getattr(fn, "__name__", None) or "pallas_fn"
    if not calls:
        raise SpecError(f"{fn_name} calls no pl.pallas_call (traced on the given args)", where)
    ks = tuple(
        _build(
            c,
            fn_name,
            list(args),
            exprs,
            parsed,
            texts,
            where,
            reference,
            defaults,
            numeric,
            BACKENDS[backend],
            i,
            len(calls),
            traced=(fn, static),
        )
        for i, c in enumerate(calls)
    )
    return ks[0] if len(ks) == 1 else ks


def _build_concrete(eqn, name: str) -> Kernel:
    """A kernel for one pallas_call equation traced at concrete shapes (no sizes, no reference)."""
    call = _read_one(eqn, [])
    nin = len([b for b in call.blocks if b.role != "output"])
    call.operand_args = [None] * nin
    call.operand_values = [None] * nin
    return _build(call, name, [], [], (), (), call.loc, None, None, None, call.backend, 0, 1)


class _CallableModule(type(sys)):
    """``import tileproof as tp; tp.pallas(fn, ...)`` and ``tileproof.pallas.Arg`` both work."""

    def __call__(self, *a, **kw):
        return pallas(*a, **kw)
