"""Trace a kernel body with ``jax.make_jaxpr`` and read it into the schedule model.

The body is traced once with :class:`~tileproof.spec.Ref` handles; the jaxpr
is then interpreted symbolically, equation by equation.  Counted loops
(``fori_loop`` appears as ``while`` with a counter, or as ``scan`` when its
bounds are static) become :class:`Loop` nodes over a fresh loop variable;
loop-carried integers are solved when they are inductions; ring provenance
carried through a loop is solved when each step shifts it by a constant.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import replace

import jax
import numpy as np

from .. import shapes
from ..spec._errors import UNKNOWN, Location, SpecError, location_from_traceback
from ..spec._kernel import Kernel
from ..spec._ops import Ref
from ._lanesplit import CUMULATIVE, ELEMENTWISE, REDUCE, split_axes
from ._model import (
    Access,
    Arith,
    Barrier,
    Branch,
    Comm,
    Data,
    Dim,
    Fold,
    LanePart,
    Lanes,
    Model,
    Node,
    SplitReduce,
    Unsupported,
    _children,
    coord,
)
from ._values import (
    SV,
    bool_sv,
    dtype_bits,
    elementwise,
    int_sv,
    literal,
    opaque,
    remap,
    shift_coords,
    wrap,
)

__all__ = ["lower", "trace"]

_CALLS = (
    "pjit",
    "jit",
    "closed_call",
    "core_call",
    "remat",
    "checkpoint",
    "custom_jvp_call",
    "custom_vjp_call",
    "custom_vjp_call_jaxpr",
    "custom_lin",
)
_ARITH = ("add", "sub", "mul", "neg", "shift_left", "integer_pow", "abs", "div")


TRACE_TIMEOUT_S = 60.0  # default; TILEPROOF_TRACE_TIMEOUT_S or trace(timeout_s=...) override


class _TraceTimeout(BaseException):
    """Raised into the body by the alarm: a BaseException, so a body's `except Exception`
    cannot swallow it."""


def trace_timeout() -> float:
    """The trace time limit in seconds (``TILEPROOF_TRACE_TIMEOUT_S``, default 60; 0: none)."""
    raw = os.environ.get("TILEPROOF_TRACE_TIMEOUT_S", "")
    try:
        return float(raw) if raw else TRACE_TIMEOUT_S
    except ValueError:
        return TRACE_TIMEOUT_S


def trace(kernel: Kernel, *, timeout_s: float | None = None):
    """The body's closed jaxpr, or a :class:`SpecError` at the user's line.

    Tracing runs the user's Python: any exception it raises (``SystemExit`` and
    ``KeyboardInterrupt`` included) is a spec error, and a body that does not finish within
    ``timeout_s`` seconds (default :func:`trace_timeout`) is stopped and reported.
    """
    limit = trace_timeout() if timeout_s is None else timeout_s
    refs = [Ref(name, decl) for name, decl in kernel.tensors.items()]
    try:
        with _alarm(limit):
            return jax.make_jaxpr(lambda: (kernel.body(*refs), None)[1])()
    except SpecError:
        raise
    except _TraceTimeout as e:
        raise SpecError(
            f"the body of kernel {kernel.name!r} did not finish tracing within {limit:g} s "
            "(stopped here)",
            location_from_traceback(e.__traceback__),
            "A loop in the body's Python code does not end: the body is traced once, so "
            "loops over traced values must be lax.fori_loop/while_loop (set "
            "TILEPROOF_TRACE_TIMEOUT_S to allow a slower trace).",
        ) from None
    except shapes.ShapeError as e:
        raise SpecError(str(e), location_from_traceback(e.__traceback__)) from None
    except (
        jax.errors.TracerBoolConversionError,
        jax.errors.ConcretizationTypeError,
        jax.errors.TracerIntegerConversionError,
    ) as e:
        raise SpecError(
            "Python control flow on a traced value (a program id, size, lane id, rank or data): "
            f"{type(e).__name__}",
            location_from_traceback(e.__traceback__),
            "The body is traced once for all programs; use `tp.when(cond)`, `lax.cond`, "
            "`lax.fori_loop` or `jnp.where` instead of Python `if`/`for`/`int()` on it.",
        ) from None
    except BaseException as e:  # SystemExit, KeyboardInterrupt too: the body raised it
        msg = str(e).splitlines()[0] if str(e) else ""
        raise SpecError(
            f"the body of kernel {kernel.name!r} does not trace with jax.make_jaxpr: "
            f"{type(e).__name__}" + (f": {msg}" if msg else ""),
            location_from_traceback(e.__traceback__),
            "Fix the body so that it runs under jax.make_jaxpr (see the message above).",
        ) from None


@contextlib.contextmanager
def _alarm(seconds: float):
    """Raise :class:`_TraceTimeout` in this thread after ``seconds`` (a real-time timer).

    Signals reach the main thread only; that is where ``tileproof check`` and its worker
    processes trace.  Elsewhere (a thread of the caller's) tracing runs without a limit.
    A timer already set by someone else is restored afterwards.
    """
    usable = (seconds and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def fire(signum, frame):
        raise _TraceTimeout()

    old = signal.signal(signal.SIGALRM, fire)
    prev = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if prev[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *prev)


def _loc_of(eqn) -> Location:
    site = eqn.params.get("site") if hasattr(eqn, "params") else None
    if isinstance(site, Location):
        return site
    try:
        from jax._src import source_info_util as siu

        fr = siu.user_frame(eqn.source_info.traceback)
        if fr is not None:
            return Location(os.path.abspath(fr.file_name), fr.start_line)
    except Exception:
        pass
    return UNKNOWN


class _Ctx:
    """Interpretation state: the kernel, fresh names, and where nodes go."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.names: set[str] = set(kernel.sizes) | {g.name for g in kernel.grid}
        self.data: dict[str, Data] = {}
        self.lanes: list[tuple[str, int]] = []  # (lane var, lane count), innermost last
        self.halving: list[tuple[int, int | None]] = []  # (lanes, halved axis) of halve regions
        self.depth = 0  # loops and branches around the current block
        self.exited = False  # an exit_if() was lowered: the rest is under its guard
        self.rank_var = kernel.ranks.name if kernel.ranks is not None else None
        if self.rank_var:
            self.names.add(self.rank_var)

    def fresh(self, base: str) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base)
        while "__" in base:  # `x__2` names a second instance, `_c0` a coordinate: never ours
            base = base.replace("__", "_")
        base = base.strip("_") or "t"
        if base[0].isdigit():
            base = "v" + base
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name


