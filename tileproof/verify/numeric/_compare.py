"""Comparing the tiled execution with the reference: tolerances by dtype, worst errors.

An element of the tiled result ``a`` matches the reference ``b`` when::

    |a - b| <= atol * scale + rtol * |b|,      scale = max(1, max |b|)

(``numpy.allclose``'s rule with ``atol`` relative to the reference's
magnitude, so large accumulated outputs and their gradients are judged
alike).  NaN matches only NaN, an infinity only the same infinity; integers and booleans must be equal.  The
*relative error* reported is ``|a - b| / (|b| + atol * scale)`` (bounded where
``b`` is 0).

Default tolerances (``rtol``, ``atol``) — tiled schedules reorder sums
(online softmax, split-K), so they are a few ulps of accumulated error:

=========  ======  ======
dtype      rtol    atol
=========  ======  ======
float64    1e-9    1e-9
float32    1e-4    1e-5
float16    5e-3    5e-3
bfloat16   3e-2    3e-2
=========  ======  ======

Override per kernel with ``numeric={"tolerances": {"float32": (rtol, atol)}}``
or per call with ``check_numeric(..., tolerances=...)`` (same form; a dict
``{"rtol": .., "atol": ..}`` works too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["TOLERANCES", "Comparison", "compare", "tolerance_for"]

TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-9),
    "float32": (1e-4, 1e-5),
    "float16": (5e-3, 5e-3),
    "bfloat16": (3e-2, 3e-2),
}


def _dtype_name(x) -> str:
    return str(np.asarray(x).dtype) if not hasattr(x, "dtype") else str(x.dtype)


def merge_tolerances(*overrides) -> dict[str, tuple[float, float]]:
    out = dict(TOLERANCES)
    for o in overrides:
        if not o:
            continue
        for k, v in dict(o).items():
            if isinstance(v, Mapping):
                r, a = out.get(k, (0.0, 0.0))
                v = (float(v.get("rtol", r)), float(v.get("atol", a)))
            out[k] = (float(v[0]), float(v[1]))
    return out


def tolerance_for(dtype_name: str, tolerances) -> tuple[float, float] | None:
    if dtype_name in tolerances:
        return tolerances[dtype_name]
    return None  # exact


@dataclass
class Comparison:
    name: str
    ok: bool
    max_abs_err: float
    max_rel_err: float
    where: tuple[int, ...] | None  # index of the worst (or first failing) element
    got: float | None
    want: float | None
    message: str = ""


# from this many elements a floating comparison runs where the arrays are (see _on_device)
DEVICE_MIN_ELEMENTS = 1 << 24


def compare(name: str, got, want, tolerances, dtype_name: str | None = None) -> Comparison:
    dtype_name = dtype_name or _dtype_name(want)
    big = _on_device(name, got, want, tolerances, dtype_name)
    if big is not None:
        return big
    a = np.asarray(got)
    b = np.asarray(want)
    if a.shape != b.shape:
        return Comparison(
            name,
            False,
            float("inf"),
            float("inf"),
            None,
            None,
            None,
            f"{name}: shape {a.shape}, the reference gives {b.shape}",
        )
    if a.size == 0:
        return Comparison(name, True, 0.0, 0.0, None, None, None)
    tol = tolerance_for(dtype_name, tolerances)
    if tol is None or (not np.issubdtype(b.dtype, np.inexact) and b.dtype.name != "bfloat16"):
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        rtol, atol = 0.0, 0.0
    else:
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        rtol, atol = tol
    scale = max(1.0, float(np.nanmax(np.abs(b64))) if np.isfinite(b64).any() else 1.0)
    with np.errstate(invalid="ignore"):  # inf - inf: equal infinities match (below)
        diff = np.where(a64 == b64, 0.0, np.abs(a64 - b64))
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    both_nan = nan_a & nan_b
    diff = np.where(both_nan, 0.0, diff)
    diff = np.where(nan_a ^ nan_b, np.inf, diff)
    bad = ~(diff <= atol * scale + rtol * np.abs(np.where(nan_b, 0.0, b64)))
    rel = diff / (np.abs(np.where(nan_b, 0.0, b64)) + atol * scale + (0 if atol else 1e-300))
    max_abs = float(np.max(diff))
    max_rel = float(np.max(rel))
    if bad.any():
        k = int(np.argmax(np.where(bad, diff, -1.0)))
        where = tuple(int(i) for i in np.unravel_index(k, a.shape))
        g, w = float(a64.flat[k]), float(b64.flat[k])
        nbad = int(bad.sum())
        what = "NaN (poisoned or unwritten?)" if np.isnan(g) and not np.isnan(w) else f"{g:.6g}"
        msg = (
            f"{name}{list(where)} is {what}, the reference gives {w:.6g} "
            f"(|err| {diff.flat[k]:.3g}; {nbad} of {a.size} elements out of tolerance "
            f"rtol={rtol:g}, atol={atol:g}x{scale:.3g})"
        )
        return Comparison(name, False, max_abs, max_rel, where, g, w, msg)
    k = int(np.argmax(diff))
    where = tuple(int(i) for i in np.unravel_index(k, a.shape))
    return Comparison(name, True, max_abs, max_rel, where, float(a64.flat[k]), float(b64.flat[k]))


def _split(shape: tuple[int, ...]) -> int | None:
    """The axis that splits ``shape`` into (rows, columns) with both products below 2**31
    and the fewest rows (None: no such split).  JAX's indices are int32."""
    best = None
    for i in range(len(shape) + 1):
        rows, cols = math.prod(shape[:i]), math.prod(shape[i:])
        if rows < 2**31 and cols < 2**31 and (best is None or rows < best[0]):
            best = (rows, i)
    return None if best is None else best[1]


