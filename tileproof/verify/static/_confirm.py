"""Concrete confirmation: a symbolic refutation is reported only when a concrete run agrees.

The witness method proves coverage; when it fails, the counterexample's sizes
and data are run through the model's interpreter (:mod:`tileproof.model`), and an
element is reported unwritten (or read before written) only when no
execution writes it (before).  This module holds those runs, memoised per
input, and the words for what they found (``rows 0..47``, how often each
store ran).
"""

from __future__ import annotations

import itertools

from ... import shapes
from ...model import Access
from ...model import _interp as interp
from ._context import Analysis, Instance, Site

__all__ = [
    "all_elements",
    "cells_of",
    "data_of",
    "noun",
    "run_events",
    "store_counts",
    "stores_of",
    "unwritten_reads",
    "unwritten_rows",
]


def run_events(
    an: Analysis, sizes: dict, data: dict | None = None, cells: dict | None = None
) -> list:
    """Concrete events at these sizes and data values (one run per distinct input)."""
    key = (
        "events",
        tuple(sorted(sizes.items())),
        tuple(sorted((data or {}).items())),
        tuple(sorted((cells or {}).items())),
    )
    got = an.memo.get(key)
    if got is None:
        got = an.memo[key] = interp.events(an.model, sizes, data=data, cells=cells)
    return got


def cells_of(an: Analysis, cex: dict, tag: str | None = None) -> dict:
    """``{(tensor, index): value}`` for the data symbols of a counterexample whose index it
    determines (the reads of instance ``tag`` and shared ones first)."""
    out: dict = {}
    names = sorted(cex, key=lambda k: (k.partition("__")[2] not in ("", tag), k))
    for k in names:
        base, sep, t = k.partition("__")
        d = an.data.get(base)
        if d is None or d.tensor not in an.model.tensors:  # no table's cell (a step count)
            continue
        inst = an.instance(None, t) if sep else Instance({}, "")
        try:
            idx = tuple(inst(x).evaluate(cex) for x in d.index)
        except (shapes.ShapeError, ZeroDivisionError):
            continue
        out.setdefault((d.tensor, idx), int(cex[k]))
    return out


def stores_of(evs, name: str) -> list:
    return [
        ev
        for ev in evs
        if isinstance(ev.node, Access) and ev.node.kind == "store" and ev.node.tensor == name
    ]


def unwritten_rows(t, sizes, element, writes, limit: int = 4096) -> list[int]:
    """First-dimension indices (the others as in ``element``) that no write touches."""
    n0 = t.shape[0].evaluate(sizes) if t.shape else 0
    rows = []
    for x in range(min(n0, limit)):
        el = (x, *element[1:])
        if not any(interp.covers(ev.node, ev.env, el) for ev in writes):
            rows.append(x)
    return rows or [element[0]]


def store_counts(an: Analysis, stores: list[Site], writes, sizes) -> str:
    parts = []
    for s in stores:
        n = sum(1 for ev in writes if ev.node is s.node)
        parts.append(f"the store at {s.loc.short} runs {n} time{'s' * (n != 1)}")
    grid = ", ".join(f"{p} < {an.extents[p]} = {an.extents[p].evaluate(sizes)}" for p in an.pids)
    return f"; {'; '.join(parts)}" + (f" (grid {grid})" if grid else "")


def noun(what: str, vals) -> str:
    """``rows 0..47`` / ``row 5``: the word in the number the values call for."""
    text = ranges_text(list(vals))
    single = len(set(vals)) == 1
    return f"{what[:-1] if single else what} {text}"


def ranges_text(vals: list[int]) -> str:
    vals = sorted(set(vals))
    parts, i = [], 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}..{vals[j]}")
        i = j + 1
    if len(parts) > 6:
        parts = [*parts[:5], "..."]
    return ", ".join(parts)


def data_of(an: Analysis, cex: dict, tag: str | None = None) -> dict[str, int]:
    out = {}
    for k, v in cex.items():
        base, _, t = k.partition("__")
        if base in an.data and (tag is None or t == tag or not t):
            out.setdefault(base, v)
    return out


def all_elements(dims, limit: int = 1 << 20):
    total = 1
    for d in dims:
        total *= max(d, 0)
    if total > limit:
        raise interp.TooLarge(f"{total} elements")
    return itertools.product(*(range(d) for d in dims))


def _before(seq: int, lane, ev) -> bool:
    """A write (its position ``seq`` and lane mark) of the reader's program precedes the read
    ``ev``: another lane of the same lanes region only across a lanes barrier (the concrete
    run executes lanes one after the other), otherwise in program order."""
    if lane is not None and ev.lane is not None and lane[0] == ev.lane[0] and lane[1] != ev.lane[1]:
        return lane[2] < ev.lane[2]
    return seq < ev.seq


def unwritten_reads(acc: Access, evs, limit: int = 2_000_000) -> list[tuple[int, ...]]:
    """Elements some execution of ``acc`` reads that no earlier write touched."""
    written: dict[tuple, list] = {}
    budget = [0]
    for ev in evs:
        n = ev.node
        if isinstance(n, Access) and n.kind == "store" and n.tensor == acc.tensor:
            for el in interp.touched(n, ev.env):
                budget[0] += 1
                if budget[0] > limit:
                    raise interp.TooLarge("too many elements")
                written.setdefault(el, []).append((ev.phase, ev.program, ev.seq, ev.lane))
    out = set()
    for ev in evs:
        if ev.node is not acc:
            continue
        for el in interp.touched(acc, ev.env):
            ok = any(
                ph < ev.phase or (prog == ev.program and _before(seq, lane, ev))
                for ph, prog, seq, lane in written.get(el, ())
            )
            if not ok:
                out.add(el)
    return sorted(out)