class _Block:
    """Nodes being collected; an early exit re-roots the rest under a guard."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes

    def add(self, node: Node) -> None:
        self.nodes.append(node)


def lower(kernel: Kernel) -> Model:
    """Lower a kernel spec to its schedule model."""
    closed = trace(kernel)
    ctx = _Ctx(kernel)
    body: list[Node] = []
    block = _Block(body)
    env = {}
    for v, c in zip(closed.jaxpr.constvars, closed.consts):
        env[v] = (
            literal(c)
            if np.ndim(c) == 0 or np.issubdtype(np.asarray(c).dtype, np.integer)
            else opaque(np.shape(c), "a constant")
        )
    _interp(ctx, closed.jaxpr, env, block, top=True)
    _unpin_written(ctx, body)
    ranks = None
    if kernel.ranks is not None:
        ranks = (ctx.rank_var, kernel.ranks.size, kernel.ranks.topology)
    return Model(
        name=kernel.name,
        source=str(kernel.location),
        sizes=kernel.sizes,
        assume=list(kernel.assume),
        grid=[(g.name, g.extent) for g in kernel.grid],
        tensors=kernel.tensors,
        body=body,
        index_bits=kernel.index_bits,
        ranks=ranks,
        launch=kernel.launch,
        data=ctx.data,
    )


def _unpin_written(ctx: _Ctx, body: list[Node]) -> None:
    """Reads of an input the kernel itself stores into (``updated=True``) are not one value
    per element: a read after the kernel's own write sees the new value.  Dropping their
    index keeps the verifier from equating two reads of one element (or treating a read as
    the same for every program); their declared range still holds, because every store into
    a tensor with ``values=`` must write values in that range (a ``bounds`` obligation).
    ``distinct=True`` is not checked on stores, so it is not trusted for a written tensor."""
    written: set[str] = set()
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, Access) and n.kind == "store":
            written.add(n.tensor)
        stack += _children(n)
    for name, d in list(ctx.data.items()):
        decl = ctx.kernel.tensors[d.tensor]
        if d.tensor in written and (decl.role == "input" or decl.distinct):
            ctx.data[name] = replace(d, index=())


# ----------------------------------------------------------------------------- walking


def _read(env, atom) -> SV:
    if hasattr(atom, "val"):  # Literal
        return literal(atom.val)
    return env[atom]


def _interp(ctx: _Ctx, jaxpr, env: dict, block: _Block, top: bool = False) -> list[SV]:
    lanes_stack: list[tuple[Lanes, _Block]] = []
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        ins = [_read(env, a) for a in eqn.invars]
        loc = _loc_of(eqn)
        if name == "tp_lanes_begin":
            var = ctx.fresh(f"lane{'' if not ctx.lanes else len(ctx.lanes)}")
            node = Lanes(eqn.params["n"], eqn.params["mode"], eqn.params["axis"], var, [], loc)
            block.add(node)
            lanes_stack.append((node, block))
            ctx.lanes.append((var, eqn.params["n"]))
            if eqn.params["mode"] == "halve":
                ctx.halving.append((eqn.params["n"], eqn.params["axis"]))
            block = _Block(node.body)
            continue
        if name == "tp_lanes_end":
            if not lanes_stack:
                raise SpecError(
                    "lanes() region closed in a different scope than it was opened", loc
                )
            _node, block = lanes_stack.pop()
            ctx.lanes.pop()
            if _node.mode == "halve":
                ctx.halving.pop()
            continue
        outs = _eqn(ctx, eqn, name, ins, loc, block, top and not lanes_stack)
        if isinstance(outs, _Block):  # an early exit re-rooted the block
            block = outs
            outs = []
        for v, sv in zip(eqn.outvars, outs):
            env[v] = sv
    if lanes_stack:
        raise SpecError("a lanes() region was not closed", lanes_stack[-1][0].loc)
    return [_read(env, v) for v in jaxpr.outvars]


def _need_int(sv: SV, what: str, loc: Location, block: _Block) -> shapes.Expr | None:
    if sv.is_int:
        return sv.expr
    if sv.is_bool:
        return shapes.where(sv.cond, 1, 0)
    block.add(
        Unsupported(f"{what} depends on {sv.why or 'a value the lowering cannot model'}", loc)
    )
    return None


def _need_cond(sv: SV, what: str, loc: Location, block: _Block) -> shapes.Formula | None:
    if sv.is_bool:
        return sv.cond
    if sv.is_int:
        return shapes.ne(sv.expr, 0)
    block.add(
        Unsupported(f"{what} depends on {sv.why or 'a value the lowering cannot model'}", loc)
    )
    return None


def _out_shape(eqn, k=0):
    return tuple(getattr(eqn.outvars[k].aval, "shape", ()))


def _eqn(ctx: _Ctx, eqn, name: str, ins: list[SV], loc: Location, block: _Block, top: bool):
    p = eqn.params
    if name.startswith("tp_"):
        return _kernel_op(ctx, eqn, name, ins, loc, block, top)
    if name in _CALLS:
        inner = p.get("jaxpr") or p.get("call_jaxpr") or p.get("fun_jaxpr")
        jname = p.get("name", "")
        if jname == "floor_divide" and all(a.is_int for a in ins):
            return [int_sv(shapes.floordiv(ins[0].expr, ins[1].expr), _out_shape(eqn),
                           ins[0].bits, ins[0].signed)]
        if jname == "remainder" and all(a.is_int for a in ins):
            return [int_sv(shapes.mod(ins[0].expr, ins[1].expr), _out_shape(eqn),
                           ins[0].bits, ins[0].signed)]
        closed = inner
        jx = closed.jaxpr if hasattr(closed, "jaxpr") else closed
        sub_env = dict(zip(jx.constvars, [literal(c) for c in getattr(closed, "consts", [])]))
        sub_env.update(zip(jx.invars, ins))
        return _interp(ctx, jx, sub_env, block)
    if name == "while":
        return _while(ctx, eqn, ins, loc, block)
    if name == "scan":
        return _scan(ctx, eqn, ins, loc, block)
    if name == "cond":
        return _cond(ctx, eqn, ins, loc, block)
    shape = _out_shape(eqn)
    if name == "iota":
        dim = p["dimension"]
        return [int_sv(shapes.sym(coord(dim)), shape, *dtype_bits(p["dtype"]))]
    if name == "convert_element_type":
        return [_convert(eqn, ins[0], np.dtype(p["new_dtype"]), shape)]
    if name in ("broadcast_in_dim", "reshape", "squeeze", "transpose"):
        return [_move_axes(eqn, name, ins[0], shape, loc, block)]
    if name in ("copy", "copy_p", "optimization_barrier"):
        return ins
    if name == "dot_general":
        return [_dot(eqn, ins, loc, block)]
    splits = split_axes(name, eqn, ins, loc, block)
    prov = next((a.prov for a in ins if a.prov is not None), None)
    if name in REDUCE or name in CUMULATIVE:
        return [
            opaque(v.aval.shape, f"{name} of a tile", prov, sp)
            for v, sp in zip(eqn.outvars, splits)
        ]
    res = None
    if len(eqn.outvars) == 1 and name in ELEMENTWISE:
        res = elementwise(name, [_implicit_broadcast(a, shape) for a in ins], shape, p)
    elif name == "slice" and all(not a.is_opaque for a in ins):
        res = _slice(ins[0], p, shape)
    if res is not None:
        if res.is_opaque:
            return [replace(res, split_axis=splits[0])]
        if name in _ARITH and res.is_int and res.signed and not res.expr.is_const:
            block.add(Arith(res.expr, res.bits, name, loc, shape))
        return [res]
    return [
        opaque(getattr(v.aval, "shape", ()), f"the primitive {name}", prov, sp)
        for v, sp in zip(eqn.outvars, splits)
    ]


def _implicit_broadcast(x: SV, shape) -> SV:
    """An operand of extent 1 along an axis the result spans (jaxprs broadcast those
    implicitly): its coordinate there is 0, not the result's coordinate."""
    if x.is_opaque or len(x.shape) != len(shape) or tuple(x.shape) == tuple(shape):
        return x
    repl = {coord(k): shapes.as_expr(0) for k, n in enumerate(x.shape) if n == 1 != shape[k]}
    return shift_coords(x, repl, shape) if repl else x


