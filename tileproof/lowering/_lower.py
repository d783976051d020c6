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
from ..model import (
    Access,
    Arith,
    Assert,
    Barrier,
    Branch,
    Claim,
    Comm,
    Dim,
    Divide,
    Fold,
    LanePart,
    Lanes,
    Model,
    Node,
    SplitReduce,
    Unsupported,
)
from ..spec._errors import UNKNOWN, Location, SpecError, location_from_traceback
from ..spec._kernel import Kernel
from ..spec._ops import Ref
from ._arith import iota, is_jnp_call, zero_divisor
from ._data import (
    convert,
    halved_tile,
    implicit_broadcast,
    index_value,
    move_axes,
    slice_of,
    stored_value,
    unpin_written,
)
from ._jaxcompat import CALLS
from ._lanesplit import CUMULATIVE, ELEMENTWISE, REDUCE, split_axes
from ._loops import UNTRACKED, _cond, _scan
from ._state import _Block, _Ctx, _need_cond, _need_int
from ._values import (
    MIXED,
    SV,
    elementwise,
    int_sv,
    is_mixed,
    literal,
    opaque,
    ring_origin,
)
from ._while import lower_while

__all__ = ["lower", "trace"]

_CALLS = (*CALLS, "custom_lin")
_ARITH = ("add", "sub", "mul", "neg", "shift_left", "integer_pow", "abs", "div")


TRACE_TIMEOUT_S = 60.0  # default; TILEPROOF_TRACE_TIMEOUT_S or trace(timeout_s=...) override


class _TraceTimeout(BaseException):
    """Raised into the body by the alarm: a BaseException, so a body's `except Exception`
    cannot swallow it."""


def trace_timeout() -> float:
    """The trace limit in CPU seconds (``TILEPROOF_TRACE_TIMEOUT_S``, default 60; 0: none)."""
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
            f"of CPU time ({_wall_limit(limit):g} s of real time at most; stopped here)",
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
    """Raise :class:`_TraceTimeout` in this thread after ``seconds`` of CPU time, or after
    :func:`_wall_limit` of real time.

    A Python loop that never ends spins the CPU, so the limit counts the process's CPU
    time (``ITIMER_PROF``): on a loaded machine (a CI runner, eight workers on two cores)
    a normal trace takes longer in real time, and a real-time limit failed correct
    kernels.  The real-time backstop stops a trace blocked without spinning (a wait).
    Signals reach the main thread only; that is where ``tileproof check`` and its worker
    processes trace.  Elsewhere (a thread of the caller's) tracing runs without a limit.
    Timers already set by someone else are restored afterwards.
    """
    usable = (
        seconds
        and seconds > 0
        and hasattr(signal, "setitimer")
        and hasattr(signal, "ITIMER_PROF")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def fire(signum, frame):
        raise _TraceTimeout()

    timers = (
        (signal.SIGPROF, signal.ITIMER_PROF, seconds),
        (signal.SIGALRM, signal.ITIMER_REAL, _wall_limit(seconds)),
    )
    saved = []
    for sig, which, after in timers:
        saved.append((sig, which, signal.signal(sig, fire), signal.setitimer(which, after)))
    try:
        yield
    finally:
        for sig, which, old, prev in saved:
            signal.setitimer(which, 0)
            signal.signal(sig, old)
            if prev[0] > 0:
                signal.setitimer(which, *prev)


def _wall_limit(seconds: float) -> float:
    """The real-time backstop of a ``seconds`` CPU-time trace limit."""
    return max(4 * seconds, seconds + 60)


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


def lower(kernel: Kernel) -> Model:
    """Lower a kernel spec to its schedule model."""
    closed = trace(kernel)
    ctx = _Ctx(kernel, _interp)
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
    unpin_written(ctx, body)
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
        index_bits=kernel.index_bits or 32,  # None: not declared, the default width
        ranks=ranks,
        launch=kernel.launch,
        data=ctx.data,
        claims=list(getattr(kernel, "claims", ())),
    )


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
        if loc is UNKNOWN and ctx.call_locs:  # inside jnp's own jit (jnp.sort, jnp.pad, ...)
            loc = ctx.call_locs[-1]
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


