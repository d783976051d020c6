"""Which inputs of a Pallas kernel a reduction must read in full (the ``reads`` obligation).

A native spec declares ``Input(..., reduced=...)``; an unmodified ``pallas_call`` says
nothing, so the front end infers it.  An input gets the region "every element" when its
reads *traverse* it with the schedule alone:

* at least one load of it has a start that moves with a program id or a loop index
  (a grid axis or a ``fori_loop`` walks over it: a reduction over a grid axis, as a
  split-K partial sum, or over a loop, as a row sum), and
* no load of it depends on data: no data value (a page-table entry, a sequence length
  read from memory) in its start, its mask, the conditions of the branches around it or
  the bounds of the loops around it.

Then an element no program reads does not influence any output, which for a reduction
means it was silently dropped: a floor-divided grid or trip count (``K // bk``) that
loses the tail is refuted even when every output element is written.  Inputs read
through data (``k_pages[block_table[...]]``, loads masked by a length read from memory)
are left out: which elements they must read is the kernel's own business, and an
inferred "all" would be a false alarm.  Leaving an input out only drops an obligation;
it never makes another one proved.
"""

from __future__ import annotations

from ..model import Access, Branch, Lanes, Loop, Model, Node
from ..spec._decl import Region
from ..spec._errors import Location

__all__ = ["Traversed"]


class Traversed(Region):
    """``reduced="all"``, applicable only where the input is traversed without data (above)."""

    def __init__(self, where: Location) -> None:
        super().__init__("all", where)

    def applies(self, model: Model, name: str) -> bool:
        return traversed(model, name)


def traversed(model: Model, name: str) -> bool:
    """Whether every load of ``name`` is free of data and one moves with the schedule."""
    data = set(getattr(model, "data", {}) or {})
    moving = {g for g, _e in model.grid}
    loads: list[tuple[Access, tuple, set]] = []

    def walk(nodes: list[Node], context: tuple, loops: set) -> None:
        for n in nodes:
            if isinstance(n, Access) and n.tensor == name and n.kind == "load":
                loads.append((n, context, loops))
            elif isinstance(n, Loop):
                walk(n.body, (*context, n.lo, n.hi), loops | {n.var})
            elif isinstance(n, Branch):
                walk(n.then, (*context, n.cond), loops)
                walk(n.orelse, (*context, n.cond), loops)
            elif isinstance(n, Lanes):
                walk(n.body, context, loops)

    walk(model.body, (), set())
    if not loads:
        return False
    moves = False
    for acc, context, loops in loads:
        names: set[str] = set()
        for x in (*[d.start for d in acc.dims], acc.mask, *context):
            if x is not None:
                names |= x.free_symbols()
        if names & data:
            return False
        starts: set[str] = set()
        for d in acc.dims:
            starts |= d.start.free_symbols()
        moves |= bool(starts & (moving | loops))
    return moves