def _merged_split(src: tuple, dst: tuple, axis: int) -> int | None:
    """The result axis a row-major reshape merges split axis ``axis`` into, when the lanes'
    shares stay contiguous there: every result axis is a run of consecutive operand axes
    (merges only) and the split axis is the outermost axis of extent > 1 in its run, so a
    lane's block of it, times everything inside, is a block of the merged axis."""
    i = 0
    for j, n in enumerate(dst):
        run, prod = [], 1
        while i < len(src) and (prod < n or (src[i] == 1 and prod == n and not run)):
            run.append(i)
            prod *= src[i]
            i += 1
        if prod != n:
            return None
        if axis in run:
            outer = [k for k in run if src[k] != 1]
            return j if outer and outer[0] == axis else None
    return None


def _slice(x: SV, p, shape) -> SV:
    """``slice`` of an integer/boolean array: coordinate ``c`` of the result is coordinate
    ``start + stride * c`` of the operand (exact)."""
    strides = p.get("strides") or (1,) * len(shape)
    repl = {
        coord(k): int(st) + int(sd) * shapes.sym(coord(k))
        for k, (st, sd) in enumerate(zip(p["start_indices"], strides))
    }
    return shift_coords(x, repl, shape)


def _move_axes(eqn, name: str, x: SV, shape, loc: Location, block: _Block) -> SV:
    """``broadcast_in_dim``, ``reshape``, ``squeeze``, ``transpose``: rename coordinates.

    Exact when axes are only permuted, inserted or dropped with extent 1; a reshape that
    merges or splits axes (or reorders them first: ``dimensions``, as ``order="F"`` traces)
    makes an integer array opaque, and a lane-split tile whose split axis it cannot follow
    unsupported (never the identity)."""
    p = eqn.params
    mapping: dict[int, int | None] | None
    reorders = False
    if name == "transpose":
        mapping = {old: new for new, old in enumerate(p["permutation"])}
    elif name == "broadcast_in_dim":
        bd = p["broadcast_dimensions"]
        mapping = {k: (bd[k] if x.shape[k] == shape[bd[k]] else None) for k in range(len(x.shape))}
    else:
        mapping = None
        dims = p.get("dimensions") if name == "reshape" else None
        src = [k for k, n in enumerate(x.shape) if n != 1]
        dst = [k for k, n in enumerate(shape) if n != 1]
        reorders = dims is not None and tuple(dims) != tuple(range(len(x.shape)))
        if not reorders and [x.shape[k] for k in src] == [shape[k] for k in dst]:
            mapping = {k: None for k in range(len(x.shape))}
            mapping.update(dict(zip(src, dst)))
    if x.is_opaque and x.split_axis is not None and mapping is None and name == "reshape":
        merged = _merged_split(x.shape, tuple(shape), x.split_axis)
        if merged is not None and not reorders:
            return opaque(shape, f"a reshape {x.shape} -> {tuple(shape)}", x.prov, merged)
    if x.split_axis is not None and (mapping is None or mapping.get(x.split_axis) is None):
        block.add(
            Unsupported(
                f"a {name} {x.shape} -> {tuple(shape)} of a tile split across lanes (split "
                f"axis {x.split_axis}) that merges or drops the split axis: the lowering cannot "
                "follow the lanes' shares through it",
                loc,
            )
        )
        return opaque(shape, f"a {name} of a lane-split tile", x.prov)
    if mapping is None:
        return opaque(shape, f"a {name} {x.shape} -> {tuple(shape)}", x.prov)
    return remap(x, mapping, shape)