def _divide(divisor: SV, loc: Location, block: _Block, shape) -> None:
    """Record a division by a non-constant integer divisor (see :class:`Divide`)."""
    if not divisor.expr.is_const:
        block.add(Divide(divisor.expr, loc, tuple(shape)))


def _out_shape(eqn, k=0):
    return tuple(getattr(eqn.outvars[k].aval, "shape", ()))


def _eqn(ctx: _Ctx, eqn, name: str, ins: list[SV], loc: Location, block: _Block, top: bool):
    p = eqn.params
    if name.startswith("tp_"):
        return _kernel_op(ctx, eqn, name, ins, loc, block, top)
    if name in _CALLS:
        inner = p.get("jaxpr") or p.get("call_jaxpr") or p.get("fun_jaxpr")
        jname = p.get("name", "")
        if (
            jname in ("floor_divide", "remainder")
            and all(a.is_int for a in ins)
            and not is_jnp_call(jname, eqn, inner)
        ):
            jname = ""  # a function of the user's that only has jnp's name: interpret it
        if jname in ("floor_divide", "remainder") and all(a.is_int for a in ins):
            zero = zero_divisor(jname, ins, loc, block, _out_shape(eqn))
            if zero is not None:
                return [zero]
            _divide(ins[1], loc, block, _out_shape(eqn))
        if jname == "floor_divide" and all(a.is_int for a in ins):
            res = int_sv(
                shapes.floordiv(ins[0].expr, ins[1].expr),
                _out_shape(eqn),
                ins[0].bits,
                ins[0].signed,
            )
            if res.signed and not res.expr.is_const:
                # INT_MIN // -1 overflows (as `div`); the only quotient that can: -a where the
                # divisor is -1.  Stated without the division, so a zero divisor is still
                # reported where the quotient is used (a loop bound, an index), not here.
                neg = shapes.where(shapes.eq(ins[1].expr, -1), -ins[0].expr, 0)
                block.add(Arith(neg, res.bits, "floor_divide", loc, res.shape))
            return [res]
        if jname == "remainder" and all(a.is_int for a in ins):
            return [
                int_sv(
                    shapes.mod(ins[0].expr, ins[1].expr),
                    _out_shape(eqn),
                    ins[0].bits,
                    ins[0].signed,
                )
            ]
        closed = inner
        jx = closed.jaxpr if hasattr(closed, "jaxpr") else closed
        sub_env = dict(zip(jx.constvars, [literal(c) for c in getattr(closed, "consts", [])]))
        sub_env.update(zip(jx.invars, ins))
        ctx.call_locs.append(loc)
        try:
            return _interp(ctx, jx, sub_env, block)
        finally:
            ctx.call_locs.pop()
    if name in ("while", "scan", "cond"):
        # what JAX itself adds inside (a fori_loop's counter increment) has no user frame:
        # it is located at the loop or branch, so no node (an overflow check) is unlocated
        ctx.call_locs.append(loc)
        try:
            return {"while": lower_while, "scan": _scan, "cond": _cond}[name](
                ctx, eqn, ins, loc, block
            )
        finally:
            ctx.call_locs.pop()
    shape = _out_shape(eqn)
    if name == "iota":
        return [iota(p, shape)]
    if name == "convert_element_type":
        return [convert(eqn, ins[0], np.dtype(p["new_dtype"]), shape)]
    if name in ("broadcast_in_dim", "reshape", "squeeze", "transpose"):
        return [move_axes(eqn, name, ins[0], shape, loc, block)]
    if name in ("copy", "copy_p", "optimization_barrier"):
        return ins
    if name == "dot_general":
        return [_dot(eqn, ins, loc, block)]
    splits = split_axes(name, eqn, ins, loc, block)
    if name in REDUCE or name in CUMULATIVE:
        prov, valid = ring_origin(ins)
        return [
            opaque(v.aval.shape, f"{name} of a tile", prov, sp, valid)
            for v, sp in zip(eqn.outvars, splits)
        ]
    res = None
    if name in ("div", "rem") and all(a.is_int for a in ins):
        zero = zero_divisor(name, ins, loc, block, shape)
        if zero is not None:
            return [zero]
    if len(eqn.outvars) == 1 and name in ELEMENTWISE:
        res = elementwise(name, [implicit_broadcast(a, shape) for a in ins], shape, p)
    elif name == "slice" and all(not a.is_opaque for a in ins):
        res = slice_of(ins[0], p, shape)
    if res is not None:
        if res.is_opaque:
            return [replace(res, split_axis=splits[0])]
        if name in ("div", "rem") and len(ins) == 2 and ins[1].is_int:
            _divide(ins[1], loc, block, shape)
        if name in _ARITH and res.is_int and res.signed and not res.expr.is_const:
            block.add(Arith(res.expr, res.bits, name, loc, shape))
        return [res]
    prov, valid = ring_origin(ins)
    return [
        opaque(getattr(v.aval, "shape", ()), f"the primitive {name}", prov, sp, valid)
        for v, sp in zip(eqn.outvars, splits)
    ]


