"""Comparing the tiled execution with the reference: tolerances by dtype, worst errors.

An element of the tiled result ``a`` matches the reference ``b`` when::

    |a - b| <= atol * scale + rtol * |b|,      scale = max(1, max |b|)

(``numpy.allclose``'s rule with ``atol`` relative to the reference's
magnitude, so large accumulated outputs and their gradients are judged
alike).  NaN matches only NaN; integers and booleans must be equal.  The
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


def compare(name: str, got, want, tolerances, dtype_name: str | None = None) -> Comparison:
    a = np.asarray(got)
    b = np.asarray(want)
    dtype_name = dtype_name or _dtype_name(want)
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
    diff = np.abs(a64 - b64)
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
