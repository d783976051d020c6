"""Loops and branches of a traced body: counted loops, inductions, provenance shifts.

A loop body is interpreted twice.  The first pass feeds each carry a
placeholder symbol and classifies what comes out: unchanged (invariant),
``placeholder + step`` (an induction), or — for tiles with ring provenance —
provenance that moves by a constant number of ranks per step.  The second
pass interprets the body for real, with every carry expressed in the loop
variable, and records its nodes in the :class:`Loop`.

Validity of a ring carry across iterations (see :func:`_carried_valid`): a
tile forwarded by ``sendrecv`` holds a chunk at step ``s`` only where it arrived
at step ``s - 1`` — which in turn needs the sender's own value to have arrived
at ``s - 2``, and so on.  The lowering gives the carry the one-step condition
``W(r, s)`` (the first pass's arrival condition with every earlier step assumed
valid: an over-approximation, since validity is monotone) and records on the
loop the induction step ``W(r, s + 1) => W2(r, s)`` (``W2``: the same with the
carries at ``s`` given ``W``).  Where the verifier proves it, ``W`` is exact by
induction on ``s``; where not, nothing that leans on ``W`` is proved.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

from .. import shapes
from ..model import Branch, Comm, Loop, Unsupported
from ._jaxcompat import scan_operands
from ._state import _Block, _Ctx, _need_cond, _need_int
from ._values import MIXED, SV, bool_sv, int_sv, is_mixed, opaque

__all__ = ["_cond", "_scan"]


def _jx(closed):
    return closed.jaxpr if hasattr(closed, "jaxpr") else closed


def _run(ctx: _Ctx, closed, args: list[SV], block: _Block) -> list[SV]:
    jx = _jx(closed)
    env = {}
    from ._values import literal

    for v, c in zip(jx.constvars, getattr(closed, "consts", [])):
        env[v] = literal(c)
    env.update(zip(jx.invars, args))
    return ctx.walk(ctx, jx, env, block)


_PH = "_k"
_PP = "_kp"


def _ph(ctx: _Ctx, i: int) -> str:
    """The first-pass placeholder of carry ``i`` of the loop being lowered here.

    Named by the loop's first-pass nesting level as well: a loop inside another loop's first
    pass sees the outer placeholders among its operands, and a name shared with them (both
    ``_k1`` once) made an inner body returning the outer carry look invariant -- an outer
    carry that doubles each iteration was lowered as a constant and its store proved in
    bounds.  Call it outside :func:`_first_pass` (which nests the level).
    """
    return f"{_PH}{ctx.ph_level + 1}_{i}"


def _pp(ctx: _Ctx, i: int) -> str:
    """The tag of carry ``i``'s ring origin in the first pass (named like :func:`_ph`)."""
    return f"{_PP}{ctx.ph_level + 1}_{i}"


@contextlib.contextmanager
def _first_pass(ctx: _Ctx):
    """A throwaway interpretation: its nodes, names and data symbols are forgotten; loops
    inside it name their placeholders one level deeper (see :func:`_ph`)."""
    names, data, depth, level = set(ctx.names), dict(ctx.data), ctx.depth, ctx.ph_level
    ctx.ph_level = level + 1
    try:
        yield _Block([])
    finally:
        ctx.names, ctx.data, ctx.depth, ctx.ph_level = names, data, depth, level


def _placeholders(ctx: _Ctx, init: list[SV]) -> list[SV]:
    """First-pass stand-ins (built before entering :func:`_first_pass`).  A ring tile's
    origin is ``r + _kp<i>`` (``_kp<i>`` names the carry, so an output that comes from another carry — ``(a, b) -> (recv(b), a)`` — is told
    apart from one that shifts its own), and its validity is assumed (see the module
    docstring): the output's validity is then the one-step arrival condition."""
    out = []
    for i, sv in enumerate(init):
        if sv.is_int:
            out.append(int_sv(shapes.sym(_ph(ctx, i)), sv.shape, sv.bits, sv.signed))
        elif sv.prov is not None and ctx.rank_var and not is_mixed(sv.prov):
            out.append(
                replace(sv, prov=shapes.sym(ctx.rank_var) + shapes.sym(_pp(ctx, i)), valid=None)
            )
        else:
            out.append(sv)
    return out


