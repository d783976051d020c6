"""Pictures of a schedule at concrete sizes: coverage heat map, ring chart, phase timeline.

Each picture is drawn from one :func:`tileproof.model.run` of the
model, with matplotlib's Agg backend (files only, no display):

- :func:`coverage` — how many times each element of an output (or scratch)
  tensor is stored: never, once, or twice and more, in three distinct colours;
  stores that land outside the tensor are counted in the title; an element
  (a counterexample's) can be marked;
- :func:`ring` — ranks x steps: the chunks each rank receives and folds at
  every step, duplicates and never-folded chunks highlighted, sends off an
  open edge marked;
- :func:`timeline` — programs (and their lanes) x phases: the work done
  between barriers, the barriers each program reaches, early exits.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ..model._data import RunError
from ..model._interp import Schedule
from ..report._keys import key_of

__all__ = ["COVERAGE_COLORS", "coverage", "element_of", "ring", "timeline"]

COVERAGE_COLORS = ("#d62728", "#2ca02c", "#ff7f0e")  # never, once, twice or more
_FOLD_OK, _FOLD_DUP, _EMPTY, _MISSING = "#a6d96a", "#f46d43", "#f0f0f0", "#d73027"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _title_sizes(s: Schedule) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.sizes.items()) or "its fixed sizes"


def element_of(obligation, tensors: Sequence[str]) -> tuple[str | None, tuple[int, ...] | None]:
    """The tensor and element a violated obligation names (the ``element`` keys of its
    counterexample, in axis order)."""
    ce = dict(getattr(obligation, "counterexample", None) or {})
    detail = dict(getattr(obligation, "detail", None) or {})
    coords = sorted(
        (key.at[0], int(v))
        for key, v in ((key_of(k), v) for k, v in ce.items())
        if key.role == "element"
    )
    element = tuple(v for _axis, v in coords) or tuple(
        int(x) for x in detail.get("element", ()) or ()
    )
    tensor = detail.get("tensor")
    if tensor is None:
        words = str(getattr(obligation, "message", "")).replace(",", " ").replace("[", " ").split()
        tensor = next((w for w in words if w in tensors), None)
    return tensor, (element or None)


def _as_2d(counts: np.ndarray, wrap: int = 64) -> tuple[np.ndarray, str, str]:
    """A 2-D view of per-element counts (NaN pads a wrapped 1-D tensor), and the axis labels."""
    if counts.ndim == 0:
        return counts.reshape(1, 1).astype(float), "element", ""
    if counts.ndim == 1:
        n = counts.shape[0]
        if n <= wrap:
            return counts.reshape(1, -1).astype(float), "", "index"
        rows = -(-n // wrap)
        grid = np.full(rows * wrap, np.nan)
        grid[:n] = counts
        return grid.reshape(rows, wrap), f"index // {wrap}", f"index % {wrap}"
    rows = math.prod(counts.shape[:-1])
    label = "row" if counts.ndim == 2 else f"dims 0..{counts.ndim - 2} (flattened)"
    return counts.reshape(rows, counts.shape[-1]).astype(float), label, f"dim {counts.ndim - 1}"


def _cell(el: tuple[int, ...], shape: tuple[int, ...], wrap: int = 64) -> tuple[int, int]:
    """Where element ``el`` sits in :func:`_as_2d`'s view: (row, column)."""
    if len(shape) == 1:
        return (0, el[0]) if shape[0] <= wrap else divmod(el[0], wrap)
    return int(np.ravel_multi_index(el[:-1], shape[:-1])), el[-1]


