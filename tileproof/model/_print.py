"""The model as a text listing: what users and tests read to see what the verifier reasons about.

This module is the listing's frame (the kernel's header: sizes, domain, grid, ranks,
launch, tensors) and its line prefix.  Each node kind prints its own lines
(``Node.list_into`` in :mod:`._nodes`), so a new node kind is listed where it is
defined; :meth:`~._nodes.Model.listing` puts the two together.  It reads the model
through :class:`Listed` and imports nothing from :mod:`._nodes` (no import cycle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Listed", "header", "line_no"]


class Listed(Protocol):
    """What the listing's header reads of a :class:`~._nodes.Model` (read-only)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def sizes(self) -> Sequence[str]: ...
    @property
    def assume(self) -> Sequence[object]: ...
    @property
    def grid(self) -> Sequence[tuple[str, object]]: ...
    @property
    def ranks(self) -> tuple[str, object, str] | None: ...
    @property
    def launch(self) -> Any: ...  # a spec Launch (the model does not import the spec layer)
    @property
    def index_bits(self) -> int: ...
    @property
    def tensors(self) -> Mapping[str, Any]: ...  # spec Tensors, read by attribute


def line_no(line: int) -> str:
    """The listing's line column: ``L29  `` (``L?   `` where the line is unknown)."""
    return f"L{line:<4}" if line else "L?   "


def _launch(launch: Any) -> str:
    """The machine model a barrier's residency depends on, in one line."""
    text = f"start {launch.start}"
    if launch.cores is not None:
        text = f"{launch.cores} cores, " + text
    for t in launch.concurrent:
        text += (
            f"; concurrent {t.name} ({t.programs} programs, {'fenced' if t.fenced else 'unfenced'})"
        )
    return text


def header(model: Listed) -> list[str]:
    """The listing down to its ``body`` line: the kernel, its sizes and domain, grid, ranks,
    launch, index width and tensors."""
    out = [f"kernel {model.name}  ({model.source})"]
    out.append(f"  sizes   {' '.join(model.sizes) or '-'}")
    if model.assume:
        out.append(f"  domain  {'; '.join(str(a) for a in model.assume)}")
    if model.grid:
        out.append("  grid    " + ", ".join(f"{n} < {e}" for n, e in model.grid))
    if model.ranks:
        var, size, topo = model.ranks
        out.append(f"  ranks   {var} < {size} ({topo})")
    if model.launch is not None:
        out.append(f"  launch  {_launch(model.launch)}")
    out.append(f"  index   int{model.index_bits}")
    out.append("  tensors")
    width = max((len(n) for n in model.tensors), default=0)
    for name, t in model.tensors.items():
        shape = ", ".join(str(d) for d in t.shape)
        extra = f"  values {t.values}" if t.values is not None else ""
        extra += "  sharded" if t.sharded else ""
        extra += "  distinct" if getattr(t, "distinct", False) else ""
        extra += f"  index int{t.index_bits}" if t.index_bits is not None else ""
        extra += "  updated" if getattr(t, "updated", False) else ""
        if getattr(t, "enumerates", None) is not None:
            reads = "".join(
                f", {r} = {tn}[{', '.join(map(str, idx))}]" for r, (tn, idx) in t.read_map.items()
            )
            extra += f"  enumerates {{v : {t.enumerates}{reads}}} in [0, {t.count})"
        out.append(f"    {name:<{width}}  {t.role:<7} {t.dtype}[{shape}]{extra}")
    out.append("  body")
    return out
