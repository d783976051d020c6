"""Numerics for Pallas functions: the whole function with its pallas_calls run by tileproof.

Two comparisons:

* per call (what ``tileproof check`` runs): the call's outputs from tileproof's
  strict vectorised executor (poisoned memory, out-of-bounds and race flags)
  against the user's reference when the call's operands *are* the function's
  arguments, else against the same call in Pallas' interpret mode
  (:func:`interpret_reference`; a faithfulness check of the schedule, flags
  included, not a check of the algorithm);
* end to end (:func:`run_function`): the user's function evaluated with every
  ``pallas_call`` replaced by the tileproof executor, compared with the
  reference by :func:`check_function` and timed by ``benchmarks/pallas_numeric.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import shapes
from ._read import _CALLS, _num_dynamic

__all__ = [
    "check_function",
    "concrete_call",
    "function_runner",
    "interpret_reference",
    "run_function",
]


def _concrete_args(args, env: Mapping[str, int]):
    out = []
    for a in args:
        shape = tuple(shapes.as_expr(d).evaluate(env) for d in a.shape)
        dt = jnp.bfloat16 if a.dtype == "bfloat16" else np.dtype(a.dtype)
        out.append(jax.ShapeDtypeStruct(shape, dt))
    return out


def _pallas_eqns(jaxpr, out: list) -> list:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "pallas_call":
            out.append(eqn)
            continue
        for v in eqn.params.values():
            for x in v if isinstance(v, (tuple, list)) else (v,):
                j = getattr(x, "jaxpr", None)
                if j is not None and hasattr(j, "eqns"):
                    _pallas_eqns(j, out)
                elif hasattr(x, "eqns"):
                    _pallas_eqns(x, out)
    return out


def concrete_call(fn, static, args, env: Mapping[str, int], index: int):
    """The ``index``-th pallas_call equation of ``fn`` traced at the concrete sizes ``env``."""
    f = functools.partial(fn, **dict(static or {}))
    closed = jax.make_jaxpr(f)(*_concrete_args(args, env))
    return _pallas_eqns(closed.jaxpr, [])[index]


def _reshape_units(x, shape):
    if tuple(x.shape) == tuple(shape):
        return x
    if [n for n in x.shape if n != 1] != [n for n in shape if n != 1]:
        raise ValueError(f"the concrete call's operand {x.shape} does not match {shape}")
    return jnp.reshape(x, shape)


def interpret_reference(
    fn, static, args, index: int, out_names: Sequence[str], out_decl: Sequence = ()
) -> Callable:
    """A reference for the ``index``-th call: the same call in Pallas' interpret mode.

    It depends on the sizes (the call is re-traced at each), so it is handed to the
    numeric check through the ``at_sizes`` attribute.
    """

    def at_sizes(env: Mapping[str, int]) -> Callable:
        eqn = concrete_call(fn, static, args, env, index)
        gm = eqn.params["grid_mapping"]
        if _num_dynamic(gm):
            raise ValueError("a concrete trace with a dynamic grid")
        params = {**eqn.params, "interpret": True}
        in_shapes = [tuple(v.aval.shape) for v in eqn.invars]
        out_shapes = [tuple(shapes.as_expr(d).evaluate(env) for d in shp) for shp in out_decl]

        def ref(*operands):
            # a vmap of size 1 traces the unbatched call (Pallas' batching rule squeezes the
            # axis): the same elements in the same order, only unit dimensions differ
            ops = [_reshape_units(x, sh) for x, sh in zip(operands, in_shapes)]
            outs = eqn.primitive.bind(*ops, **params)
            return {n: _reshape_units(o, sh) for n, o, sh in zip(out_names, outs, out_shapes)}

        return ref

    def unsized(*_a):
        raise TypeError("interpret_reference needs the sizes: call .at_sizes(env)")

    unsized.at_sizes = at_sizes
    unsized.interpret_mode = True
    return unsized


def function_runner(fn, static, args, env: Mapping[str, int], *, jit: bool = True) -> Callable:
    """``run(*values) -> (outputs, findings)``: ``fn`` at sizes ``env`` with each pallas_call
    executed by tileproof's executor (built and jit-compiled once, reused across calls)."""
    from ..verify.numeric import _execute
    from ._api import _build_concrete

    f = functools.partial(fn, **dict(static or {}))
    closed = jax.make_jaxpr(f)(*_concrete_args(args, env))
    runners = {}
    for k, eqn in enumerate(_pallas_eqns(closed.jaxpr, [])):
        kernel = _build_concrete(eqn, f"call{k}")
        runners[id(eqn)] = (kernel, _execute.executor(kernel, {}, jit=jit))

    def ev(jaxpr, consts, vals, findings):
        env_ = dict(zip(jaxpr.constvars, consts))
        env_.update(zip(jaxpr.invars, vals))
        for eqn in jaxpr.eqns:
            ins = [x.val if hasattr(x, "val") else env_[x] for x in eqn.invars]
            name = eqn.primitive.name
            if name == "pallas_call":
                kernel, run = runners[id(eqn)]
                ops = ins[_num_dynamic(eqn.params["grid_mapping"]) :]
                outs, flags = run(dict(zip(kernel.inputs, ops)))
                findings.append(flags)
                res = [outs[n] for n in kernel.outputs]
            elif name in _CALLS and _pallas_eqns(_inner(eqn), []):
                inner = _inner_closed(eqn)
                res = ev(inner.jaxpr, inner.consts, ins, findings)
            else:
                res = eqn.primitive.bind(*ins, **eqn.params)
                res = res if eqn.primitive.multiple_results else [res]
            for v, r in zip(eqn.outvars, res):
                env_[v] = r
        return [x.val if hasattr(x, "val") else env_[x] for x in jaxpr.outvars]

    def run(*values, findings: bool = True):
        flags: list = []
        outs = ev(closed.jaxpr, closed.consts, list(values), flags)
        if not findings:
            return outs, flags
        return outs, [m for fl in flags for m in fl.findings()]

    return run