def _classify(ctx: _Ctx, init: list[SV], outs: list[SV], loopvar: str, data=None):
    """Per carry: ("inv",), ("ind", step), ("shift", delta), ("data", Data),
    ("steps", d1, d2) (see :func:`_bounded_steps`) or ("var",).

    ``("data", d)``: the body's new value of the carry is a read ``d`` of an index tensor
    (``data``: the first pass's data symbols), as in a prefetch of the next page-table
    entry; see :func:`_carried_data`.
    """
    phs = {_ph(ctx, i) for i in range(len(init))}
    # A step may only use names that exist before the loop: a value the body itself reads
    # (a first-pass data symbol, forgotten since) changes from step to step.
    known = ctx.names
    kinds = []
    for i, (a, b) in enumerate(zip(init, outs)):
        if a.is_int and b.is_int:
            diff = b.expr - shapes.sym(_ph(ctx, i))
            free = diff.free_symbols()
            read = b.expr.as_symbol()
            if diff.is_const and diff.const_value == 0:
                kinds.append(("inv",))
            elif free <= known and loopvar not in free:
                kinds.append(("ind", diff))
            elif data and read in data and read not in ctx.data:
                kinds.append(("data", data[read]))
            elif data and _masked_read(b.expr) in data and _masked_read(b.expr) not in ctx.data:
                kinds.append(("data", data[_masked_read(b.expr)], "masked"))
            elif (
                steps := _bounded_steps(b.expr, shapes.sym(_ph(ctx, i)), known, loopvar)
            ) is not None:
                kinds.append(("steps", *steps))
            else:
                kinds.append(("var",))
        elif a.prov is not None and b.prov is not None and ctx.rank_var and not is_mixed(a.prov):
            own = b.prov - shapes.sym(_pp(ctx, i))  # the output's origin less this carry's tag
            delta = own - shapes.sym(ctx.rank_var)
            free = delta.free_symbols()
            if ctx.rank_var not in free and loopvar not in free and free <= known:
                kinds.append(("shift", delta, b.valid))
            else:
                kinds.append(_shift_mod(ctx, own, loopvar, phs, b.valid))
        elif a.is_opaque and ((a.prov is None) != (b.prov is None) or is_mixed(a.prov)):
            kinds.append(("mixed",))  # an origin on some iterations only: not one chunk
        else:
            kinds.append(("var",))
    return kinds


def _bounded_steps(e: shapes.Expr, ph: shapes.Expr, known, loopvar: str):
    """``(d1, d2)`` when one step maps the carry ``c`` to ``where(cond, c + d1, c + d2)``
    (or ``c + where(cond, d1, d2)``) with steps ``d1``, ``d2`` that are the same at every
    iteration, whatever ``cond`` is (a data-dependent walk such as paged attention's skip
    over empty sequences: ``where(lengths[b] == 0, b + 1, b)``); else None.  See
    :func:`_carried_steps` for what the lowering makes of it."""
    cands = []
    atom = e.as_atom()
    if getattr(atom, "kind", None) == "where":
        cands.append((atom.args[1] - ph, atom.args[2] - ph))
    atom = (e - ph).as_atom()
    if getattr(atom, "kind", None) == "where":
        cands.append((atom.args[1], atom.args[2]))
    for d1, d2 in cands:
        free = d1.free_symbols() | d2.free_symbols()
        if free <= known and loopvar not in free:  # placeholders are never known names
            return d1, d2
    return None


def _masked_read(e: shapes.Expr) -> str | None:
    """``d`` when ``e`` is ``where(mask, d, 0)``: a masked load of an index tensor."""
    atom = e.as_atom()
    if getattr(atom, "kind", None) == "where" and atom.args[2] == 0:
        return atom.args[1].as_symbol()
    return None


def _shift_mod(ctx: _Ctx, prov: shapes.Expr, loopvar: str, phs: set, valid) -> tuple:
    """``("shiftmod", d, m, valid)`` when one step maps provenance ``r`` to ``(r + d) % m`` (a
    closed ring written with an explicit modulo), else ``("var",)``."""
    atom = prov.as_atom()
    if getattr(atom, "kind", None) != "mod":
        return ("var",)
    arg, m = atom.args
    d = arg - shapes.sym(ctx.rank_var)
    free = d.free_symbols() | m.free_symbols()
    if free & ({ctx.rank_var, loopvar} | phs) or not free <= ctx.names:
        return ("var",)
    return ("shiftmod", d, m, valid)


