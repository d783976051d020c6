"""Random inputs for a kernel at concrete sizes.

Floating tensors: standard normal (in the tensor's dtype); above ``_BIG_FLOAT``
elements drawn on the device (a ``jax.Array``), from a seed the point's generator gives.  Index tensors:
values within their declared range (``Tensor.values``, a condition on ``v``
and the sizes), drawn in the shapes that break kernels:

* ``variant`` even — *shuffled*: a random permutation of the admissible
  values, repeated to fill the tensor (a shuffled page table: no page
  follows its predecessor), so pages are distinct where they can be;
* ``variant`` odd — *with replacement*: independent uniform draws (pages
  shared between rows);

and in both, the smallest and the largest admissible value (the last page;
ragged lengths 1 and the maximum) placed at random positions (a one-element
tensor gets the largest in even variants, the smallest in odd ones).  Index tensors
with no declared range get small non-negative values; ``distinct=True`` ones
get pairwise different values.  ``pins`` (``{(tensor, index): value}``, from a
condition point: a sequence length that makes a split empty) then set single
elements, where the value is admissible (kept pairwise different in ``distinct``
tensors by a swap).  Then ``kernel.numeric["derive"](inputs, sizes)``,
if declared, recomputes inputs the host derives from others (a work table from
the sequence lengths).
"""

from __future__ import annotations

import numpy as np

from ._plan import linear_bound, np_dtype

__all__ = ["NoInputs", "draw_inputs", "value_range"]


def _device_normal(seed: int, shape, dtype):
    """A standard-normal tensor of production size, drawn on the default device.

    A 2.7e9-element KV cache takes the host tens of seconds to draw and convert, and
    then crosses to the device anyway; ``jax.random`` draws it there in milliseconds.
    The seed comes from the point's own generator, so a point's inputs stay a function
    of its seed (``--seed`` reruns it exactly)."""
    import jax
    import jax.numpy as jnp

    return jax.random.normal(jax.random.key(seed), tuple(shape), jnp.float32).astype(dtype)


class NoInputs(ValueError):
    """No inputs satisfy the declared ranges at these sizes (the size point is passed over)."""


_UNDECLARED = (0, 7)
_ENUM_LIMIT = 1 << 16


def value_range(decl, sizes) -> tuple[int, int]:
    """Declared (lo, hi) of an index tensor's values at ``sizes`` (inclusive)."""
    info = np.iinfo(np.dtype(decl.dtype))
    if decl.values is None:
        return _UNDECLARED
    lo, hi = linear_bound(decl.values, "v", dict(sizes))
    lo = int(info.min) if lo == -np.inf else max(int(lo), int(info.min))
    hi = int(info.max) if hi == np.inf else min(int(hi), int(info.max))
    return lo, hi


def _admissible_values(decl, sizes, lo, hi, rng) -> np.ndarray:
    if decl.values is None:
        return np.arange(lo, hi + 1)
    env = dict(sizes)

    def ok(v: int) -> bool:
        try:
            return bool(decl.values.evaluate({**env, "v": int(v)}))
        except ZeroDivisionError:
            return False

    if hi - lo + 1 <= _ENUM_LIMIT:
        vals = np.array([v for v in range(lo, hi + 1) if ok(v)], dtype=np.int64)
    else:
        cand = np.unique(
            np.concatenate([[lo, hi], rng.integers(lo, hi, size=_ENUM_LIMIT, endpoint=True)])
        )
        vals = np.array([v for v in cand if ok(v)], dtype=np.int64)
    return vals


_BIG_FLOAT = 1 << 24  # floating tensors above this many elements are drawn in float32 directly


def draw_inputs(
    kernel,
    sizes,
    rng: np.random.Generator,
    variant: int = 0,
    pins: dict | None = None,
    floats: bool = True,
) -> dict[str, np.ndarray]:
    """Inputs at ``sizes`` (see the module docstring).  ``pins``: index-tensor values a
    condition point needs, ``{(tensor, index): value}``; ``floats=False`` leaves the
    floating tensors out (a caller that draws them on the device, at production sizes)."""
    from ._plan import get_plan

    plan = get_plan(kernel, dict(sizes), fast=False)  # shapes only
    out = {}
    for name in kernel.inputs:
        decl = kernel.tensors[name]
        shape = plan.shapes[name]
        n = int(np.prod(shape, dtype=np.int64))
        if decl.dtype == "bool":
            out[name] = rng.random(shape) < 0.5
        elif decl.is_index:
            lo, hi = value_range(decl, sizes)
            vals = _admissible_values(decl, sizes, lo, hi, rng)
            if vals.size == 0:
                raise NoInputs(
                    f"no admissible value for the elements of {name} at sizes {dict(sizes)}"
                )
            if decl.distinct:  # pairwise different: a permutation prefix, extremes swapped in
                if vals.size < n:
                    raise NoInputs(f"{name} needs {n} distinct values, its range has {vals.size}")
                flat = rng.permutation(vals)[:n]
                for pos, want in zip(rng.permutation(n)[:2], (vals.max(), vals.min())):
                    if n and want not in flat:
                        flat[pos] = want
                out[name] = flat.reshape(shape).astype(np.dtype(decl.dtype))
                continue
            if variant % 2 == 0:
                reps = -(-n // vals.size) if n else 0
                flat = (
                    np.concatenate([rng.permutation(vals) for _ in range(reps)])[:n]
                    if reps
                    else vals[:0]
                )
            else:
                flat = rng.choice(vals, size=n, replace=True)
            if n >= 1:
                pos = rng.permutation(n)
                first, second = (
                    (vals.max(), vals.min()) if variant % 2 == 0 else (vals.min(), vals.max())
                )
                flat[pos[0]] = first  # one element alone: the largest and the smallest alternate
                if n >= 2:
                    flat[pos[1]] = second
            out[name] = flat.reshape(shape).astype(np.dtype(decl.dtype))
        elif not floats:
            continue
        elif n > _BIG_FLOAT:  # production sizes: drawn where they run (see _device_normal)
            out[name] = _device_normal(int(rng.integers(2**31)), shape, np_dtype(decl.dtype))
        else:
            x = rng.standard_normal(shape).astype(np.float32)
            out[name] = np.asarray(x.astype(np_dtype(decl.dtype)))
    for (name, at), value in dict(pins or {}).items():
        _pin(kernel, out, name, tuple(at), int(value), sizes)
    derive = kernel.numeric.get("derive")
    if derive is not None:  # inputs the host computes from other inputs (a work table, ...)
        for k, v in dict(derive(out, dict(sizes))).items():
            if k not in out:
                raise ValueError(f"numeric['derive'] of {kernel.name} returns {k!r}, not an input")
            out[k] = np.asarray(v).reshape(plan.shapes[k]).astype(out[k].dtype)
    return out


def _pin(kernel, out: dict, name: str, at: tuple, value: int, sizes) -> None:
    """Set ``out[name][at] = value`` where admissible (a swap keeps ``distinct`` values apart)."""
    decl = kernel.tensors.get(name)
    arr = out.get(name)
    if decl is None or arr is None or not decl.is_index or len(at) != arr.ndim:
        return
    if not all(0 <= i < n for i, n in zip(at, arr.shape)):
        return
    try:
        if decl.values is not None and not decl.values.evaluate({**dict(sizes), "v": value}):
            return
    except ZeroDivisionError:
        return
    info = np.iinfo(arr.dtype)
    if not info.min <= value <= info.max:
        return
    if decl.distinct:
        hit = np.argwhere(arr == value)
        if hit.size:
            arr[tuple(hit[0])] = arr[at]
    arr[at] = value