def _dot(eqn, ins, loc, block) -> SV:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lhs, rhs = ins[0], ins[1]
    for x, contract in ((lhs, lc), (rhs, rc)):
        if x.split_axis is not None and x.split_axis in contract:
            block.add(SplitReduce("dot_general", x.split_axis, loc))
    lb_split = lhs.split_axis is not None and lhs.split_axis in lb
    rb_split = rhs.split_axis is not None and rhs.split_axis in rb
    free_split = [
        x.split_axis is not None and x.split_axis not in (*c, *b)
        for x, c, b in ((lhs, lc, lb), (rhs, rc, rb))
    ]
    same_batch = (
        lb_split and rb_split and tuple(lb).index(lhs.split_axis) == tuple(rb).index(rhs.split_axis)
    )
    if all(free_split) or ((lb_split or rb_split) and not same_batch):
        # both sides' free axes split (each lane pairs only its own shares: the cross-lane
        # blocks are missing), or a batch axis split on one side only
        block.add(
            Unsupported(
                "a matrix product of tiles split across lanes that pairs only each lane's "
                "shares: the lowering cannot follow the lanes' shares through it",
                loc,
            )
        )
        return opaque(_out_shape(eqn), "a matrix product", *ring_origin([lhs, rhs]))
    split = None
    lfree = [k for k in range(len(lhs.shape)) if k not in lc and k not in lb]
    rfree = [k for k in range(len(rhs.shape)) if k not in rc and k not in rb]
    order = [("l", k) for k in lb] + [("l", k) for k in lfree] + [("r", k) for k in rfree]
    for pos, (side, k) in enumerate(order):
        x = lhs if side == "l" else rhs
        if x.split_axis == k:
            split = pos
    prov, valid = ring_origin([lhs, rhs])
    return opaque(_out_shape(eqn), "a matrix product", prov, split, valid)


# ----------------------------------------------------------------------- kernel ops


