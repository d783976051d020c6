"""The value range of a scalar-prefetch table the kernel itself rewrites.

Scalar-prefetch operands live in SMEM for the whole ``pallas_call``: the kernel may write
them and a later grid step (or loop iteration) reads back what it wrote.  JAX's TPU paged
attention keeps its double-buffer index there: the wrapper passes ``jnp.zeros((1,))`` and
the kernel stores ``where(buffer_index == 0, 1, 0)`` (``paged_attention_kernel.py:250``).
Such an operand is no argument of the user's function, so it has no declared ``values=``
and the model gave it the whole int32 range: every access it indexes was unprovable.

What is inferred here, and why it is sound (an inductive invariant, proved here, not
guessed):

* The operand's initial elements are a trace-time constant (``broadcast_in_dim`` of a
  literal, a constant array; :class:`._read._Walk` records them): all lie in ``[lo, hi]``.
* Every write into the table inside the kernel body is a ``swap`` whose stored value is,
  by the interval rules below, in ``[lo, hi]`` *assuming every read of the table is*.
  Each rule is exact interval arithmetic on mathematical integers whose result fits the
  dtype (so no wrap-around): literals, ``select_n`` (the hull of its cases), ``min``,
  ``max``, ``clamp``, ``add``, ``sub``, ``rem`` by a positive divisor, integer casts that keep the interval, comparisons and boolean ops
  (``[0, 1]``), and shape-only ops.  Anything else is unknown and no range
  is inferred.
* Every execution reads either an initial element or a value an earlier write stored, so
  by induction over the execution every read lies in ``[lo, hi]``: the range is a fixpoint
  of ``hull(initial, stored(range))``, iterated from the initial hull.

Fail closed: the table is followed through ``cond`` branches, loop bodies, ``run_scoped``
and call primitives; any other use of the ref (a DMA, a ref transform other than
indexing, an atomic, a primitive not listed) leaves the range uninferred, i.e. the dtype's
whole range as before.  The model still checks every store against the inferred range (a
``bounds`` obligation, :mod:`tileproof.verify.static._stored`), so the invariant is proved
twice.
"""

from __future__ import annotations

import numpy as np

from ..lowering._jaxcompat import CALLS, scan_operands

__all__ = ["literal_range", "table_range"]

_SHAPE_ONLY = (
    "broadcast_in_dim",
    "reshape",
    "squeeze",
    "expand_dims",
    "copy",
    "copy_p",
    "slice",
    "dynamic_slice",
    "transpose",
    "rev",
)
_BOOL = ("eq", "ne", "lt", "le", "gt", "ge", "not", "and", "or", "xor")


class _GiveUp(Exception):
    """A use of the table the inference does not follow: no range is inferred."""


def literal_range(val) -> tuple[int, int] | None:
    """``(min, max)`` of an integer (or boolean) constant, else None."""
    arr = np.asarray(val)
    if arr.size == 0 or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)
    ):
        return None
    return int(arr.min()), int(arr.max())


def _limits(dtype) -> tuple[int, int] | None:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return None
    if np.issubdtype(dt, np.bool_):
        return 0, 1
    if not np.issubdtype(dt, np.integer):
        return None
    info = np.iinfo(dt)
    return int(info.min), int(info.max)


def _hull(*rs):
    if any(r is None for r in rs) or not rs:
        return None
    return min(r[0] for r in rs), max(r[1] for r in rs)


def table_range(body, ref_var, init: tuple[int, int]) -> tuple[int, int] | None:
    """The least inductive interval of table ``ref_var`` in kernel jaxpr ``body`` (see the
    module docstring), or None when it is not inferred."""
    lim = _limits(getattr(ref_var.aval, "dtype", None))
    if lim is None or not (lim[0] <= init[0] <= init[1] <= lim[1]):
        return None
    rng = init
    for _ in range(8):  # the hull only grows; literals bound it, so it settles quickly
        scan = _Scan(ref_var, rng)
        try:
            scan.run(body, [], {ref_var}, {})
        except (_GiveUp, AttributeError, KeyError, TypeError, ValueError):
            return None  # a construct this reading does not know: no range (fail closed)
        new = _hull(rng, *scan.stored) if scan.stored else rng
        if new is None or not (lim[0] <= new[0] and new[1] <= lim[1]):
            return None
        if new == rng:
            return rng
        rng = new
    return None


