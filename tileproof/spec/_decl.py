"""Declarations a kernel spec is made of: tensors, launch and machine, ranks.

Sizes are shape expressions (strings or :mod:`tileproof.shapes` objects);
they are parsed here, at declaration time, so a typo is reported against the
spec's own line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .. import shapes
from ._errors import Location, SpecError, caller_location

__all__ = ["Launch", "Ranks", "Task", "Tensor"]

Role = Literal["input", "output", "scratch"]


def parse_size(x: object, where: Location, what: str) -> shapes.Expr:
    try:
        return shapes.as_expr(x)
    except shapes.ShapeError as e:
        raise SpecError(f"in {what}: {e}", where, "Fix the shape expression.") from None


def parse_condition(x: object, where: Location, what: str) -> shapes.Formula:
    try:
        return shapes.coerce_formula(x)
    except shapes.ShapeError as e:
        raise SpecError(f"in {what}: {e}", where, "Fix the condition.") from None


@dataclass(frozen=True)
class Tensor:
    """A tensor of the kernel: symbolic shape, dtype, role.

    ``values`` declares the range of an index tensor's elements as a condition
    on ``v`` (``"0 <= v < P"``); the verifier assumes nothing else about them.
    ``sharded`` marks a per-rank shard whose tiles carry ring provenance.
    ``index_bits`` overrides the kernel's index width for offsets into it.
    ``distinct`` declares an index tensor's elements pairwise different (a page
    table whose sequences share no page, a work list without repeated entries):
    two reads at different element indices give different values.
    ``updated`` marks an input the kernel writes in place (a KV cache, a window
    state): it starts as the given array, elements the kernel does not write keep
    their values, and its final value is an output too (compared with the
    reference's result of that name).  Unlike an output, it need not be written
    everywhere.
    """

    shape: tuple
    dtype: str = "float32"
    role: Role = "input"
    values: object = None
    sharded: bool = False
    index_bits: int | None = None
    distinct: bool = False
    updated: bool = False
    where: Location = field(default_factory=caller_location, compare=False, repr=False)

    def __post_init__(self):
        shape = self.shape if isinstance(self.shape, (tuple, list)) else (self.shape,)
        dims = tuple(
            parse_size(d, self.where, f"shape of a tensor, dim {i}") for i, d in enumerate(shape)
        )
        object.__setattr__(self, "shape", dims)
        try:
            np.dtype(self.dtype)
        except TypeError:
            if self.dtype != "bfloat16":
                raise SpecError(f"unknown dtype {self.dtype!r}", self.where) from None
        if self.values is not None:
            object.__setattr__(
                self, "values", parse_condition(self.values, self.where, "a tensor's value range")
            )
        if self.role not in ("input", "output", "scratch"):
            raise SpecError(f"role must be input, output or scratch, not {self.role!r}", self.where)
        if self.updated and self.role != "input":
            raise SpecError(f"updated=True marks an input written in place; this tensor is "
                            f"{self.role} (outputs and scratch are written anyway)", self.where)
        if self.distinct and not self.is_index:
            raise SpecError("distinct=True declares an index tensor's values; "
                            f"this tensor's dtype is {self.dtype}", self.where)

    @property
    def is_index(self) -> bool:
        return (
            np.issubdtype(np.dtype(self.dtype), np.integer) if self.dtype != "bfloat16" else False
        )

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


def Input(shape, dtype: str = "float32", **kw) -> Tensor:
    return Tensor(
        tuple(shape) if isinstance(shape, (list, tuple)) else (shape,),
        dtype,
        "input",
        where=caller_location(),
        **kw,
    )


def Output(shape, dtype: str = "float32", **kw) -> Tensor:
    return Tensor(
        tuple(shape) if isinstance(shape, (list, tuple)) else (shape,),
        dtype,
        "output",
        where=caller_location(),
        **kw,
    )


def Scratch(shape, dtype: str = "float32", **kw) -> Tensor:
    return Tensor(
        tuple(shape) if isinstance(shape, (list, tuple)) else (shape,),
        dtype,
        "scratch",
        where=caller_location(),
        **kw,
    )


@dataclass(frozen=True)
class Task:
    """Another launch that may run on the machine at the same time.

    ``fenced`` means a dependency edge orders it before/after the kernel, so it
    cannot occupy cores while the kernel's programs wait at a barrier.
    """

    name: str
    programs: object = 1
    fenced: bool = False

    def __post_init__(self):
        object.__setattr__(
            self, "programs", parse_size(self.programs, caller_location(), f"task {self.name}")
        )


@dataclass(frozen=True)
class Launch:
    """The machine model for residency: cores, start policy, concurrent tasks.

    ``start="together"`` is an all-at-once (cooperative) launch: every program
    is resident before any runs.  ``"waves"`` lets programs start as cores free
    up, so a grid barrier needs every participant to fit next to whatever
    unfenced tasks may hold cores.
    """

    cores: object = None
    start: Literal["together", "waves"] = "waves"
    concurrent: tuple[Task, ...] = ()

    def __post_init__(self):
        if self.cores is not None:
            object.__setattr__(
                self, "cores", parse_size(self.cores, caller_location(), "launch cores")
            )
        if self.start not in ("together", "waves"):
            raise SpecError(
                f"launch start must be 'together' or 'waves', not {self.start!r}", caller_location()
            )
        object.__setattr__(self, "concurrent", tuple(self.concurrent))


@dataclass(frozen=True)
class Ranks:
    """The rank axis that carries ring traffic: its size and topology.

    ``topology="mesh"`` is an open line (no wrap-around link); ``"ring"`` wraps.
    ``axis`` says whether ranks are a grid axis (``"grid:k"``) or devices.
    """

    size: object = "n"
    topology: Literal["mesh", "ring"] = "mesh"
    name: str = "r"

    def __post_init__(self):
        object.__setattr__(self, "size", parse_size(self.size, caller_location(), "rank count"))
        if self.topology not in ("mesh", "ring"):
            raise SpecError(
                f"topology must be 'mesh' or 'ring', not {self.topology!r}", caller_location()
            )
