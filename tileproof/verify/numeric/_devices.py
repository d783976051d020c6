"""Ranks on devices against ranks as a vmapped axis: the same outputs, gradients and flags.

A ranked kernel's numeric run normally treats ranks as a named ``vmap`` axis on
one device.  With ``devices=`` the executor puts one rank on each device through
JAX's own ``shard_map``, and every ``sendrecv`` becomes a collective permute
between devices.  The two placements must agree exactly in what they flag (the
same findings, worded the same) and, up to floating-point reassociation, in the
outputs and in the gradients of every floating input — :func:`compare_placements`
measures both for one kernel at one size point, and is what the device tests,
``tileproof check --devices N`` and ``benchmarks/ring_devices.py`` build on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ._execute import executor, run_compiled
from ._inputs import draw_inputs

__all__ = ["Placements", "compare_placements"]


@dataclass(frozen=True)
class Placements:
    """What the vmapped and the device placement of one run gave, side by side."""

    kernel: str
    sizes: dict
    devices: int
    findings_vmapped: tuple[str, ...]
    findings_devices: tuple[str, ...]
    max_out_diff: float  # over every output, |vmapped - devices|
    max_grad_diff: float | None  # over every floating input's gradient; None if none

    @property
    def same_flags(self) -> bool:
        return self.findings_vmapped == self.findings_devices


def _float(decl) -> bool:
    return decl.dtype in ("float16", "float32", "float64", "bfloat16")


def _diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.where(both_nan, 0.0, np.abs(a - b))
    return float(np.nanmax(np.where(np.isnan(d), np.inf, d))) if d.size else 0.0


def compare_placements(
    kernel,
    sizes: Mapping[str, int],
    devices: Sequence | None = None,
    *,
    seed: int = 0,
    gradients: bool = True,
) -> Placements:
    """Run ``kernel`` at ``sizes`` with ranks vmapped and with ranks on ``devices``.

    ``devices`` defaults to ``jax.devices()``; it needs at least as many as the
    kernel has ranks at ``sizes``.  Inputs are drawn once (seeded) and fed to both.
    Gradients are ``jax.vjp`` of both executions (zero-poisoned, as the numeric
    check differentiates) for one random cotangent.
    """
    devs = list(jax.devices() if devices is None else devices)
    env = dict(sizes)
    rng = np.random.default_rng(seed)
    inputs = draw_inputs(kernel, env, rng, 0)
    # compiled as the numeric check compiles (run_compiled: on a CPU, LLVM's cheapest level;
    # integer flags are exact either way), each placement at its own devices
    with jax.default_matmul_precision("highest"):
        out_v, flags_v = run_compiled(executor(kernel, env), inputs)
        out_d, flags_d = run_compiled(executor(kernel, env, devices=devs), inputs, devices=devs)
        out_diff = max((_diff(out_v[n], out_d[n]) for n in kernel.outputs), default=0.0)
        grad_diff = None
        float_in = [n for n in kernel.inputs if _float(kernel.tensors[n])]
        float_out = [n for n in kernel.outputs if _float(kernel.tensors[n])]
        if gradients and float_in and float_out:
            cot = {
                n: jnp.asarray(rng.standard_normal(np.shape(out_v[n])), out_v[n].dtype)
                for n in float_out
            }
            rest = {n: jnp.asarray(inputs[n]) for n in kernel.inputs if n not in float_in}
            primal = {n: jnp.asarray(inputs[n]) for n in float_in}
            grads = []
            for devices_ in (None, devs):
                fn = executor(kernel, env, devices=devices_, poison="zero")

                # the vjp (forward and transpose) as one jit-compiled function, as the
                # numeric check's gradients are: one compilation per placement, not two
                def vjp(primal, rest, cot, fn=fn):
                    def f(d):
                        out = fn({**rest, **d})[0]
                        return {n: out[n] for n in float_out}

                    return jax.vjp(f, primal)[1](cot)[0]

                grads.append(run_compiled(jax.jit(vjp), primal, rest, cot, devices=devices_))
            grad_diff = max(_diff(grads[0][n], grads[1][n]) for n in float_in)
    return Placements(
        kernel.name,
        env,
        len(devs),
        tuple(f.message for f in flags_v.findings()),
        tuple(f.message for f in flags_d.findings()),
        out_diff,
        grad_diff,
    )