def _bind_invariants(ctx: _Ctx, e: shapes.Expr, init: list[SV]) -> shapes.Expr:
    repl = {_ph(ctx, i): sv.expr for i, sv in enumerate(init) if sv.is_int}
    return e.subs(repl)


def _index_at(ctx: _Ctx, d, init, kinds, s: shapes.Expr):
    """The index of the first pass's read ``d`` at iteration ``s``, or None if it is not affine in carries."""
    repl = {}
    for i, (sv, kind) in enumerate(zip(init, kinds)):
        if kind[0] == "inv" and sv.is_int:
            repl[_ph(ctx, i)] = sv.expr
        elif kind[0] == "ind" and sv.is_int:
            repl[_ph(ctx, i)] = sv.expr + _bind_invariants(ctx, kind[1], init) * s
    index = tuple(e.subs(repl) for e in d.index)
    known = ctx.names
    if any(n not in known for e in index for n in e.free_symbols()):
        return None
    return index


def _carried_data(ctx: _Ctx, sv: SV, d, init, kinds, s: shapes.Expr, masked=False) -> SV:
    """A carry that the body reloads from an index tensor: a fresh data symbol.

    At iteration ``s`` it holds the initial value (``s == 0``) or what the previous
    iteration read, ``d`` at ``s - 1``.  Its range is the tensor's declared range (and the
    initial value, when that is not a read of the same tensor); its index is known when
    both reads' indices are, so reads of the same element agree.
    """
    from ..model import Data

    decl = ctx.kernel.tensors[d.tensor]
    name = ctx.fresh(f"{d.tensor}_{d.loc.line}_carried")
    v = shapes.sym(name)
    declared = decl.values.subs({"v": v}) if decl.values is not None else shapes.conj()
    first = ctx.data.get(sv.expr.as_symbol() or "")
    if first is None and _masked_read(sv.expr) in ctx.data:  # a masked initial read
        first, masked = ctx.data[_masked_read(sv.expr)], True
    prev = _index_at(ctx, d, init, kinds, s - 1)
    index: tuple = ()
    value = v
    rng = declared
    if first is not None and first.tensor == d.tensor:
        if prev is not None and len(prev) == len(first.index):
            index = tuple(shapes.where(shapes.eq(s, 0), a, b) for a, b in zip(first.index, prev))
    else:
        # The initial value is not a read of this tensor: the carry is exactly that value at
        # iteration 0 and a read afterwards.  Say so in the value, not in the symbol's range:
        # a range ``v == init`` would mention program ids or loop indices that a
        # two-program query renames in the value but not inside a data range (program B's
        # read would be tied to program A's id, hiding a race).
        value = shapes.where(shapes.eq(s, 0), sv.expr, v)
    if masked:  # a masked-off read gives 0, not an element: no index, and 0 is possible
        # (the same for a masked initial read; its own range is not pulled in for us)
        rng, index = shapes.disj(shapes.eq(v, 0), rng), ()
    ctx.data[name] = Data(name, d.tensor, index, rng, d.loc, d.bits, d.signed)
    return int_sv(value, sv.shape, d.bits, d.signed)


#: ``Data.inexact`` of a carry advanced by data-dependent steps (see :func:`_carried_steps`).
STEPS = "a loop carry advanced by a step the loop chooses from data"


def _carried_steps(ctx, sv: SV, d1, d2, init, s: shapes.Expr, loc) -> SV:
    """A carry advanced by ``d1`` or ``d2`` at each step, the choice data-dependent.

    After ``s`` steps it is ``init + d1 * m + d2 * (s - m)`` for some ``0 <= m <= s`` (``m``:
    the steps that took ``d1``): exactly the values the loop can reach when its choice is
    free, and a superset when the choice is constrained.  ``m`` is ``min(k, s)`` for a fresh
    data symbol ``k >= 0`` (a data symbol, so each program and each iteration analysed has
    its own, and its range mentions no program id or loop index -- see
    :func:`_carried_data`).  The value is an over-approximation: a proof over it holds for
    the kernel, but a refutation may pick a walk the data cannot produce, so ``k`` is marked
    ``inexact`` and every refutation of the kernel is reported unknown
    (``verify.static._check``).
    """
    from ..model import Data

    name = ctx.fresh(f"steps_{loc.line}" if loc is not None and loc.line else "steps")
    k = shapes.sym(name)
    m = shapes.minimum(k, s)
    d1, d2 = _bind_invariants(ctx, d1, init), _bind_invariants(ctx, d2, init)
    # 64 bits: k counts steps, its dtype range must not cut the count short
    ctx.data[name] = Data(name, "", (), shapes.ge(k, 0), loc, 64, True, inexact=STEPS)
    return int_sv(sv.expr + d1 * m + d2 * (s - m), sv.shape, sv.bits, sv.signed)


