"""``split``: tiles halved across lanes divide evenly; no reduction collapses a split axis.

Formal statements (tile shapes are concrete, so both are decided exactly by
evaluation, no solver needed):

* ``lane_part`` of a tile along axis ``k`` over ``n`` lanes, and every tile loaded or
  stored inside ``lanes(n, halve=k)`` (the declared split halves it): ``shape_k mod n == 0``;
* a reduction (or contraction) over an axis split across lanes inside the split
  region sees only each lane's share: always ``violated``.
"""

from __future__ import annotations

from ...model import LanePart, SplitReduce
from ...report import Obligation
from ...report._keys import CexKey
from ._context import Analysis

__all__ = ["check"]

_Q = CexKey.quantity  # the numbers a split finding names


def check(an: Analysis) -> list[Obligation]:
    out = []
    for site in an.sites:
        node = site.node
        if isinstance(node, LanePart):
            out.append(_part(node))
        elif isinstance(node, SplitReduce):
            out.append(_reduce(node))
    return out


def _part(node: LanePart) -> Obligation:
    what = node.what if node.what == "lane_part" else f"{node.what} under lanes(halve=)"
    name = (
        f"{what} at {node.loc.short} splits axis {node.axis} of a {list(node.shape)} tile "
        f"evenly across {node.n} lanes"
    )
    if node.extent % node.n == 0:
        return Obligation("split", "proved", name, node.loc)
    return Obligation(
        "split",
        "violated",
        f"{what} at {node.loc.short} cannot split axis {node.axis} of a {list(node.shape)} tile "
        f"across {node.n} lanes: {node.extent} is not divisible by {node.n} "
        f"({node.extent} % {node.n} = {node.extent % node.n})",
        node.loc,
        counterexample={_Q("extent"): node.extent, _Q("lanes"): node.n, _Q("axis"): node.axis},
        hint="Run this phase with task-parallel lanes (lanes(n) without halve=) or pad the tile.",
    )


def _reduce(node: SplitReduce) -> Obligation:
    return Obligation(
        "split",
        "violated",
        f"{node.primitive} at {node.loc.short} reduces over axis {node.axis}, which is split across "
        "lanes: each lane reduces only its share",
        node.loc,
        counterexample={_Q("axis"): node.axis},
        hint="Combine the lanes' partial results across lanes, or reduce outside the split region.",
    )
