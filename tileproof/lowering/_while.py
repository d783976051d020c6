"""``while`` loops: the trip count solved exactly from the condition, or Unsupported.

A ``lax.while_loop`` (and ``fori_loop`` with traced bounds) is modelled as a counted
loop only when its trip count has a closed form:

* every loop-carried integer the condition mentions is loop-invariant or an
  induction ``x0 + step*s`` (``s`` the number of completed iterations) — a bound
  the body updates (``hi -= 1`` in a two-pointer loop) moves with ``s`` too, it is
  never frozen at its initial value;
* the condition is a conjunction of comparisons ``D_k(s) > 0`` with
  ``D_k(s) = D_k(0) - d_k*s`` for a positive integer constant ``d_k``, so the loop
  runs ``min_k cdiv(D_k(0), d_k)`` times (none when that is negative);
* loads in the condition read a read-only input at an index that does not change
  from iteration to iteration: they become :class:`Access` nodes (bounds-checked
  like any other) before the loop, and their values data symbols with the tensor's
  declared range, never free sizes.

Anything else — a bound read again from memory every iteration, a condition on a
value the body loads, ``!=``, a step that is not a positive constant — is an
:class:`Unsupported` node: the loop's accesses are not modelled and the kernel's
verdict is ``unknown``, never ``proved``.
"""

from __future__ import annotations

from .. import shapes
from ..model import Access, Arith, Unsupported, walk
from ._loops import _bind_invariants, _classify, _first_pass, _loop, _placeholders, _run
from ._state import _Block, _Ctx
from ._values import SV, int_sv, opaque

__all__ = ["lower_while"]


def _nodes_mention(node, name: str) -> bool:
    if isinstance(node, Access):
        exprs = [d.start for d in node.dims] + ([node.mask] if node.mask is not None else [])
        return any(name in e.free_symbols() for e in exprs)
    if isinstance(node, Arith):
        return name in node.expr.free_symbols()
    return True  # anything else: treated as iteration-dependent


def _conjuncts(f) -> list | None:
    if isinstance(f, shapes.BoolOp) and f.kind == "and":
        out = []
        for a in f.args:
            got = _conjuncts(a)
            if got is None:
                return None
            out += got
        return out
    if isinstance(f, shapes.Cmp):
        return [f]
    return None


_MARGIN = {"<": ("rhs", 0), "<=": ("rhs", 1), ">": ("lhs", 0), ">=": ("lhs", 1)}


def solve_trip(cond, var: str) -> tuple[shapes.Expr | None, str]:
    """``(trip, "")``: how often a loop runs whose condition at iteration ``var`` is ``cond``,
    or ``(None, why)`` when it has no exact closed form (see the module docstring)."""
    parts = _conjuncts(cond)
    if not parts:
        return None, "its condition is not a conjunction of <, <=, > or >= comparisons"
    s = shapes.sym(var)
    trips = []
    for c in parts:
        if c.op not in _MARGIN:
            return None, f"its condition uses {c.op!r} (only <, <=, >, >= have a closed form)"
        big, extra = _MARGIN[c.op]
        d_s = (c.rhs - c.lhs if big == "rhs" else c.lhs - c.rhs) + extra  # runs while d_s > 0
        d0 = d_s.subs({var: 0})
        step = d0 - d_s.subs({var: 1})
        rest = d_s - (d0 - step * s)
        if not (rest.is_const and rest.const_value == 0) or var in d0.free_symbols():
            return None, f"the distance {d_s} to its bound is not linear in the iteration"
        if not step.is_const or step.const_value <= 0:
            why = "does not shrink" if step.is_const else f"shrinks by {step}, not a constant"
            return None, f"the distance {d0} to its bound {why} from one iteration to the next"
        k = step.const_value
        trips.append(d0 if k == 1 else shapes.cdiv(d0, k))
    trip = trips[0]
    for t in trips[1:]:
        trip = shapes.minimum(trip, t)
    return trip, ""


