"""The state of one lowering, shared by the jaxpr walker and the control-flow lowerings.

The walker (:mod:`._lower`) dispatches ``while``/``scan``/``cond`` equations to
:mod:`._loops` and :mod:`._while`, and those interpret their bodies with the
walker again.  Both sides need the interpretation state (:class:`_Ctx`), the
node collector (:class:`_Block`) and the checks that an index or a condition is
modelled (:func:`_need_int`, :func:`_need_cond`): they live here, below both, and
the walker reaches the control-flow modules through ``ctx.walk`` instead of an
import back into :mod:`._lower` -- so the modules of the lowering form no cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import shapes
from ..model import Data, Node, Unsupported
from ..spec._errors import Location
from ..spec._kernel import Kernel
from ._values import SV

__all__ = ["Walker", "_Block", "_Ctx", "_need_cond", "_need_int"]

# (ctx, jaxpr, env, block) -> the values of the jaxpr's outputs
Walker = Callable[["_Ctx", Any, dict, "_Block"], list[SV]]


class _Ctx:
    """Interpretation state: the kernel, fresh names, and where nodes go."""

    def __init__(self, kernel: Kernel, walk: Walker):
        self.kernel = kernel
        self.walk = walk  # the jaxpr walker (``_lower._interp``): loops and branches recurse by it
        self.names: set[str] = set(kernel.sizes) | {g.name for g in kernel.grid}
        self.data: dict[str, Data] = {}
        self.lanes: list[tuple[str, int]] = []  # (lane var, lane count), innermost last
        self.halving: list[tuple[int, int | None]] = []  # (lanes, halved axis) of halve regions
        self.call_locs: list[Location] = []  # user lines of the calls being interpreted
        self.depth = 0  # loops and branches around the current block
        self.ph_level = 0  # loop first passes around the current block (see _loops._ph)
        self.exited = False  # an exit_if() was lowered: the rest is under its guard
        # conditions under which the current node runs (exit guards, branch sides, loop
        # ranges): a ring step's sender must reach it too (see tp_sendrecv)
        self.path: list[shapes.Formula] = []
        self.rank_var = kernel.ranks.name if kernel.ranks is not None else None
        if self.rank_var:
            self.names.add(self.rank_var)

    def fresh(self, base: str) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in base)
        while "__" in base:  # `x__2` names a second instance, `_c0` a coordinate: never ours
            base = base.replace("__", "_")
        base = base.strip("_") or "t"
        if base[0].isdigit():
            base = "v" + base
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name


class _Block:
    """Nodes being collected; an early exit re-roots the rest under a guard."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes

    def add(self, node: Node) -> None:
        self.nodes.append(node)


def _need_int(sv: SV, what: str, loc: Location, block: _Block) -> shapes.Expr | None:
    if sv.is_int:
        return sv.expr
    if sv.is_bool:
        return shapes.where(sv.cond, 1, 0)
    block.add(
        Unsupported(f"{what} depends on {sv.why or 'a value the lowering cannot model'}", loc)
    )
    return None


def _need_cond(sv: SV, what: str, loc: Location, block: _Block) -> shapes.Formula | None:
    if sv.is_bool:
        return sv.cond
    if sv.is_int:
        return shapes.ne(sv.expr, 0)
    block.add(
        Unsupported(f"{what} depends on {sv.why or 'a value the lowering cannot model'}", loc)
    )
    return None