class _Scan:
    """One pass over the body: the intervals of the values stored into the table, assuming
    every read of it lies in ``rng``."""

    def __init__(self, ref_var, rng):
        self.ref_var = ref_var
        self.rng = rng
        self.stored: list = []

    def run(self, jaxpr, consts, refs: set, env: dict) -> list:
        """Walk ``jaxpr``; ``refs`` are its variables that are the table, ``env`` the known
        intervals of its other variables.  Returns the outputs' intervals."""
        env = dict(env)
        for v, c in zip(getattr(jaxpr, "constvars", ()), consts):
            env[v] = literal_range(c) if not hasattr(c, "aval") or _concrete(c) else None
        for eqn in jaxpr.eqns:
            outs = self.eqn(eqn, refs, env)
            for v, r in zip(eqn.outvars, outs):
                env[v] = r
        return [self._of(v, env) for v in jaxpr.outvars]

    @staticmethod
    def _of(v, env):
        if hasattr(v, "val"):
            return literal_range(v.val)
        return env.get(v)

    def eqn(self, eqn, refs: set, env: dict) -> list:
        name = eqn.primitive.name
        p = eqn.params
        ins = list(eqn.invars)
        uses = [k for k, v in enumerate(ins) if not hasattr(v, "val") and v in refs]
        iv = [self._of(v, env) for v in ins]
        nout = len(eqn.outvars)
        if name in ("get", "swap") and uses == [0]:
            flat = ins[1:] if name == "get" else ins[2:]
            for t in p["tree"].unflatten(flat):
                if type(t).__name__ != "NDIndexer":
                    raise _GiveUp  # a bitcast or reshape of the table: other values
            if name == "swap":
                if iv[1] is None:
                    raise _GiveUp
                self.stored.append(iv[1])
            return [self.rng]
        if name in CALLS:
            inner = p.get("jaxpr") or p.get("call_jaxpr") or p.get("fun_jaxpr")
            if inner is None:
                raise _GiveUp
            jx = inner.jaxpr if hasattr(inner, "jaxpr") else inner
            return self.run(
                jx, getattr(inner, "consts", []), _sub(refs, ins, jx.invars), _env(iv, jx.invars)
            )
        if name == "cond":
            outs = []
            for br in p["branches"]:
                jx = br.jaxpr
                outs.append(
                    self.run(jx, br.consts, _sub(refs, ins[1:], jx.invars), _env(iv[1:], jx.invars))
                )
            return [_hull(*rs) for rs in zip(*outs)] if outs else [None] * nout
        if name == "while":
            cn, bn = p["cond_nconsts"], p["body_nconsts"]
            if any(k >= cn + bn for k in uses):
                raise _GiveUp  # a ref carried through the loop
            cj, bj = p["cond_jaxpr"], p["body_jaxpr"]
            cc, bc = ins[:cn], ins[cn : cn + bn]
            self.run(
                cj.jaxpr, cj.consts, _sub(refs, cc, cj.jaxpr.invars), _env(iv[:cn], cj.jaxpr.invars)
            )
            self.run(
                bj.jaxpr,
                bj.consts,
                _sub(refs, bc, bj.jaxpr.invars),
                _env(iv[cn : cn + bn], bj.jaxpr.invars),
            )
            return [None] * nout  # the carry: not followed
        if name == "scan":
            consts, _carry, _xs = scan_operands(p, list(range(len(ins))))
            if any(k not in consts for k in uses):
                raise _GiveUp
            j = p["jaxpr"]
            nc = len(consts)
            self.run(
                j.jaxpr,
                j.consts,
                _sub(refs, ins[:nc], j.jaxpr.invars),
                _env(iv[:nc], j.jaxpr.invars),
            )
            return [None] * nout
        if name == "run_scoped":
            jx = p["jaxpr"]  # the operands are its constvars (it closes over them)
            sub = {c for c, v in zip(jx.constvars, ins) if not hasattr(v, "val") and v in refs}
            self.run(jx, [], sub, _env(iv, jx.constvars))
            return [None] * nout
        if uses:
            raise _GiveUp  # a DMA, an atomic, any other use of the table
        if nout == 0 or any(_has_jaxpr(x) for x in p.values()):
            return [None] * nout  # an effect, or a nested body the table does not enter
        return [_rule(name, p, iv, eqn)] + [None] * (nout - 1)


def _sub(refs: set, outer, inner) -> set:
    return {i for o, i in zip(outer, inner) if not hasattr(o, "val") and o in refs}


def _env(ivs, inner) -> dict:
    return {i: r for i, r in zip(inner, ivs) if r is not None}


def _concrete(c) -> bool:
    try:
        np.asarray(c)
    except Exception:  # a tracer: no value at trace time
        return False
    return True


def _has_jaxpr(x) -> bool:
    for y in x if isinstance(x, (tuple, list)) else (x,):
        if hasattr(y, "eqns") or hasattr(getattr(y, "jaxpr", None), "eqns"):
            return True
    return False


def _rule(name: str, p: dict, iv: list, eqn):
    """The interval of one integer result from its operands' (None: unknown)."""
    out = eqn.outvars[0]
    lim = _limits(getattr(out.aval, "dtype", None))
    if lim is None:
        return None
    if name in _BOOL and np.dtype(out.aval.dtype) == np.bool_:
        return 0, 1
    r = None
    if name in _SHAPE_ONLY:
        r = iv[0]
    elif name == "convert_element_type":
        r = iv[0] if _limits(getattr(eqn.invars[0].aval, "dtype", None)) else None
    elif name == "select_n":
        r = _hull(*iv[1:])
    elif name in ("max", "min") and None not in iv[:2]:
        f = max if name == "max" else min
        r = f(iv[0][0], iv[1][0]), f(iv[0][1], iv[1][1])
    elif name == "clamp" and None not in iv[:3]:
        lo, x, hi = iv[:3]
        a = max(x[0], lo[0]), max(x[1], lo[1])
        r = min(a[0], hi[0]), min(a[1], hi[1])
    elif name == "add" and None not in iv[:2]:
        r = iv[0][0] + iv[1][0], iv[0][1] + iv[1][1]
    elif name == "sub" and None not in iv[:2]:
        r = iv[0][0] - iv[1][1], iv[0][1] - iv[1][0]
    elif name == "rem" and None not in iv[:2] and iv[1][0] > 0:
        # C remainder (lax.rem): the sign of the dividend, magnitude below the divisor's
        x, m = iv[0], iv[1][1] - 1
        r = (0 if x[0] >= 0 else max(x[0], -m)), (min(x[1], m) if x[1] >= 0 else 0)
    if r is None or r[0] < lim[0] or r[1] > lim[1]:
        return None  # unknown, or it may wrap around
    return r