def _carried_name(e: shapes.Expr) -> str | None:
    """The data symbol of a carried read: ``v`` itself, or ``where(s == 0, init, v)``."""
    name = e.as_symbol()
    if name is None:
        atom = e.as_atom()
        if getattr(atom, "kind", None) == "where":
            name = atom.args[2].as_symbol()
    return name


#: ``why`` of a ring carry whose validity across iterations has no exact model.
UNTRACKED = (
    "a ring value carried by a loop whose arrival at each step depends on values "
    "the lowering cannot model"
)


def _at_iteration(
    ctx: _Ctx, f: shapes.Formula, init, kinds, s: shapes.Expr
) -> shapes.Formula | None:
    """A first-pass formula (over the placeholders) at iteration ``s``, or None where it
    mentions a carry that is no induction."""
    repl = {}
    for i, (sv, kind) in enumerate(zip(init, kinds)):
        if sv.is_int and kind[0] == "inv":
            repl[_ph(ctx, i)] = sv.expr
        elif sv.is_int and kind[0] == "ind":
            repl[_ph(ctx, i)] = sv.expr + _bind_invariants(ctx, kind[1], init) * s
    out = f.subs(repl) if repl else f
    if any(n.startswith((_PH, _PP)) for n in out.free_symbols()):
        return None
    return out


def _carried_valid(ctx, sv: SV, step_valid, init, kinds, s: shapes.Expr):
    """``W(r, s)``: where a ring carry holds what arrived (see the module docstring).

    At ``s == 0`` the initial value's own validity; afterwards what the body's last
    iteration made of it, its earlier steps assumed valid (``step_valid``: the first
    pass's output validity, None when the output is valid wherever the carry was).
    None when that condition mentions names that change from step to step in a way the
    lowering does not model (a data read of the body, a carry that is no induction).
    """
    truth = shapes.conj()
    first = sv.valid if sv.valid is not None else truth
    if step_valid is None:
        prev = truth
    else:
        prev = _at_iteration(ctx, step_valid, init, kinds, s - 1)
        if prev is None or not prev.free_symbols() <= ctx.names:
            return None
    if prev == truth and first == truth:
        return truth
    return shapes.disj(shapes.conj(shapes.eq(s, 0), first), shapes.conj(shapes.ge(s, 1), prev))


def _carry_values(ctx, init, kinds, s: shapes.Expr, loc=None) -> list[SV]:
    """Carry values at iteration s (number of completed iterations)."""
    vals = []
    for sv, kind in zip(init, kinds):
        if kind[0] == "inv":
            vals.append(sv)
        elif kind[0] == "steps" and sv.is_int:
            vals.append(_carried_steps(ctx, sv, kind[1], kind[2], init, s, loc))
        elif kind[0] == "data":
            vals.append(_carried_data(ctx, sv, kind[1], init, kinds, s, len(kind) > 2))
        elif kind[0] == "ind":
            vals.append(
                int_sv(
                    sv.expr + _bind_invariants(ctx, kind[1], init) * s,
                    sv.shape,
                    sv.bits,
                    sv.signed,
                )
            )
        elif kind[0] in ("shift", "shiftmod"):
            r = shapes.sym(ctx.rank_var)
            if kind[0] == "shift":
                moved = r + _bind_invariants(ctx, kind[1], init) * s
            else:
                d = _bind_invariants(ctx, kind[1], init)
                m = _bind_invariants(ctx, kind[2], init)
                moved = shapes.mod(r + d * s, m)
            valid = _carried_valid(ctx, sv, kind[-1], init, kinds, s)
            if valid is None:  # fail closed: a fold of it is unsupported
                vals.append(replace(sv, prov=MIXED, valid=None, why=UNTRACKED))
            else:
                vals.append(
                    replace(
                        sv,
                        prov=sv.prov.subs({ctx.rank_var: moved}),
                        valid=None if valid == shapes.conj() else valid,
                    )
                )
        elif sv.is_int or sv.is_bool:
            vals.append(opaque(sv.shape, "a loop-carried value that is not an induction"))
        elif kind[0] == "mixed" or sv.prov is not None:
            # its origin changes in a way not modelled: not one chunk (a fold is unsupported)
            vals.append(replace(sv, prov=MIXED, valid=None))
        else:
            vals.append(replace(sv, prov=None))
    return vals