def lower_while(ctx: _Ctx, eqn, ins: list[SV], loc, block: _Block):
    """A ``while`` loop: a counted :class:`Loop` when its trip count solves, else Unsupported."""
    p = eqn.params
    nc, nb = p["cond_nconsts"], p["body_nconsts"]
    cconsts, bconsts, init = ins[:nc], ins[nc : nc + nb], ins[nc + nb :]
    phs = _placeholders(ctx, init)
    with _first_pass(ctx) as scratch:
        outs = _run(ctx, p["body_jaxpr"], bconsts + phs, scratch)
        reads = dict(ctx.data)
    kinds = _classify(ctx, init, outs, "", reads)

    before: dict | None = None

    def give_up(why: str):
        if before is not None:
            ctx.data = before  # reads of the condition are not part of the model
        accs = [n for n in walk(scratch.nodes) if isinstance(n, Access)]
        shown = ", ".join(f"{a.kind} {a.tensor} at {a.loc.short}" for a in accs[:4])
        more = f" and {len(accs) - 4} more" if len(accs) > 4 else ""
        block.add(
            Unsupported(
                f"a while loop whose trip count has no exact model: {why}; "
                + (
                    f"its accesses ({shown}{more}) are not modelled"
                    if accs
                    else "its body is not modelled"
                ),
                loc,
                tuple(dict.fromkeys(a.tensor for a in accs)),
            )
        )
        return [opaque(sv.shape, "the result of an unmodelled while loop") for sv in init]

    # The condition, interpreted for real with every carry at iteration `cvar`.
    cvar = ctx.fresh(f"cond_{loc.line}" if loc.line else "cond")
    cv = shapes.sym(cvar)
    args = []
    for sv, kind in zip(init, kinds):
        if kind[0] == "inv":
            args.append(sv)
        elif kind[0] == "ind" and sv.is_int:
            step = _bind_invariants(ctx, kind[1], init)
            args.append(int_sv(sv.expr + step * cv, sv.shape, sv.bits))
        elif sv.is_int or sv.is_bool:
            args.append(opaque(sv.shape, "a loop-carried value that is not an induction"))
        else:
            args.append(sv)
    before = dict(ctx.data)
    cb = _Block([])
    out = _run(ctx, p["cond_jaxpr"], cconsts + args, cb)[0]
    if any(isinstance(n, Unsupported) for n in cb.nodes) or not out.is_bool:
        return give_up(
            "its condition depends on a value the lowering cannot model "
            "(a carry that is no induction, or a floating value)"
        )
    for n in cb.nodes:
        if not isinstance(n, (Access, Arith)) or (isinstance(n, Access) and n.kind != "load"):
            return give_up(f"its condition performs a kernel operation at {n.loc.short}")
        if isinstance(n, Access):
            decl = ctx.kernel.tensors[n.tensor]
            if decl.role != "input" or decl.updated:
                return give_up(f"its condition loads {n.tensor}, which the kernel writes")
            if _nodes_mention(n, cvar):
                return give_up(
                    f"its condition loads {n.tensor} at an index that changes "
                    "from iteration to iteration"
                )
    trip, why = solve_trip(out.cond, cvar)
    if trip is None:
        return give_up(why)
    fresh_reads = set(ctx.data) - set(before)
    bad = [
        n
        for n in trip.free_symbols()
        if n.startswith("_") or (n not in ctx.names and n not in fresh_reads)
    ]
    if bad:
        return give_up(f"its bound depends on {', '.join(sorted(bad))}")
    moving = [n for n in cb.nodes if _nodes_mention(n, cvar)]
    for n in cb.nodes:  # evaluated at every iteration identically: once before the loop
        if not any(n is m for m in moving):
            block.add(n)
    counter = next(
        (
            i
            for i, k in enumerate(kinds)
            if k[0] == "ind" and init[i].is_int and k[1] == shapes.as_expr(1)
        ),
        None,
    )
    lo = init[counter].expr if counter is not None else shapes.as_expr(0)
    hi = lo + trip

    def run_body(carries, blk):
        return _run(ctx, p["body_jaxpr"], bconsts + carries, blk)

    at = len(block.nodes)
    after = _loop(ctx, run_body, init, counter, lo, hi, trip, loc, block, kinds)
    lp = block.nodes[at]
    s = shapes.sym(lp.var) - lo
    # the condition's arithmetic at each iteration, and once more where the loop ends
    lp.body[:0] = [_arith_at(n, cvar, s) for n in moving]
    block.nodes += [_arith_at(n, cvar, shapes.maximum(trip, 0)) for n in moving]
    if counter is not None:
        after[counter] = int_sv(shapes.maximum(lo, hi), init[counter].shape, init[counter].bits)
    return after


def _arith_at(n: Arith, var: str, value: shapes.Expr) -> Arith:
    return Arith(n.expr.subs({var: value}), n.bits, n.op, n.loc, n.shape)