def _on_device(name, got, want, tolerances, dtype_name) -> Comparison | None:
    """:func:`compare` of two large floating arrays on their device, or None (the host's way).

    At production sizes (a gradient of a 2.7e9-element KV cache) the host's float64
    comparison makes a dozen temporaries of the whole tensor after copying both arrays
    back; here only a few scalars and one row of counts leave the device.  The rule is the
    same (``|a - b| <= atol*scale + rtol*|b|``, NaN only against NaN) in float32, which
    for float32, float16 and bfloat16 tensors changes the error by at most an ulp of
    float32, far inside every tolerance.  Integers, exact dtypes, float64 and arrays
    below :data:`DEVICE_MIN_ELEMENTS` keep the host's comparison."""
    tol = tolerance_for(dtype_name, tolerances)
    shape = tuple(getattr(got, "shape", ()))
    if tol is None or dtype_name not in ("float32", "float16", "bfloat16"):
        return None
    if math.prod(shape) < DEVICE_MIN_ELEMENTS or shape != tuple(getattr(want, "shape", ())):
        return None
    cut = _split(shape)
    if cut is None:
        return None
    import jax
    import jax.numpy as jnp

    if not isinstance(got, jax.Array) or not isinstance(want, jax.Array):
        return None
    rtol, atol = tol
    rows, cols = math.prod(shape[:cut]), math.prod(shape[cut:])
    st = _device_stats(jnp.reshape(got, (rows, cols)), jnp.reshape(want, (rows, cols)), rtol, atol)
    (
        scale,
        max_abs,
        max_rel,
        per_row,
        bad_row,
        bad_col,
        worst_row,
        worst_col,
        g_bad,
        w_bad,
        g_w,
        w_w,
    ) = (np.asarray(x) for x in jax.device_get(st))
    nbad = int(per_row.astype(np.int64).sum())
    if nbad:
        k = int(bad_row) * cols + int(bad_col)
        where = tuple(int(i) for i in np.unravel_index(k, shape))
        g, w = float(g_bad), float(w_bad)
        diff = abs(g - w) if not (np.isnan(g) or np.isnan(w)) else float("inf")
        what = "NaN (poisoned or unwritten?)" if np.isnan(g) and not np.isnan(w) else f"{g:.6g}"
        msg = (
            f"{name}{list(where)} is {what}, the reference gives {w:.6g} "
            f"(|err| {diff:.3g}; {nbad} of {rows * cols} elements out of tolerance "
            f"rtol={rtol:g}, atol={atol:g}x{float(scale):.3g})"
        )
        return Comparison(name, False, float(max_abs), float(max_rel), where, g, w, msg)
    k = int(worst_row) * cols + int(worst_col)
    where = tuple(int(i) for i in np.unravel_index(k, shape))
    return Comparison(name, True, float(max_abs), float(max_rel), where, float(g_w), float(w_w))


def _device_stats(a, b, rtol: float, atol: float):
    import jax

    global _STATS
    if _STATS is None:
        _STATS = jax.jit(_stats, static_argnums=(2, 3))
    return _STATS(a, b, rtol, atol)


_STATS = None


def _stats(a, b, rtol: float, atol: float):
    """Scalars of the comparison of ``a`` and ``b`` (2-D, rows x columns), the host's rule."""
    import jax.numpy as jnp

    a = a.astype(jnp.float32)
    b = b.astype(jnp.float32)
    na, nb = jnp.isnan(a), jnp.isnan(b)
    ab = jnp.abs(b)
    big = jnp.max(jnp.where(nb, -jnp.inf, ab))
    scale = jnp.where(jnp.isfinite(b).any(), jnp.maximum(1.0, big), 1.0)
    diff = jnp.where(a == b, 0.0, jnp.abs(a - b))
    diff = jnp.where(na & nb, 0.0, diff)
    diff = jnp.where(na ^ nb, jnp.inf, diff)
    bref = jnp.where(nb, 0.0, ab)
    bad = ~(diff <= atol * scale + rtol * bref)
    rel = diff / (bref + atol * scale + (0.0 if atol else jnp.finfo(jnp.float32).tiny))

    def first_max(x):  # (row, column) of the first largest element, as numpy's argmax
        row_best = jnp.max(x, axis=1)
        r = jnp.argmax(row_best)
        return r, jnp.argmax(x[r])

    br, bc = first_max(jnp.where(bad, diff, -1.0))
    wr, wc = first_max(diff)
    per_row = jnp.sum(bad, axis=1, dtype=jnp.int32)
    return (
        scale,
        jnp.max(diff),
        jnp.max(rel),
        per_row,
        br,
        bc,
        wr,
        wc,
        a[br, bc],
        b[br, bc],
        a[wr, wc],
        b[wr, wc],
    )
