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

from ._api import _build_concrete
from ._concrete import _concrete_args, _pallas_eqns, concrete_call, interpret_reference
from ._read import _CALLS, _num_dynamic

__all__ = [
    "check_function",
    "concrete_call",
    "function_runner",
    "interpret_reference",
    "run_function",
]


def function_runner(fn, static, args, env: Mapping[str, int], *, jit: bool = True) -> Callable:
    """``run(*values) -> (outputs, findings)``: ``fn`` at sizes ``env`` with each pallas_call
    executed by tileproof's executor (built and jit-compiled once, reused across calls).

    The executor runs with exact counts only (``detail=False``: every check is made, the
    first offender is not searched for); a call with a non-zero count is executed again
    with details to word its findings, as ``check_numeric`` does.  ``findings=False``
    returns the calls' :class:`Flags` (counts) instead of findings."""
    from ..verify.numeric import _execute  # the executor: a layer above the front end

    f = functools.partial(fn, **dict(static or {}))
    closed = jax.make_jaxpr(f)(*_concrete_args(args, env))
    runners = {}
    for k, eqn in enumerate(_pallas_eqns(closed.jaxpr, [])):
        kernel = _build_concrete(eqn, f"call{k}")
        runners[id(eqn)] = (kernel, _execute.executor(kernel, {}, jit=jit, detail=False))

    def ev(jaxpr, consts, vals, findings):
        env_ = dict(zip(jaxpr.constvars, consts))
        env_.update(zip(jaxpr.invars, vals))
        for eqn in jaxpr.eqns:
            ins = [x.val if hasattr(x, "val") else env_[x] for x in eqn.invars]
            name = eqn.primitive.name
            if name == "pallas_call":
                kernel, run = runners[id(eqn)]
                ops = ins[_num_dynamic(eqn.params["grid_mapping"]) :]
                named = dict(zip(kernel.inputs, ops))
                outs, flags = run(named)
                findings.append((flags, kernel, named))
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
        calls: list = []
        outs = ev(closed.jaxpr, closed.consts, list(values), calls)
        if not findings:
            return outs, [fl for fl, _k, _named in calls]
        found = []
        for fl, kernel, named in calls:
            if not fl.ok:  # a hit: the same inputs again, with the first offender named
                _outs, fl = _execute.executor(kernel, {}, jit=jit)(named)
                found += fl.findings()
        return outs, found

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