def run_function(fn, static, args, env: Mapping[str, int], values: Sequence, *, jit: bool = True):
    """``fn(*values)`` with each pallas_call executed by tileproof's executor.

    Returns ``(outputs, findings)``: the function's results and the executor's
    run-time findings (poisoned reads, out-of-bounds accesses, races) of every call.
    """
    return function_runner(fn, static, args, env, jit=jit)(*values)


def _inner_closed(eqn):
    p = eqn.params
    inner = p.get("jaxpr") or p.get("call_jaxpr") or p.get("fun_jaxpr")
    if hasattr(inner, "consts"):
        return inner
    return jax.extend.core.ClosedJaxpr(inner, ())


def _inner(eqn):
    j = _inner_closed(eqn).jaxpr
    return j


def check_function(
    fn,
    *,
    args,
    env: Mapping[str, int],
    reference: Callable,
    static=None,
    seed: int = 0,
    rtol: float = 2e-5,
    atol: float = 2e-5,
    values: Sequence | None = None,
) -> dict:
    """End to end at sizes ``env``: tileproof's execution of ``fn`` vs ``reference``.

    Returns ``{"status": "matched"|"mismatch", "max_abs_err", "findings"}``.
    """
    if values is None:
        rng = np.random.default_rng(seed)
        values = []
        for sd, a in zip(_concrete_args(args, env), args):
            if np.issubdtype(np.dtype(sd.dtype), np.integer):
                raise ValueError(f"pass values= for the integer argument of shape {a.shape}")
            values.append(jnp.asarray(rng.standard_normal(sd.shape), sd.dtype))
    with jax.default_matmul_precision("highest"):
        got, findings = run_function(fn, static, args, env, values)
        want = reference(*values)
    want = want if isinstance(want, (tuple, list)) else (want,)
    worst, ok = 0.0, True
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        err = float(np.max(np.abs(g - w))) if g.size else 0.0
        if not np.isfinite(err):
            err = float("inf")
        worst = max(worst, err)
        ok &= bool(np.allclose(g, w, rtol=rtol, atol=atol))
    msgs = [f.message for f in findings]
    return {
        "status": "matched" if ok and not msgs else "mismatch",
        "max_abs_err": worst,
        "findings": msgs,
    }
