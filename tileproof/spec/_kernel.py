"""The kernel declaration: symbols and domain, grid, tensors, launch, ranks, reference."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .. import shapes
from ._decl import Launch, Ranks, Tensor, normalised_size, parse_condition, parse_size
from ._errors import Location, SpecError, caller_location
from ._options import NumericOptions

__all__ = ["Kernel", "kernel"]


@dataclass(frozen=True)
class GridAxis:
    name: str  # the program-id symbol users see in counterexamples
    extent: shapes.Expr


@dataclass
class Kernel:
    """A kernel spec: the body (a JAX function over :class:`Ref` tiles) and everything around it.

    ``assume`` is the domain of admissible sizes; ``defaults`` are the authors'
    production sizes (used first by numeric runs); ``reference`` is a plain JAX
    function of the input arrays returning the output arrays (a dict by name
    or a tuple in declaration order).
    """

    name: str
    body: Callable
    tensors: dict[str, Tensor]
    grid: tuple[GridAxis, ...]
    assume: tuple[shapes.Formula, ...]
    assume_text: tuple[str, ...]
    defaults: dict[str, int]
    reference: Callable | None
    launch: Launch | None
    ranks: Ranks | None
    index_bits: int | None  # None: not declared (32, or a project's configured index-bits)
    location: Location
    numeric: NumericOptions = field(default_factory=NumericOptions)
    backward: Kernel | None = None
    doc: str = ""
    # facts a front end's lowering rules require (a TPU block shape's tiling, its revisit
    # rule): (text, formula, location, hint[, shown names, their ranges]); each is a
    # ``shape`` obligation, proved over the domain (and the ranges)
    claims: tuple = ()

    def __post_init__(self) -> None:
        # front ends may still hand over the old dict: typed (and checked) here
        if not isinstance(self.numeric, NumericOptions):
            self.numeric = NumericOptions.of(self.numeric, self.location)

    # -- derived facts
    @property
    def sizes(self) -> list[str]:
        """Size symbols, in first-seen order over assumptions, tensors, grid and ranks."""
        seen: list[str] = []

        def add(names):
            for n in sorted(names):
                if n not in seen:
                    seen.append(n)

        for f in self.assume:
            add(f.free_symbols())
        for t in self.tensors.values():
            for d in t.shape:
                add(d.free_symbols())
        for g in self.grid:
            add(g.extent.free_symbols())
        if self.ranks is not None:
            add(normalised_size(self.ranks.size, "Ranks(size=)").free_symbols())
        for t in self.tensors.values():
            add(t.sizes_used)
        if self.launch is not None and self.launch.cores is not None:
            add(normalised_size(self.launch.cores, "Launch(cores=)").free_symbols())
        return seen

    @property
    def inputs(self) -> list[str]:
        return [n for n, t in self.tensors.items() if t.role == "input"]

    @property
    def outputs(self) -> list[str]:
        """Outputs, and inputs updated in place (``updated=True``): what the reference returns."""
        return [n for n, t in self.tensors.items() if t.role == "output" or t.updated]

    @property
    def scratch(self) -> list[str]:
        return [n for n, t in self.tensors.items() if t.role == "scratch"]

    @property
    def source(self) -> str:
        return str(self.location)

    def __call__(self, *args, **kwargs):
        raise SpecError(
            f"kernel {self.name!r} is a spec, not a function; run its reference with "
            f"`{self.name}.reference(...)` or verify it with `tileproof.verify({self.name})`",
            caller_location(),
        )

    def __repr__(self) -> str:
        return f"<tileproof kernel {self.name} at {self.location}>"


def _grid(grid, where: Location) -> tuple[GridAxis, ...]:
    if grid is None:
        return ()
    if isinstance(grid, Mapping):
        items = list(grid.items())
    elif isinstance(grid, (str, int, shapes.Expr)):
        items = [("pid0", grid)]
    elif isinstance(grid, Sequence):
        items = [(f"pid{i}", g) for i, g in enumerate(grid)]
    else:
        raise SpecError(
            f"grid must be a dict of name -> extent or a tuple of extents, got {grid!r}", where
        )
    out = []
    for name, extent in items:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"grid axis names must be identifiers, got {name!r}", where)
        out.append(GridAxis(name, parse_size(extent, where, f"grid extent {name}")))
    return tuple(out)


def kernel(
    *,
    tensors: Mapping[str, Tensor],
    grid=None,
    assume: Sequence[object] = (),
    defaults: Mapping[str, int] | None = None,
    reference: Callable | None = None,
    launch: Launch | None = None,
    ranks: Ranks | None = None,
    index_bits: int | None = None,
    name: str | None = None,
    numeric: NumericOptions | Mapping[str, object] | None = None,
) -> Callable[[Callable], Kernel]:
    """Declare a kernel spec; decorates the body ``def body(*refs)`` (refs in ``tensors`` order).

    ``index_bits`` (32 or 64) is the width its offsets are computed in; left out, it is 32
    unless a project's ``[tool.tileproof] index-bits`` says otherwise (an explicit width is
    never changed by configuration).  ``numeric`` (a :class:`NumericOptions` or the dict of
    its fields) sets the kernel's own numeric defaults; an unknown key is a spec error here.
    """
    where = caller_location()
    for k, t in tensors.items():
        if not isinstance(t, Tensor):
            raise SpecError(
                f"tensor {k!r} must be declared with Input/Output/Scratch, got {t!r}", where
            )
    parsed = tuple(parse_condition(a, where, "the domain (assume=...)") for a in assume)
    texts = tuple(str(a) if not isinstance(a, str) else a for a in assume)
    if index_bits is not None and index_bits not in (32, 64):
        raise SpecError(f"index_bits must be 32 or 64, got {index_bits}", where)
    options = NumericOptions.of(numeric, where)

    def deco(body: Callable) -> Kernel:
        try:
            file = inspect.getsourcefile(body) or "<unknown>"
            line = inspect.getsourcelines(body)[1]
        except (OSError, TypeError):
            file, line = where.file, where.line
        params = list(inspect.signature(body).parameters)
        names = list(tensors)
        if params != names:
            raise SpecError(
                f"the body of {body.__name__} takes ({', '.join(params)}) but the tensors are "
                f"declared as ({', '.join(names)})",
                Location(os.path.abspath(file), line),
                "Name the body's parameters after the tensors, in the same order.",
            )
        k = Kernel(
            name=name or body.__name__,
            body=body,
            tensors=dict(tensors),
            grid=_grid(grid, where),
            assume=parsed,
            assume_text=texts,
            defaults=dict(defaults or {}),
            reference=reference,
            launch=launch,
            ranks=ranks,
            index_bits=index_bits,
            location=Location(os.path.abspath(file), line),
            numeric=options,
            doc=inspect.getdoc(body) or "",
        )
        _check_enumerations(k.tensors, where)
        _check_names(k, where)
        unknown = set(k.defaults) - set(k.sizes)
        if unknown:
            raise SpecError(f"defaults name unknown sizes: {', '.join(sorted(unknown))}", where)
        return k

    return deco


def _check_enumerations(tensors: dict[str, Tensor], where: Location) -> None:
    """A work table's reads name index inputs of the kernel with the right number of indices."""
    for name, t in tensors.items():
        if t.enumerates is None:
            continue
        for rname, (tensor, idx) in t.read_map.items():
            src = tensors.get(tensor)
            if src is None:
                raise SpecError(
                    f"work table {name} reads {rname!r} from {tensor!r}, which is no "
                    f"tensor of the kernel",
                    t.where,
                )
            if not src.is_index or src.role != "input":
                raise SpecError(
                    f"work table {name} reads {rname!r} from {tensor}, which is no index input",
                    t.where,
                )
            if len(idx) != len(src.shape):
                raise SpecError(
                    f"work table {name} reads {tensor} with {len(idx)} indices, but "
                    f"it has {len(src.shape)} dimensions",
                    t.where,
                )