def _convert(eqn, x: SV, new: np.dtype, shape) -> SV:
    """``convert_element_type``: integer casts wrap exactly (see :func:`._values.wrap`).

    A cast that cannot change the value (to a type of the same signedness at least as
    wide, or unsigned to a wider signed type) keeps the expression; every other integer
    cast reduces it modulo ``2**bits`` into the new type's range, so a narrowing cast is
    never assumed to fit and ``x.astype(uint32) < n`` compares the wrapped value.
    """
    if np.issubdtype(new, np.integer):
        bits, signed = dtype_bits(new)
        if x.is_bool:
            return int_sv(shapes.where(x.cond, 1, 0), shape, bits, signed)
        if not x.is_int:
            return replace(x, shape=tuple(shape))  # opaque stays opaque (floats to ints too)
        old = np.dtype(getattr(eqn.invars[0].aval, "dtype", np.int32))
        if not np.issubdtype(old, np.integer):
            return opaque(shape, f"an integer cast from {old}")
        obits, osigned = dtype_bits(old)
        fits = bits >= obits if signed == osigned else (signed and bits > obits)
        e = x.expr if fits else wrap(x.expr, bits, signed)
        return int_sv(e, shape, bits, signed)
    if new == np.dtype(bool):
        return bool_sv(shapes.ne(x.expr, 0), shape) if x.is_int else x
    return opaque(shape, x.why or "a value converted to floating point", x.prov, x.split_axis)


