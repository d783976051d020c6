"""What a concrete run of the model records: per node, the rows that executed it.

:func:`._interp.run` fills a :class:`Schedule` (numpy rows per node, every access
element: pictures); :func:`._interp.events` returns one :class:`Event` per node
execution (program order, exact ints: the static layer's confirmation, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._nodes import Access, Model, Node, Unsupported

__all__ = [
    "AccessEvents",
    "BarrierEvents",
    "CommEvents",
    "Event",
    "ExitEvents",
    "FoldEvents",
    "Schedule",
]

PROG = "_prog"  # the row's program number (index into Schedule.programs)


@dataclass
class _Events:
    node: Node
    env: dict[str, np.ndarray]  # every bound name for these rows: program, lanes, loops, data
    phase: np.ndarray  # grid barriers the row passed before the event
    loops: tuple[str, ...]  # enclosing loop variables, outermost first
    lanes: tuple[str, ...]  # enclosing lane variables
    order: int  # the node's position in program order

    @property
    def program(self) -> np.ndarray:
        return self.env[PROG]

    def __len__(self) -> int:
        return len(self.phase)


@dataclass
class AccessEvents(_Events):
    """One row per (execution, tile element): ``element[k]`` is the index along dimension k."""

    element: tuple[np.ndarray, ...] = ()
    row: np.ndarray | None = None  # which execution each element belongs to (index into env)
    in_bounds: np.ndarray | None = None


@dataclass
class BarrierEvents(_Events):
    pass


@dataclass
class ExitEvents(_Events):
    """Rows that left the kernel at an early exit."""


@dataclass
class CommEvents(_Events):
    dst: np.ndarray | None = None
    src: np.ndarray | None = None
    send: np.ndarray | None = None
    recv: np.ndarray | None = None
    sent: np.ndarray | None = None  # origin rank of the chunk sent (-1 unknown)
    received: np.ndarray | None = None  # origin rank of the chunk received (-1 unknown)


@dataclass
class FoldEvents(_Events):
    chunk: np.ndarray | None = None  # origin rank of the chunk folded (-1 unknown)
    cond: np.ndarray | None = None


@dataclass
class Schedule:
    """Everything one concrete run produced, per node, in program order."""

    model: Model
    sizes: dict[str, int]
    data: dict[str, np.ndarray]
    programs: dict[str, np.ndarray]  # grid ids (and the rank) of each program number
    shapes: dict[str, tuple[int, ...]]  # concrete tensor shapes
    accesses: list[AccessEvents] = field(default_factory=list)
    barriers: list[BarrierEvents] = field(default_factory=list)
    exits: list[ExitEvents] = field(default_factory=list)
    comms: list[CommEvents] = field(default_factory=list)
    folds: list[FoldEvents] = field(default_factory=list)
    unsupported: list[Unsupported] = field(default_factory=list)

    @property
    def n_programs(self) -> int:
        return len(self.programs[PROG])

    def writes(self, tensor: str) -> tuple[np.ndarray, int]:
        """How many times each element of ``tensor`` is stored, and the stores outside it."""
        shape = self.shapes[tensor]
        counts = np.zeros(shape, dtype=np.int64)
        outside = 0
        for ev in self.accesses:
            node = ev.node
            assert isinstance(node, Access), node  # access events record Access nodes
            if node.kind != "store" or node.tensor != tensor:
                continue
            ok = ev.in_bounds
            assert ok is not None, node  # run() sets the bounds of every access it records
            outside += int((~ok).sum())
            np.add.at(counts, tuple(e[ok] for e in ev.element), 1)
        return counts, outside

    def program_label(self, p: int) -> str:
        return ", ".join(f"{k}={int(v[p])}" for k, v in self.programs.items() if k != PROG)


@dataclass
class Event:
    """One execution of one node by one program (:func:`events`)."""

    node: Node
    env: dict[str, int]  # sizes, program ids, loop and lane indices, data symbols bound so far
    phase: int  # grid barriers this program passed before the event
    seq: int  # position of the event in its program's run
    program: tuple[int, ...]  # program ids (and the rank when it is no grid axis)
    # (lanes region instance, lane, lanes barriers that lane passed there) inside lanes(),
    # else None: lanes run one after the other, a lanes barrier orders them
    lane: tuple[object, int, int] | None = None