def _kernel_op(ctx: _Ctx, eqn, name: str, ins: list[SV], loc: Location, block: _Block, top: bool):
    k = ctx.kernel
    p = eqn.params
    if name == "tp_size":
        if p.get("expr") is not None:  # a front end's exact size expression (no int32 arithmetic)
            unknown = set(p["expr"].free_symbols()) - set(k.sizes)
            if unknown:
                raise SpecError(
                    f"a size expression {p['expr']} names unknown sizes "
                    f"{', '.join(sorted(unknown))}",
                    loc,
                )
            return [int_sv(p["expr"])]
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
    if name == "tp_unsupported":  # a front end's construct with no exact model (fail closed)
        block.add(Unsupported(p["what"], loc, only=tuple(p.get("only", ()))))
        return []
    if name == "tp_assert":  # a front end's rule (a DMA's ordering): proved, never assumed
        cond = _asserted(p, ins, loc, block)
        if cond is not None:
            block.add(
                Assert(
                    cond,
                    p["kind"],
                    p["what"],
                    loc,
                    p.get("tensor", ""),
                    p.get("hint", ""),
                    p.get("broken", ""),
                )
            )
        return []
    if name == "tp_claim":  # a front end's divisibility hint: proved, never assumed
        x = _need_int(ins[0], f"the value of {p['what']}", loc, block)
        if x is not None:
            block.add(Claim(x, int(p["modulus"]), p["what"], loc, tuple(ins[0].shape)))
        return []
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
        ctx.path.append(shapes.negate(cond))  # top level only: it holds for the rest
        guard = Branch(shapes.negate(cond), [], [], loc, exit=True)
        block.add(guard)
        return _Block(guard.then)
    if name == "tp_lane_part":
        tile = ins[0]
        axis, n = p["axis"], p["n"]
        if not 0 <= axis < len(tile.shape):
            raise SpecError(f"lane_part(axis={axis}) of a tile of shape {tile.shape}", loc)
        block.add(LanePart(tile.shape[axis], n, axis, tile.shape, loc))
        return [opaque(_out_shape(eqn), "a lane's share of a tile", tile.prov, axis, tile.valid)]
    if name == "tp_sendrecv":
        value, dst, src, send, recv = ins
        d = _need_int(dst, "the destination rank", loc, block)
        s = _need_int(src, "the source rank", loc, block)
        cs = _need_cond(send, "the send condition", loc, block)
        cr = _need_cond(recv, "the receive condition", loc, block)
        if None in (d, s, cs, cr):
            return [opaque(value.shape, "an unmodelled ring step")]
        block.add(Comm(d, s, cs, cr, value.prov, loc))
        if value.prov is None:
            return [replace(value, valid=None)]
        # What arrives is the sender's value: its origin and validity seen from rank ``s``;
        # it arrives only where this rank receives AND rank ``s`` sends at this step, to this
        # rank (elsewhere the tile is poison, and has no origin).  The send/recv matching
        # obligation reports the mismatch too, but the fold coverage proof must not lean on it.
        at_src = {ctx.rank_var: s}
        n, me = ctx.kernel.ranks.size, shapes.sym(ctx.rank_var)
        if ctx.kernel.ranks.topology == "ring":  # ranks wrap: rank -1 is rank n - 1
            src_rank = {ctx.rank_var: shapes.mod(s, n)}
            sends_here = shapes.conj(
                cs.subs(src_rank), shapes.eq(shapes.mod(d.subs(src_rank), n), me)
            )
        else:  # an open mesh: a source off the edge sends nothing
            src_rank = at_src
            sends_here = shapes.conj(
                shapes.ge(s, 0), shapes.lt(s, n), cs.subs(at_src), shapes.eq(d.subs(at_src), me)
            )
        # the sender's value is valid as seen at the rank that really sends (mod n on a
        # ring: its validity may mention the rank, e.g. ``r > 0``, so rank -1 is rank n - 1)
        sent = value.valid.subs(src_rank) if value.valid is not None else shapes.conj()
        # ... and the sender reaches this step: it has not left early, takes the same side
        # of every branch around it, and runs this iteration of every loop
        # (a condition that does not mention the rank holds for the sender as it does here)
        there = shapes.conj(
            *(f for f in ctx.path if ctx.rank_var in f.free_symbols() or _per_rank_data(ctx, f))
        )
        # renaming the rank does not rename data the sender reads for itself (its send
        # condition, destination, validity or path read a table at its own rank): no model
        if _per_rank_data(ctx, shapes.conj(there, cs, shapes.eq(d, 0), sent)):
            return [replace(value, prov=MIXED, valid=None, why=PER_RANK_PATH)]
        sends_here = shapes.conj(sends_here, there.subs(src_rank))
        return [
            replace(value, prov=value.prov.subs(at_src), valid=shapes.conj(cr, sends_here, sent))
        ]
    if name == "tp_fold":
        value, when = ins
        cond = _need_cond(when, "the fold condition", loc, block)
        prov = value.prov
        if prov is None or is_mixed(prov):
            block.add(
                Unsupported(
                    "fold() of a value whose ring provenance is unknown "
                    "(load it from a sharded tensor and move it with sendrecv)"
                    if prov is None
                    else f"fold() of {value.why}: where it holds a chunk is not modelled"
                    if value.why in UNMODELLED_ARRIVAL
                    else "fold() of a value that combines chunks of different ring provenance "
                    "(fold each received chunk on its own)",
                    loc,
                )
            )
            prov = None
        when_ = cond if cond is not None else shapes.conj()
        cond = when_
        if value.valid is not None:  # a received tile folds a chunk only where it arrived
            cond = shapes.conj(cond, value.valid)
        block.add(Fold(prov, cond, loc, when_))
        return [value]
    raise SpecError(f"unknown kernel operation {name}", loc)