def _dot(eqn, ins, loc, block) -> SV:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = ins[0], ins[1]
    for x, contract in ((lhs, lc), (rhs, rc)):
        if x.split_axis is not None and x.split_axis in contract:
            block.add(SplitReduce("dot_general", x.split_axis, loc))
    lb_split = lhs.split_axis is not None and lhs.split_axis in lb
    rb_split = rhs.split_axis is not None and rhs.split_axis in rb
    free_split = [x.split_axis is not None and x.split_axis not in (*c, *b)
                  for x, c, b in ((lhs, lc, lb), (rhs, rc, rb))]
    same_batch = (lb_split and rb_split
                  and tuple(lb).index(lhs.split_axis) == tuple(rb).index(rhs.split_axis))
    if all(free_split) or ((lb_split or rb_split) and not same_batch):
        # both sides' free axes split (each lane pairs only its own shares: the cross-lane
        # blocks are missing), or a batch axis split on one side only
        block.add(Unsupported(
            "a matrix product of tiles split across lanes that pairs only each lane's "
            "shares: the lowering cannot follow the lanes' shares through it", loc))
        return opaque(_out_shape(eqn), "a matrix product",
                      lhs.prov if lhs.prov is not None else rhs.prov)
    split = None
    lfree = [k for k in range(len(lhs.shape)) if k not in lc and k not in lb]
    rfree = [k for k in range(len(rhs.shape)) if k not in rc and k not in rb]
    order = [("l", k) for k in lb] + [("l", k) for k in lfree] + [("r", k) for k in rfree]
    for pos, (side, k) in enumerate(order):
        x = lhs if side == "l" else rhs
        if x.split_axis == k:
            split = pos
    prov = lhs.prov if lhs.prov is not None else rhs.prov
    return opaque(_out_shape(eqn), "a matrix product", prov, split)