def _reserved(name: str) -> str:
    """Why ``name`` cannot be chosen by a spec ("" when it can)."""
    if name.startswith("_"):
        return (
            "names starting with '_' are the verifier's own (tile coordinates _c0, _c1, "
            "..., loop placeholders, quotients)"
        )
    if "__" in name:
        return "names containing '__' are the verifier's own (it names a second program x__2)"
    return ""


def _check_names(k: Kernel, where: Location) -> None:
    """Sizes, grid axes and the rank name are one namespace of symbols: reject clashes.

    A grid axis named like a size (``grid={"N": "N"}``) would make the context
    ``0 <= N < N``, which no values satisfy, so every obligation would hold vacuously; a
    size named like an internal symbol (``_c0``) would be confused with a tile coordinate.
    Both are spec errors, never silent proofs.
    """
    sizes = set(k.sizes)
    fix = "Rename it in the kernel declaration (and where the body uses it)."
    for name in k.sizes:
        why = _reserved(name)
        if why:
            raise SpecError(
                f"kernel {k.name!r}: size {name!r} is a reserved name: {why}", where, fix
            )
    axes: dict[str, str] = {}
    for g in k.grid:
        why = _reserved(g.name)
        if why:
            raise SpecError(
                f"kernel {k.name!r}: grid axis {g.name!r} is a reserved name: {why}", where, fix
            )
        if g.name in sizes:
            raise SpecError(
                f"kernel {k.name!r}: grid axis {g.name!r} has the name of a size of the kernel "
                f"(grid extent {g.extent}); a program id and a size cannot share a name: the "
                f"context {g.name} < {g.extent} would constrain the size itself, or admit no "
                "program at all",
                where,
                f"Rename the grid axis (for example {g.name.lower() + '_id'!r}) or the size.",
            )
        if g.name in axes:
            raise SpecError(f"kernel {k.name!r}: two grid axes are named {g.name!r}", where, fix)
        axes[g.name] = g.name
    r = k.ranks
    if r is not None:
        why = _reserved(r.name)
        if why:
            raise SpecError(
                f"kernel {k.name!r}: rank name {r.name!r} is reserved: {why}", where, fix
            )
        if r.name in sizes:
            raise SpecError(
                f"kernel {k.name!r}: the rank name {r.name!r} is also a size of the kernel",
                where,
                "Rename the rank (Ranks(name=...)) or the size.",
            )
        axis = next((g for g in k.grid if g.name == r.name), None)
        if axis is not None and axis.extent != r.size:
            raise SpecError(
                f"kernel {k.name!r}: grid axis {r.name!r} is the rank axis but its extent "
                f"{axis.extent} differs from the rank count {r.size}",
                where,
                "Give the rank axis the rank count as its extent, or rename one of them.",
            )
    placeholder = [n for n, t in k.tensors.items() if t.values is not None]
    if "v" in sizes and placeholder:
        raise SpecError(
            f"kernel {k.name!r}: a size is named 'v', but 'v' stands for an element of "
            f"{placeholder[0]} in its values=... range",
            where,
            "Rename the size.",
        )
    for tname, t in k.tensors.items():
        clash = sorted(set(t.read_map) & (sizes | set(axes)))
        if clash:
            raise SpecError(
                f"kernel {k.name!r}: work table {tname} names a read {clash[0]!r} like a size "
                "or grid axis of the kernel",
                t.where,
                "Rename the read.",
            )
