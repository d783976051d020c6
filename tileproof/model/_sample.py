"""Concrete sizes and index-tensor contents for a run of the model (pictures, ``show``).

Sizes are checked against the kernel's domain; index tensors are sampled within their
declared ``values`` (``distinct`` ones without replacement), work tables built from what
they enumerate -- every declaration honoured, as in :class:`._data.Oracle`, which fills
values lazily for a run that confirms a counterexample instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from .. import shapes
from ..shapes._expr import BoolOp, Cmp
from ._data import RunError
from ._eval import holds
from ._nodes import Model

if TYPE_CHECKING:
    from ..spec._errors import Location

__all__ = ["resolve_sizes", "sample_data"]


def resolve_sizes(
    model: Model,
    given: Mapping[str, int],
    defaults: Mapping[str, int] | None = None,
    where: Location | None = None,
) -> dict[str, int]:
    """A value for every size: ``given``, else ``defaults``; checked against the domain."""
    sizes: dict[str, int] = {}
    unknown = sorted(set(given) - set(model.sizes))
    if unknown:
        raise RunError(
            f"kernel {model.name} has no size named {', '.join(unknown)} "
            f"(sizes: {', '.join(model.sizes) or 'none'})",
            where,
            "Fix the --sizes argument.",
        )
    missing = []
    for s in model.sizes:
        if s in given:
            sizes[s] = int(given[s])
        elif defaults and s in defaults:
            sizes[s] = int(defaults[s])
        else:
            missing.append(s)
    if missing:
        example = ",".join(f"{s}=..." for s in missing)
        raise RunError(
            f"kernel {model.name} needs concrete values for {', '.join(missing)}",
            where,
            f"Pass them as --sizes {example}.",
        )
    for s, v in sizes.items():
        lo = model.lower_bounds.get(s, 1)
        if v < lo:
            raise RunError(
                f"size {s}={v} is below its minimum {lo}",
                where,
                "Choose sizes inside the kernel's domain.",
            )
    bad = []
    for a in model.assume:
        try:
            ok = bool(a.evaluate(sizes))
        except ZeroDivisionError:
            ok = False
        if not ok:
            bad.append(str(a))
    if bad:
        shown = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise RunError(
            f"the sizes {shown} are outside the domain of {model.name}: "
            f"{'; '.join(bad)} does not hold",
            where,
            "Choose sizes that satisfy the kernel's assume=[...].",
        )
    return sizes


def _concrete_shape(model: Model, name: str, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(int(d.evaluate(sizes)) for d in model.tensors[name].shape)


def _value_interval(
    cond: shapes.Formula, sizes: Mapping[str, int]
) -> tuple[int | None, int | None]:
    """Bounds on ``v`` read off the comparisons of a conjunction (``0 <= v < P`` and the like)."""
    lo, hi = None, None
    parts = cond.args if isinstance(cond, BoolOp) and cond.kind == "and" else (cond,)
    v = shapes.sym("v")
    for c in parts:
        if not isinstance(c, Cmp):
            continue
        diff = c.lhs - c.rhs  # c: diff OP 0
        coef = (diff - diff.subs({"v": 0})).subs({"v": 1})
        if not coef.is_const or (diff - coef * v).free_symbols() & {"v"}:
            continue
        k = coef.const_value
        if k not in (1, -1):
            continue
        rest = int((diff - coef * v).evaluate(sizes))  # k*v + rest OP 0
        op = (
            c.op
            if k == 1
            else {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[c.op]
        )
        bound = -rest * k  # v OP bound
        if op in ("<", "<="):
            b = bound - (op == "<")
            hi = b if hi is None else min(hi, b)
        elif op in (">", ">="):
            b = bound + (op == ">")
            lo = b if lo is None else max(lo, b)
        elif op == "==":
            lo = bound if lo is None else max(lo, bound)
            hi = bound if hi is None else min(hi, bound)
    return lo, hi


def sample_data(
    model: Model, sizes: Mapping[str, int], given: Mapping[str, object] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Concrete contents for every index tensor: ``given`` ones checked, the others sampled."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    given = dict(given or {})
    explicit = set(given)
    for name, t in model.tensors.items():
        if t.values is None:
            continue
        shape = _concrete_shape(model, name, sizes)
        if name in given:
            arr = np.broadcast_to(np.asarray(given.pop(name), dtype=np.int64), shape).copy()
            ok = holds(t.values, {**sizes, "v": arr})
            if not np.all(ok):
                bad = tuple(int(i) for i in np.argwhere(~np.broadcast_to(ok, shape))[0])
                raise RunError(
                    f"the given {name}{list(bad)} = {int(arr[bad])} is outside its declared "
                    f"range {t.values}",
                    t.where,
                    "Give values inside the range.",
                )
            out[name] = arr
            continue
        lo, hi = _value_interval(t.values, sizes)
        lo = 0 if lo is None else lo
        hi = lo + 1023 if hi is None else hi
        if hi < lo:
            raise RunError(
                f"the range {t.values} of {name} admits no value at these sizes",
                t.where,
                "Choose other sizes.",
            )
        if getattr(t, "distinct", False):  # pairwise different: a sample without replacement
            count = math.prod(shape)
            if hi - lo + 1 < count:
                raise RunError(
                    f"{name} holds {count} distinct values but its range {t.values} admits "
                    f"only {hi - lo + 1} at these sizes",
                    t.where,
                    "Choose other sizes.",
                )
            out[name] = (lo + rng.permutation(hi - lo + 1)[:count]).reshape(shape).astype(np.int64)
            continue
        arr = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
        for _ in range(8):  # the range may hold more than bounds (``v % 2 == 0``): resample misses
            ok = np.broadcast_to(holds(t.values, {**sizes, "v": arr}), shape)
            if ok.all():
                break
            arr[~ok] = rng.integers(lo, hi + 1, size=int((~ok).sum()), dtype=np.int64)
        else:
            raise RunError(
                f"could not sample values of {name} satisfying {t.values}",
                t.where,
                f"Pass its contents explicitly (data={{'{name}': ...}}).",
            )
        out[name] = arr
    if given:
        raise RunError(
            f"data given for {', '.join(sorted(given))}, which "
            f"{'is' if len(given) == 1 else 'are'} no index tensor of {model.name}"
        )
    tables = [
        n
        for n, t in model.tensors.items()
        if getattr(t, "enumerates", None) is not None and n not in explicit
    ]
    if tables:  # work tables are spec declarations: their semantics live there
        from ..spec._decl import build_enumeration
        from ..spec._errors import SpecError
    for name, t in model.tensors.items():  # work tables: built from what they enumerate
        if getattr(t, "enumerates", None) is None or name in explicit:
            continue
        try:
            built = build_enumeration(model.tensors, name, sizes, out)
        except SpecError as e:
            raise RunError(e.message, t.where, "Choose other sizes or pass the table.") from None
        out.update(
            {
                k: np.asarray(v, dtype=np.int64)
                for k, v in built.items()
                if k == name or k not in explicit
            }
        )
    return out