# ----------------------------------------------------------------------- kernel ops


def _kernel_op(ctx: _Ctx, eqn, name: str, ins: list[SV], loc: Location, block: _Block, top: bool):
    k = ctx.kernel
    p = eqn.params
    if name == "tp_size":
        if p["name"] not in k.sizes:
            raise SpecError(
                f"size({p['name']!r}) names no size of kernel {k.name!r} "
                f"(sizes: {', '.join(k.sizes)})",
                loc,
            )
        return [int_sv(shapes.sym(p["name"]))]
    if name in ("tp_program_id", "tp_num_programs"):
        axis = p["axis"]
        if not 0 <= axis < len(k.grid):
            raise SpecError(f"program_id({axis}) but the grid has {len(k.grid)} axes", loc)
        g = k.grid[axis]
        return [int_sv(shapes.sym(g.name) if name == "tp_program_id" else g.extent)]
    if name in ("tp_lane_id", "tp_num_lanes"):
        if not ctx.lanes:
            raise SpecError("lane_id() outside a `with lanes(n):` region", loc)
        var, n = ctx.lanes[-1]
        return [int_sv(shapes.sym(var) if name == "tp_lane_id" else n)]
    if name in ("tp_rank_id", "tp_num_ranks"):
        if k.ranks is None:
            raise SpecError(
                "rank_id()/num_ranks() in a kernel declared without ranks=Ranks(...)", loc
            )
        return [int_sv(shapes.sym(ctx.rank_var) if name == "tp_rank_id" else k.ranks.size)]
    if name in ("tp_load", "tp_store"):
        return _access(ctx, eqn, name, ins, loc, block)
    if name == "tp_barrier":
        if p["scope"] == "launch" and (not top or ctx.depth or ctx.exited):
            raise SpecError(
                "barrier('launch') inside a loop, branch, lanes region or after exit_if(): "
                "a launch boundary ends the launch for every program at once",
                loc,
                "Put the launch boundary at the top level of the body; use barrier('grid') "
                "for a barrier that programs wait at.",
            )
        block.add(Barrier(p["scope"], loc))
        return []
    if name == "tp_exit":
        if not top or ctx.depth:
            raise SpecError(
                "exit_if() is supported at the top level of the body only "
                "(not inside loops, branches or lanes)",
                loc,
            )
        cond = _need_cond(ins[0], "the early-exit condition", loc, block)
        if cond is None:
            return []
        ctx.exited = True
        guard = Branch(shapes.negate(cond), [], [], loc, exit=True)
        block.add(guard)
        return _Block(guard.then)
    if name == "tp_lane_part":
        tile = ins[0]
        axis, n = p["axis"], p["n"]
        if not 0 <= axis < len(tile.shape):
            raise SpecError(f"lane_part(axis={axis}) of a tile of shape {tile.shape}", loc)
        block.add(LanePart(tile.shape[axis], n, axis, tile.shape, loc))
        return [opaque(_out_shape(eqn), "a lane's share of a tile", tile.prov, axis)]
    if name == "tp_sendrecv":
        value, dst, src, send, recv = ins
        d = _need_int(dst, "the destination rank", loc, block)
        s = _need_int(src, "the source rank", loc, block)
        cs = _need_cond(send, "the send condition", loc, block)
        cr = _need_cond(recv, "the receive condition", loc, block)
        if None in (d, s, cs, cr):
            return [opaque(value.shape, "an unmodelled ring step")]
        block.add(Comm(d, s, cs, cr, value.prov, loc))
        prov = value.prov.subs({ctx.rank_var: s}) if value.prov is not None else None
        return [replace(value, prov=prov)]
    if name == "tp_fold":
        value, when = ins
        cond = _need_cond(when, "the fold condition", loc, block)
        if value.prov is None:
            block.add(
                Unsupported(
                    "fold() of a value whose ring provenance is unknown "
                    "(load it from a sharded tensor and move it with sendrecv)",
                    loc,
                )
            )
        block.add(Fold(value.prov, cond if cond is not None else shapes.conj(), loc))
        return [value]
    raise SpecError(f"unknown kernel operation {name}", loc)


