"""The tiled schedule model: a small, printable IR the verifier reasons about.

Every integer quantity is a :mod:`tileproof.shapes` expression over sizes,
program ids, lane ids, ranks, loop variables and data symbols (values read
from index tensors, constrained only by their declared ranges).  Tile
coordinates inside an access are the symbols ``_c0, _c1, ...`` (one per
non-point dimension); masks are conditions over them.  Every node carries the
user's source location.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import shapes
from ._print import header, line_no

if TYPE_CHECKING:  # annotations only: the model imports neither JAX nor the spec layer
    from ..spec._errors import Location

__all__ = [
    "PHASE_SCOPES",
    "Access",
    "Arith",
    "Assert",
    "Barrier",
    "Branch",
    "Claim",
    "Comm",
    "Data",
    "Dim",
    "Divide",
    "Fold",
    "LanePart",
    "Lanes",
    "Loop",
    "Model",
    "Node",
    "SplitReduce",
    "Unsupported",
    "coord",
    "listing",
    "walk",
]


def coord(k: int) -> str:
    """Name of the k-th tile coordinate symbol."""
    return f"_c{k}"


class Node:
    """A statement of the schedule.  ``children()`` is the one traversal of the tree: the
    nodes a node runs, in program order (empty for leaves).  ``list_into`` prints the node
    (and what it runs) in :meth:`Model.listing`: each kind says how, where it is defined."""

    loc: Location

    def children(self) -> list[Node]:
        return []

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        """Append this node's lines of the listing at nesting ``depth``.  No default: a new
        node kind that is not listed would hide from what users read of the model."""
        raise NotImplementedError(f"{type(self).__name__} does not say how it is listed")

    def _pre(self, depth: int) -> str:
        return f"  {line_no(self.loc.line)} {'  ' * depth}"


def _list_block(nodes: list[Node], model: Model, depth: int, out: list[str]) -> None:
    for n in nodes:
        n.list_into(model, depth, out)


@dataclass(frozen=True)
class Dim:
    """One dimension of an access: ``start + [0, size)``, or a single ``point`` index."""

    start: shapes.Expr
    size: int
    point: bool = False

    def __str__(self) -> str:
        return str(self.start) if self.point else f"ds({self.start}, {self.size})"


@dataclass(eq=False)
class Access(Node):
    kind: str  # "load" | "store"
    tensor: str
    dims: tuple[Dim, ...]
    mask: shapes.Formula | None
    loc: Location
    value: str | None = None  # data symbol bound by a load of an index tensor
    # a store into an index tensor with declared values: the value written (an expression
    # over the tile coordinates), or why it is not modelled
    stored: shapes.Expr | None = None
    stored_why: str | None = None

    def element(self) -> tuple[shapes.Expr, ...]:
        """The element index touched at tile coordinates ``_c0, _c1, ...``."""
        out, k = [], 0
        for d in self.dims:
            if d.point:
                out.append(d.start)
            else:
                out.append(d.start + shapes.sym(coord(k)))
                k += 1
        return tuple(out)

    def coord_ranges(self) -> list[tuple[str, int]]:
        """(coordinate symbol, tile extent) for each non-point dimension."""
        sizes = [d.size for d in self.dims if not d.point]
        return [(coord(k), n) for k, n in enumerate(sizes)]

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        idx = ", ".join(str(d) for d in self.dims)
        text = f"{self.kind:<5} {self.tensor}[{idx}]"
        if self.mask is not None:
            text += f"  mask {self.mask}"
        if self.value is not None:
            text += f"  -> {self.value}  ({model.data[self.value].range})"
        if self.stored is not None or self.stored_why is not None:
            text += f"  <- {self.stored if self.stored is not None else 'opaque'}"
        out.append(self._pre(depth) + text)


@dataclass(eq=False)
class Loop(Node):
    var: str
    lo: shapes.Expr
    hi: shapes.Expr  # exclusive
    body: list[Node]
    loc: Location
    carried: list[str] = field(default_factory=list)  # data symbols the loop carries (prefetches)
    # ring carries' validity across iterations: (where the body forwards it or None, W at the
    # next iteration, what the body returns) — the induction step the ``ring`` check proves
    # (lowering/_loops.py)
    ring_valid: list[tuple[Location | None, shapes.Formula, shapes.Formula]] = field(
        default_factory=list
    )

    def children(self) -> list[Node]:
        return list(self.body)

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(self._pre(depth) + f"for {self.var} in [{self.lo}, {self.hi}):")
        for name in self.carried:
            d = model.data[name]
            out.append(f"{self._pre(depth)}  carry {name} = {d.describe()}  ({d.range})")
        _list_block(self.body, model, depth + 1, out)


@dataclass(eq=False)
class Branch(Node):
    cond: shapes.Formula
    then: list[Node]
    orelse: list[Node]
    loc: Location
    exit: bool = False  # the continuation after an early exit (cond = not exit condition)

    def children(self) -> list[Node]:
        return list(self.then) + list(self.orelse)

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        kw = "unless-exited" if self.exit else "if"
        out.append(self._pre(depth) + f"{kw} {self.cond}:")
        _list_block(self.then, model, depth + 1, out)
        if self.orelse:
            out.append(self._pre(depth) + "else:")
            _list_block(self.orelse, model, depth + 1, out)


PHASE_SCOPES = ("grid", "launch")


@dataclass(eq=False)
class Barrier(Node):
    """``grid``: every program of the launch waits; ``lanes``: the lanes of one program;
    ``launch``: the end of one launch and the start of the next (a dependency between two
    kernels modelled as one grid): a phase boundary like ``grid``, with nobody waiting."""

    scope: str
    loc: Location

    @property
    def ends_phase(self) -> bool:
        """Writes before it are visible to every program after it (grid and launch)."""
        return self.scope in PHASE_SCOPES

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(self._pre(depth) + f"barrier({self.scope})")


@dataclass(eq=False)
class Lanes(Node):
    n: int
    mode: str  # "task" | "halve"
    axis: int | None
    var: str
    body: list[Node]
    loc: Location

    def children(self) -> list[Node]:
        return list(self.body)

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        how = "task-parallel" if self.mode == "task" else f"halving axis {self.axis}"
        out.append(self._pre(depth) + f"lanes {self.var} in [0, {self.n}) {how}:")
        _list_block(self.body, model, depth + 1, out)


@dataclass(eq=False)
class LanePart(Node):
    """A tile halved across lanes: ``extent`` must be divisible by ``n``.

    From ``lane_part`` or, inside ``lanes(n, halve=axis)``, from every tile the lanes load
    or store (``what`` names it)."""

    extent: int
    n: int
    axis: int
    shape: tuple[int, ...]
    loc: Location
    what: str = "lane_part"

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        what = "lane_part of" if self.what == "lane_part" else f"halved ({self.what})"
        out.append(
            self._pre(depth) + f"{what} tile {list(self.shape)} along axis {self.axis} / {self.n}"
        )


@dataclass(eq=False)
class SplitReduce(Node):
    """A reduction over an axis that is split across lanes (each lane sees a share)."""

    primitive: str
    axis: int
    loc: Location

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(self._pre(depth) + f"{self.primitive} over lane-split axis {self.axis}")


@dataclass(eq=False)
class Comm(Node):
    """A ring step: send to ``dst`` where ``send``; receive from ``src`` where ``recv``."""

    dst: shapes.Expr
    src: shapes.Expr
    send: shapes.Formula
    recv: shapes.Formula
    prov: shapes.Expr | None  # provenance (origin rank) of the value sent
    loc: Location

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(
            self._pre(depth)
            + f"sendrecv to {self.dst} if {self.send}; from {self.src} if {self.recv}"
            f"  (chunk of rank {self.prov})"
        )


@dataclass(eq=False)
class Fold(Node):
    """This rank folds the chunk that originated at rank ``prov`` where ``cond``.

    ``when`` is the fold's own condition as the body wrote it; ``cond`` adds that the
    value really arrived (a received tile is a chunk only where it was sent and received).
    Where ``when`` holds but ``cond`` does not, the rank folds poison.
    """

    prov: shapes.Expr | None
    cond: shapes.Formula
    loc: Location
    when: shapes.Formula | None = None

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(self._pre(depth) + f"fold chunk of rank {self.prov} if {self.cond}")


@dataclass(eq=False)
class Arith(Node):
    """An integer intermediate computed in ``bits``-bit arithmetic on the way to an index."""

    expr: shapes.Expr
    bits: int
    op: str
    loc: Location
    shape: tuple[int, ...] = ()  # coordinates _c<k> in expr range over [0, shape[k])

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        pass  # intermediate arithmetic is checked, not listed


@dataclass(eq=False)
class Divide(Node):
    """An integer division (or remainder) by ``divisor``, as the body wrote it.

    Shape expressions normalise when built — ``(a*b) // b`` becomes ``a`` — so a divisor
    can vanish from every index it feeds; this node keeps it, so the ``shape``
    obligation "no divisor is zero" is stated for every division the body performs.
    """

    divisor: shapes.Expr
    loc: Location
    shape: tuple[int, ...] = ()  # coordinates _c<k> in divisor range over [0, shape[k])

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        pass  # intermediate arithmetic is checked, not listed


@dataclass(eq=False)
class Claim(Node):
    """A fact the kernel states about an integer value (``pl.multiple_of(x, m)``: ``x % m == 0``).

    Compilers act on such hints without checking them (Triton's divisibility attributes),
    so a false one is undefined behaviour: the ``shape`` obligation proves ``expr % modulus
    == 0`` wherever the claim is reached.  Nothing else in the model relies on it: the
    value ``expr`` is kept exactly, so a proof never leans on an unproved claim.
    """

    expr: shapes.Expr
    modulus: int
    what: str
    loc: Location
    shape: tuple[int, ...] = ()  # coordinates _c<k> in expr range over [0, shape[k])

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(self._pre(depth) + f"claim {self.expr} % {self.modulus} == 0  ({self.what})")


@dataclass(eq=False)
class Assert(Node):
    """A condition a front end's rule requires wherever it is reached (a DMA's ordering).

    ``cond`` must hold for every admissible size, program, loop index and data value that
    reaches the node; the obligation is reported under ``kind`` (``coverage`` for a read of
    memory a DMA has not delivered, ``race`` for a write that meets an in-flight DMA).  Like
    a :class:`Claim`, nothing else in the model assumes it.  ``tensor`` names the memory the
    rule is about (it scopes unsupported constructs, see ``verify/static/_check.py``).
    """

    cond: shapes.Formula
    kind: str
    what: str
    loc: Location
    tensor: str = ""
    hint: str = ""
    broken: str = ""  # the finding's words when refuted (``what`` is the rule as proved)

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(self._pre(depth) + f"assert {self.cond}  ({self.kind}: {self.what})")


@dataclass(eq=False)
class Unsupported(Node):
    what: str
    loc: Location
    tensors: tuple[str, ...] = ()  # tensors accessed in an unmodelled region (a while loop)
    # when non-empty: the construct can change only the obligations about these names
    # (tensors, or a front end's pseudo-tensor such as a DMA semaphore array)
    only: tuple[str, ...] = ()

    def list_into(self, model: Model, depth: int, out: list[str]) -> None:
        out.append(self._pre(depth) + f"UNSUPPORTED: {self.what}")


@dataclass(frozen=True)
class Data:
    """A value read from an index tensor; ``range`` is its declared constraint."""

    name: str
    tensor: str
    index: tuple[shapes.Expr, ...]
    range: shapes.Formula  # as declared; the dtype's own range comes on top
    loc: Location
    bits: int = 32
    signed: bool = True
    # a read of a tensor the kernel stores into has no ``index`` (its value may change
    # between two reads of one element); ``entry`` keeps the element it reads, for the
    # facts that hold where no store can come between (reads in later phases than every store)
    entry: tuple[shapes.Expr, ...] = ()
    # non-empty: the symbol over-approximates a value the model does not hold exactly (a
    # loop carry advanced by a data-dependent choice of steps, :mod:`tileproof.lowering._loops`);
    # every behaviour is among those modelled, so a proof stands, but a refutation may rest
    # on an impossible value and is reported unknown (``verify.static._check``)
    inexact: str = ""

    def dtype_range(self) -> shapes.Formula:
        v = shapes.sym(self.name)
        if self.signed:
            lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        else:
            lo, hi = 0, 2**self.bits - 1
        return shapes.conj(shapes.ge(v, lo), shapes.le(v, hi))

    def describe(self) -> str:
        if not self.tensor:  # no table's element: a count the lowering introduced
            return self.name
        return f"{self.tensor}[{', '.join(map(str, self.index))}]"


@dataclass
class Model:
    """The lowered kernel."""

    name: str
    source: str
    sizes: list[str]
    assume: list[shapes.Formula]
    grid: list[tuple[str, shapes.Expr]]
    tensors: dict  # name -> spec Tensor
    body: list[Node]
    index_bits: int = 32
    ranks: tuple[str, shapes.Expr, str] | None = None  # (rank var, rank count, topology)
    launch: object = None
    data: dict[str, Data] = field(default_factory=dict)
    lower_bounds: dict[str, int] = field(default_factory=dict)  # symbols whose minimum is not 1
    claims: list = field(default_factory=list)  # a front end's size facts: Kernel.claims

    # -- traversal helpers
    def walk(self) -> Iterator[Node]:
        """Every node, depth first, in program order."""
        return walk(self.body)

    @property
    def unsupported(self) -> list[Unsupported]:
        return [n for n in self.walk() if isinstance(n, Unsupported)]

    def listing(self) -> str:
        """The model as text (:mod:`._print` frames it; each node lists itself)."""
        out = header(self)
        _list_block(self.body, self, 0, out)
        return "\n".join(out)


def listing(model: Model) -> str:
    """The model as text: :meth:`Model.listing`."""
    return model.listing()


def walk(nodes: list[Node]) -> Iterator[Node]:
    """Every node of ``nodes`` and below, depth first, in program order."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))