def _loop(
    ctx: _Ctx,
    run_body,
    init: list[SV],
    counter: int | None,
    lo,
    hi,
    trip,
    loc,
    block: _Block,
    pass1_kinds,
):
    """Shared second pass: the Loop node and the values after the loop."""
    var = ctx.fresh(f"i_{loc.line}" if loc.line else "i")
    v = shapes.sym(var)
    s = v - lo
    carries = _carry_values(ctx, init, pass1_kinds, s, loc)
    if counter is not None:
        carries[counter] = int_sv(v, init[counter].shape, init[counter].bits, init[counter].signed)
    node = Loop(var, lo, hi, [], loc)
    node.carried = [_carried_name(c.expr) for c, k in zip(carries, pass1_kinds) if k[0] == "data"]
    block.add(node)
    ctx.depth += 1
    ctx.path += [shapes.ge(v, lo), shapes.lt(v, hi)]
    try:
        outs = run_body(carries, _Block(node.body))
    finally:
        ctx.depth -= 1
        del ctx.path[-2:]
    _induction_steps(ctx, node, init, pass1_kinds, carries, outs, s)
    return _carry_values(ctx, init, pass1_kinds, shapes.maximum(trip, 0), loc)


def _induction_steps(ctx, node: Loop, init, kinds, carries, outs, s) -> None:
    """Record on ``node`` the step ``W(r, s + 1) => W2(r, s)`` for each ring carry whose
    validity :func:`_carried_valid` modelled (see the module docstring).

    ``W(r, s + 1)`` is the carry's modelled validity at the next iteration; ``W2`` the
    validity of what the body really returns at iteration ``s``, computed with the carries
    at ``s`` valid where ``W`` says.  Validity is monotone (conjunctions and disjunctions
    of conditions and operand validities), so ``W2 => W`` always; the step proved for
    every rank and ``s`` makes ``W`` exact by induction.
    """
    truth = shapes.conj()
    for j, (sv, kind, cur) in enumerate(zip(init, kinds, carries)):
        if kind[0] not in ("shift", "shiftmod") or is_mixed(cur.prov) or j >= len(outs):
            continue
        nxt = _carried_valid(ctx, sv, kind[-1], init, kinds, s + 1)
        if nxt is None or nxt == truth:  # valid everywhere at every step: nothing to carry
            continue
        got = outs[j].valid if outs[j].valid is not None else truth
        if got != nxt:
            sent = next((c.loc for c in _comms(node.body) if c.prov == cur.prov), None)
            node.ring_valid.append((sent, nxt, got))


def _comms(nodes):
    for n in nodes:
        if isinstance(n, Comm):
            yield n
        for k in ("body", "then", "orelse"):
            yield from _comms(getattr(n, k, ()))


def _scan(ctx: _Ctx, eqn, ins: list[SV], loc, block: _Block):
    p = eqn.params
    consts, init, xs = scan_operands(p, ins)
    nconst, ncarry, length = len(consts), len(init), p["length"]
    jx = _jx(p["jaxpr"])
    x_avals = [v.aval for v in jx.invars[nconst + ncarry :]]
    assert len(x_avals) == len(xs)
    x_slices = [opaque(a.shape, "a scanned-over array") for a in x_avals]
    if any(x.split_axis is not None for x in xs):  # the split is not followed into slices
        block.add(
            Unsupported(
                "a scan over a tile split across lanes: the lowering cannot "
                "follow the lanes' shares through it",
                loc,
            )
        )
    phs = _placeholders(ctx, init)
    with _first_pass(ctx) as scratch:
        outs = _run(ctx, p["jaxpr"], consts + phs + x_slices, scratch)[:ncarry]
        reads = dict(ctx.data)
    kinds = _classify(ctx, init, outs, "", reads)
    counter = next(
        (
            i
            for i, k in enumerate(kinds)
            if k[0] == "ind" and k[1] == shapes.as_expr(1) and init[i].is_int
        ),
        None,
    )
    if p.get("reverse") and any(k[0] in ("ind", "shift", "shiftmod") for k in kinds):
        block.add(Unsupported("a reversed scan with induction variables", loc))
    lo = init[counter].expr if counter is not None else shapes.as_expr(0)
    hi = lo + length

    def run_body(carries, blk):
        return _run(ctx, p["jaxpr"], consts + carries + x_slices, blk)[:ncarry]

    after = _loop(ctx, run_body, init, counter, lo, hi, shapes.as_expr(length), loc, block, kinds)
    ys = [opaque((length, *v.aval.shape), "stacked loop outputs") for v in jx.outvars[ncarry:]]
    return after + ys