def coverage(
    s: Schedule,
    out: str,
    *,
    tensors: Sequence[str] | None = None,
    mark: tuple | None = None,
    dpi: int = 110,
) -> list[str]:
    """Heat map of store counts per element of each tensor; returns the tensors drawn.

    ``mark``: ``(tensor or None, element[, label])`` drawn as a cross.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    plt = _plt()
    model = s.model
    names = list(tensors) if tensors else [n for n, t in model.tensors.items() if t.role != "input"]
    for n in names:
        if n not in model.tensors:
            raise RunError(
                f"{model.name} has no tensor {n!r} (tensors: {', '.join(model.tensors)})",
                None,
                "Fix --tensor.",
            )
    if not names:
        raise RunError(
            f"{model.name} declares no output or scratch tensor to draw",
            None,
            "Name one with --tensor.",
        )
    cmap = ListedColormap(COVERAGE_COLORS)
    norm = BoundaryNorm([-0.5, 0.5, 1.5, 2.5], cmap.N)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.2 + 3.2 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        counts, outside = s.writes(name)
        grid, ylabel, xlabel = _as_2d(np.minimum(counts, 2))
        ax.imshow(
            np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto", interpolation="nearest"
        )
        n0, n1, n2 = (int((grid == v).sum()) for v in (0, 1, 2))
        role = model.tensors[name].role
        title = f"{model.name}: stores into {role} {name}{list(counts.shape)} at {_title_sizes(s)}"
        if outside:
            title += f"\n{outside} stored element(s) fall outside {name}"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.yaxis.get_major_locator().set_params(integer=True)
        if grid.shape[0] == 1:
            ax.set_yticks([])
        handles = [
            Patch(color=COVERAGE_COLORS[0], label=f"never written ({n0})"),
            Patch(color=COVERAGE_COLORS[1], label=f"written once ({n1})"),
            Patch(color=COVERAGE_COLORS[2], label=f"written 2+ times ({n2})"),
        ]
        if mark is not None and (mark[0] in (None, name)) and mark[1] is not None:
            el = tuple(mark[1])
            if len(el) == counts.ndim and all(0 <= e < d for e, d in zip(el, counts.shape)):
                r, c = _cell(el, counts.shape) if counts.ndim else (0, 0)
                ax.plot([c], [r], marker="X", markersize=14, color="black", markeredgecolor="white")
                handles.append(
                    plt.Line2D(
                        [],
                        [],
                        marker="X",
                        color="black",
                        linestyle="",
                        label=f"{mark[2] if len(mark) > 2 else 'counterexample'} {list(el)}",
                    )
                )
            else:
                ax.text(
                    0.01,
                    -0.25,
                    f"counterexample element {list(el)} lies outside {name}",
                    transform=ax.transAxes,
                    fontsize=9,
                    color="black",
                )
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
        )
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return names


def ring(s: Schedule, out: str, *, dpi: int = 110) -> dict:
    """Rank x step chart; returns what it found: duplicates, missing chunks, off-edge sends."""
    model = s.model
    if model.ranks is None:
        raise RunError(
            f"{model.name} has no ranks (ranks=Ranks(...)), so it has no ring to draw",
            None,
            "Draw --coverage or --timeline instead.",
        )
    plt = _plt()
    rank_var = model.ranks[0]
    n = int(np.max(s.programs[rank_var], initial=-1)) + 1
    # columns: (loop nesting signature, loop indices) in program order
    cells: dict = defaultdict(lambda: {"fold": [], "recv": []})
    columns: dict = {}
    for kind, events in (("fold", s.folds), ("recv", s.comms)):
        for ev in events:
            ranks = ev.env[rank_var]
            idx = (
                np.stack([ev.env[v] for v in ev.loops])
                if ev.loops
                else np.zeros((0, len(ev)), np.int64)
            )
            active = ev.cond if kind == "fold" else ev.recv
            chunks = ev.chunk if kind == "fold" else ev.received
            for j in np.flatnonzero(active):
                col = (len(ev.loops), tuple(int(x) for x in idx[:, j]))
                columns.setdefault(col, None)
                cells[(int(ranks[j]), col)][kind].append(int(chunks[j]))
    off_edge = []
    for ev in s.comms:
        ranks = ev.env[rank_var]
        bad = ev.send & ((ev.dst < 0) | (ev.dst >= n))
        for j in np.flatnonzero(bad):
            off_edge.append((int(ranks[j]), int(ev.dst[j])))
    cols = sorted(columns)
    folded: dict[int, list[int]] = defaultdict(list)
    fig_w = min(2.0 + 1.1 * (len(cols) + 1), 24)
    fig, ax = plt.subplots(figsize=(fig_w, 1.4 + 0.55 * n))
    duplicates = []
    for x, col in enumerate(cols):
        for r in range(n):
            cell = cells.get((r, col))
            folds = cell["fold"] if cell else []
            recv = cell["recv"] if cell else []
            dup = [c for c in folds if c in folded[r] or folds.count(c) > 1]
            if dup:
                duplicates.append((r, col, sorted(set(dup))))
            folded[r].extend(folds)
            color = _EMPTY if not folds else (_FOLD_DUP if dup else _FOLD_OK)
            ax.add_patch(plt.Rectangle((x, r), 1, 1, facecolor=color, edgecolor="white"))
            if folds:
                ax.text(
                    x + 0.5,
                    r + 0.62,
                    "fold " + ",".join(map(str, folds)),
                    ha="center",
                    va="center",
                    fontsize=8,
                    fontweight="bold",
                )
            if recv:
                ax.text(
                    x + 0.5,
                    r + 0.28,
                    "got " + ",".join(str(c) if 0 <= c < n else "?" for c in recv),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#333333",
                )
    missing = {}
    x = len(cols)
    for r in range(n):
        miss = [c for c in range(n) if c not in folded[r]]
        if miss:
            missing[r] = miss
        ax.add_patch(
            plt.Rectangle((x, r), 1, 1, facecolor=_MISSING if miss else _FOLD_OK, edgecolor="white")
        )
        ax.text(
            x + 0.5,
            r + 0.5,
            ("never " + ",".join(map(str, miss))) if miss else "all",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if miss else "black",
        )
    for r, dst in off_edge:
        ax.text(
            x + 1.05,
            r + 0.5,
            f"sends to {dst}: off the edge",
            va="center",
            fontsize=7,
            color=_MISSING,
        )
    labels = []
    for depth, idx in cols:
        labels.append("start" if depth == 0 else "step " + ",".join(map(str, idx)))
    ax.set_xlim(0, x + (2.2 if off_edge else 1))
    ax.set_ylim(n, 0)
    ax.set_xticks([i + 0.5 for i in range(len(cols) + 1)], [*labels, "missing"], fontsize=8)
    ax.set_yticks([r + 0.5 for r in range(n)], [f"rank {r}" for r in range(n)], fontsize=8)
    ax.tick_params(length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    title = (
        f"{model.name}: chunks each rank receives and folds ({model.ranks[2]}, {_title_sizes(s)})"
    )
    if duplicates or missing or off_edge:
        title += (
            f"\n{len(duplicates)} duplicate fold(s), {len(missing)} rank(s) missing chunks, "
            f"{len(off_edge)} send(s) off the edge"
        )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return {"duplicates": duplicates, "missing": missing, "off_edge": off_edge, "steps": len(cols)}


def timeline(s: Schedule, out: str, *, max_programs: int = 64, dpi: int = 110) -> dict:
    """Programs (x lanes) x phases: work between barriers, barriers reached, exits."""
    plt = _plt()
    model = s.model
    count = s.n_programs
    if count == 0:
        raise RunError(
            f"{model.name} launches no program at {_title_sizes(s)}",
            None,
            "Choose sizes for which the grid is not empty.",
        )
    shown = min(count, max_programs)
    # rows: (program, lane or None)
    work: dict = defaultdict(lambda: defaultdict(lambda: [0, 0]))  # row -> phase -> [loads, stores]
    lanes_of: dict[int, set] = defaultdict(set)
    for ev in s.accesses:
        lane_var = ev.lanes[-1] if ev.lanes else None
        progs = ev.program[ev.row]
        phases = ev.phase[ev.row]
        lane = ev.env[lane_var][ev.row] if lane_var else np.full(len(ev.row), -1)
        key = np.stack([progs, lane, phases], axis=1)
        uniq, cnt = np.unique(key, axis=0, return_counts=True)
        for (p, ln, ph), c in zip(uniq.tolist(), cnt.tolist()):
            if p >= shown:
                continue
            work[(p, ln)][ph][0 if ev.node.kind == "load" else 1] += c
            if ln >= 0:
                lanes_of[p].add(ln)
    reached: dict = defaultdict(list)  # program -> [(phase after, barrier order)]
    n_phases = 1
    for ev in s.barriers:
        if not ev.node.ends_phase:
            continue
        for p, ph in zip(ev.program.tolist(), ev.phase.tolist()):
            if p < shown:
                reached[p].append(ph)
            n_phases = max(n_phases, ph + 2)
    exited = {}
    for ev in s.exits:
        for p, ph in zip(ev.program.tolist(), ev.phase.tolist()):
            if p < shown:
                exited[p] = ph
    rows = []
    for p in range(shown):
        rows.append((p, -1))
        rows.extend((p, ln) for ln in sorted(lanes_of[p]))
    peak = max((sum(v) for r in work.values() for v in r.values()), default=1) or 1
    fig, ax = plt.subplots(figsize=(2.5 + 2.2 * n_phases, 1.2 + 0.26 * len(rows)))
    for y, (p, ln) in enumerate(rows):
        for ph, (loads, stores) in work.get((p, ln), {}).items():
            total = loads + stores
            width = 0.9 * max(total / peak, 0.04)
            lw = width * loads / total if total else 0
            ax.barh(y, lw, left=ph + 0.05, height=0.7, color="#4c72b0")
            ax.barh(y, width - lw, left=ph + 0.05 + lw, height=0.7, color="#dd8452")
        if ln < 0:
            for ph in reached.get(p, []):
                ax.plot([ph + 1], [y], marker="|", markersize=12, color="black")
            if p in exited:
                ax.plot([exited[p] + 0.02], [y], marker="x", color=_MISSING, markersize=8)
    missing = {}
    total_barriers = max((len(v) for v in reached.values()), default=0)
    for p in range(shown):
        if p not in exited and len(reached.get(p, [])) < total_barriers:
            missing[p] = total_barriers - len(reached.get(p, []))
            y = rows.index((p, -1))
            ax.plot(
                [len(reached.get(p, [])) + 1],
                [y],
                marker="o",
                markersize=8,
                markerfacecolor="none",
                markeredgecolor=_MISSING,
            )
    for b in range(1, n_phases):
        ax.axvline(b, color="#999999", linestyle="--", linewidth=0.8)
    ax.set_yticks(
        range(len(rows)),
        [s.program_label(p) if ln < 0 else f"  lane {ln}" for p, ln in rows],
        fontsize=7,
    )
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, n_phases)
    ax.set_xticks([ph + 0.5 for ph in range(n_phases)], [f"phase {ph}" for ph in range(n_phases)])
    from matplotlib.patches import Patch

    handles = [
        Patch(color="#4c72b0", label="loads"),
        Patch(color="#dd8452", label="stores"),
        plt.Line2D(
            [], [], marker="|", color="black", linestyle="", markersize=10, label="reaches barrier"
        ),
        plt.Line2D([], [], marker="x", color=_MISSING, linestyle="", label="exits early"),
    ]
    if missing:
        handles.append(
            plt.Line2D(
                [],
                [],
                marker="o",
                markerfacecolor="none",
                markeredgecolor=_MISSING,
                linestyle="",
                label="skips a barrier",
            )
        )
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
    )
    more = f" (first {shown} of {count} programs)" if shown < count else ""
    ax.set_title(
        f"{model.name}: work per phase and program at {_title_sizes(s)}{more}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return {"phases": n_phases, "programs": count, "barrier_skips": missing, "exits": len(exited)}