def _access(ctx: _Ctx, eqn, name: str, ins: list[SV], loc: Location, block: _Block):
    p = eqn.params
    tensor = p["tensor"]
    decl = ctx.kernel.tensors[tensor]
    ops = ins[1:] if name == "tp_store" else ins
    dims_spec = p["dims"]
    starts, mask_sv = ops[: len(dims_spec)], (ops[len(dims_spec)] if p["has_mask"] else None)
    dims = []
    ok = True
    for (kind, size), st in zip(dims_spec, starts):
        e = _need_int(st, f"an index of {tensor}", loc, block)
        if e is None:
            ok = False
            e = shapes.as_expr(0)
        dims.append(Dim(e, size, kind == "point"))
    mask = None
    if mask_sv is not None:
        mask = _need_cond(mask_sv, f"the mask of an access to {tensor}", loc, block)
        if mask is None:
            ok = False
    if not ok:
        if name == "tp_store":
            return []
        return [opaque(_out_shape(eqn), f"an unmodelled load of {tensor}")]
    kind = "store" if name == "tp_store" else "load"
    node = Access(kind, tensor, tuple(dims), mask, loc)
    block.add(node)
    _halved_tile(ctx, node, loc, block)
    if kind == "store":
        if decl.is_index and decl.values is not None:
            _stored_value(node, ins[0])
        return []
    shape = _out_shape(eqn)
    if decl.is_index:
        return [_index_value(ctx, node, decl, shape)]
    prov = shapes.sym(ctx.rank_var) if decl.sharded and ctx.rank_var else None
    return [opaque(shape, f"data loaded from {tensor}", prov)]


def _index_value(ctx: _Ctx, node: Access, decl, shape) -> SV:
    """The value a load of an index tensor reads.

    One element (every tile dimension of extent 1): a data symbol constrained by the
    declared range, bound to that element (``node.value``); where the mask is off the
    load reads 0, so the value is ``where(mask, v, 0)`` and the range holds only for
    ``v``.  A tile of several elements is opaque: its elements are independent values,
    and one symbol for all of them would assume they are equal.
    """
    tile = [d.size for d in node.dims if not d.point]
    if any(n != 1 for n in tile):
        return opaque(
            shape,
            f"a tile of {int(np.prod(tile))} values of index tensor {node.tensor} loaded at "
            f"{node.loc.short} (its elements may differ; load index values one element at a time)",
        )
    dname = ctx.fresh(f"{node.tensor}_{node.loc.line}")
    rng = decl.values.subs({"v": shapes.sym(dname)}) if decl.values is not None else shapes.conj()
    bits, signed = dtype_bits(decl.dtype)
    ctx.data[dname] = Data(
        dname, node.tensor, tuple(d.start for d in node.dims), rng, node.loc, bits, signed
    )
    node.value = dname
    val = shapes.sym(dname)
    if node.mask is not None:  # coordinates of a one-element tile are all 0
        at0 = {coord(k): 0 for k in range(len(tile))}
        val = shapes.where(node.mask.subs(at0), val, 0)
    return int_sv(val, shape, bits, signed)


def _stored_value(node: Access, value: SV) -> None:
    """Record what a store into an index tensor with declared ``values=`` writes, for the
    check that it stays in that range (reads of the tensor trust it)."""
    if value.is_int:
        node.stored = value.expr
    elif value.is_bool:
        node.stored = shapes.where(value.cond, 1, 0)
    else:
        node.stored_why = value.why or "a value the lowering cannot model"


def _halved_tile(ctx: _Ctx, node: Access, loc: Location, block: _Block) -> None:
    """Inside ``lanes(n, halve=axis)`` every tile the lanes load or store is halved along
    ``axis``: that dimension must divide by ``n`` (a ``split`` obligation of its own, so a
    declared split over an odd tile is caught without a ``lane_part`` call)."""
    tile = tuple(d.size for d in node.dims if not d.point)
    for n, axis in ctx.halving:
        if axis is not None and 0 <= axis < len(tile):
            what = f"the {node.kind} of {node.tensor}"
            block.add(LanePart(tile[axis], n, axis, tile, loc, what))


# ------------------------------------------------------------------------ control flow

from ._loops import _cond, _scan, _while  # noqa: E402  (they call back into _interp)