#: ``why`` of a received tile whose sender's path reads data of its own (fail closed).
PER_RANK_PATH = "a value received under a condition on data that each rank reads for itself"


def _per_rank_data(ctx: _Ctx, f: shapes.Formula) -> bool:
    """Does ``f`` read data whose value may differ from rank to rank (renaming the rank in
    ``f`` would not give the sender's read)?"""
    for name in f.free_symbols():
        d = ctx.data.get(name)
        if name.startswith("_c") or (
            d is not None
            and (not d.index or any(ctx.rank_var in e.free_symbols() for e in d.index))
        ):
            return True
        if d is None and name not in ctx.names and not name.startswith("_k"):
            return True  # not a size, id, rank or loop index; ``_k``: a first-pass carry
    return False


def _asserted(p, ins, loc: Location, block: _Block) -> shapes.Formula | None:
    """The condition of a ``tp_assert``: ``form`` ``holds`` (its operand is the condition),
    ``never`` (reaching it is the violation), ``disjoint``: the boxes with corners
    ``ins[:n]`` and ``ins[n:]`` and extents ``p["sizes"]`` share no element, or ``inside``:
    the box at corner ``ins[:n]`` lies within an array of shape ``ins[n:]`` -- stated in
    exact integer arithmetic (address ranges compared, no machine sum is computed)."""
    form = p.get("form", "holds")
    if form == "never":
        return shapes.disj()
    if form == "holds":
        return _need_cond(ins[0], f"the condition of {p['what']}", loc, block)
    n = len(ins) // 2
    xs = [_need_int(x, f"a corner in {p['what']}", loc, block) for x in ins]
    if any(x is None for x in xs):
        return None
    sizes = p["sizes"]
    if form == "inside":  # the box at corner ins[:n] of extents sizes lies in [0, ins[n:])
        return shapes.conj(
            *[shapes.ge(xs[k], 0) for k in range(n)],
            *[shapes.le(xs[k] + sizes[k], xs[n + k]) for k in range(n)],
        )
    apart = []
    for k in range(n):
        a, b, na, nb = xs[k], xs[n + k], sizes[k], sizes[n + k]
        apart += [shapes.le(a + na, b), shapes.le(b + nb, a)]
    return shapes.disj(*apart)


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
    halved_tile(ctx, node, loc, block)
    if kind == "store":
        if decl.is_index and decl.values is not None:
            stored_value(node, ins[0])
        return []
    shape = _out_shape(eqn)
    if decl.is_index:
        return [index_value(ctx, node, decl, shape)]
    prov = shapes.sym(ctx.rank_var) if decl.sharded and ctx.rank_var else None
    return [opaque(shape, f"data loaded from {tensor}", prov)]


UNMODELLED_ARRIVAL = (UNTRACKED, PER_RANK_PATH)