def _merge(cond: shapes.Formula, a: SV, b: SV) -> SV:
    if a.is_int and b.is_int:
        return int_sv(shapes.where(cond, a.expr, b.expr), a.shape, max(a.bits, b.bits), a.signed)
    if a.is_bool and b.is_bool:
        return bool_sv(
            shapes.disj(shapes.conj(cond, a.cond), shapes.conj(shapes.negate(cond), b.cond)),
            a.shape,
        )
    split = a.split_axis if a.split_axis is not None else b.split_axis  # never dropped
    if a.prov is None and b.prov is None:
        return opaque(a.shape, "a value chosen by a branch", None, split)
    if a.prov is not None and b.prov is not None and a.prov != b.prov:
        return opaque(a.shape, "a value chosen by a branch", MIXED, split)
    # the origin exists where the side taken carries it (and is valid there)
    truth, false = shapes.conj(), shapes.disj()

    def side(x: SV) -> shapes.Formula:
        return false if x.prov is None else (x.valid if x.valid is not None else truth)

    valid = shapes.disj(shapes.conj(cond, side(a)), shapes.conj(shapes.negate(cond), side(b)))
    prov = a.prov if a.prov is not None else b.prov
    return opaque(a.shape, "a value chosen by a branch", prov, split, valid=valid)


def _bool_of_index(idx: SV) -> shapes.Formula | None:
    """``convert(pred)`` reads back as ``pred`` (lax.cond's index of a boolean)."""
    atom = idx.expr.as_atom() if idx.is_int else None
    if getattr(atom, "kind", None) == "where" and atom.args[1] == 1 and atom.args[2] == 0:
        return atom.args[0]
    return None


def _cond(ctx: _Ctx, eqn, ins: list[SV], loc, block: _Block):
    branches = eqn.params["branches"]
    idx, ops = ins[0], ins[1:]
    if len(branches) == 2:
        cond = _bool_of_index(idx)
        if cond is None:
            cond = _need_cond(idx, "a branch condition", loc, block)
        if cond is None:
            return [opaque(v.aval.shape, "an unmodelled branch") for v in eqn.outvars]
        node = Branch(cond, [], [], loc)
        block.add(node)
        ctx.depth += 1
        try:
            ctx.path.append(cond)
            t = _run(ctx, branches[1], ops, _Block(node.then))
            ctx.path[-1] = shapes.negate(cond)
            f = _run(ctx, branches[0], ops, _Block(node.orelse))
        finally:
            ctx.depth -= 1
            ctx.path.pop()
        return [_merge(cond, a, b) for a, b in zip(t, f)]
    e = _need_int(idx, "a switch index", loc, block)
    if e is None:
        return [opaque(v.aval.shape, "an unmodelled switch") for v in eqn.outvars]
    k = len(branches)
    clamped = shapes.minimum(shapes.maximum(e, 0), k - 1)
    outs_all = []
    cur = block
    ctx.depth += 1
    ctx.path.append(shapes.conj())
    try:
        for i, br in enumerate(branches):
            c = shapes.eq(clamped, i) if i < k - 1 else shapes.conj()
            node = Branch(c, [], [], loc)
            cur.add(node)
            ctx.path[-1] = shapes.eq(clamped, i)
            outs_all.append(_run(ctx, br, ops, _Block(node.then)))
            cur = _Block(node.orelse)
    finally:
        ctx.depth -= 1
        ctx.path.pop()
    return [opaque(v.aval.shape, "a value chosen by a switch") for v in eqn.outvars]
