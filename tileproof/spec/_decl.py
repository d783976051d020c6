"""Declarations a kernel spec is made of: tensors, launch and machine, ranks.

Sizes are shape expressions (strings or :mod:`tileproof.shapes` objects);
they are parsed here, at declaration time, so a typo is reported against the
spec's own line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .. import shapes
from ._errors import Location, SpecError, caller_location

__all__ = [
    "Launch",
    "Ranks",
    "Region",
    "Task",
    "Tensor",
    "build_enumeration",
    "count_cell",
    "enumerate_keys",
    "key_bounds",
]

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


def normalised_formula(x: object, what: str) -> shapes.Formula:
    """A declaration's condition field after ``__post_init__`` parsed it.

    The dataclass fields are typed by what a spec may *pass* (a string, a bool, a
    formula); once constructed they hold formulas.  This is the check that says so.
    """
    if not isinstance(x, shapes.Formula):
        raise TypeError(f"{what} is {x!r}, not a parsed condition (was it set after construction?)")
    return x


def normalised_size(x: object, what: str) -> shapes.Expr:
    """A declaration's size field after ``__post_init__`` parsed it (see
    :func:`normalised_formula`)."""
    if not isinstance(x, shapes.Expr):
        raise TypeError(f"{what} is {x!r}, not a parsed size (was it set after construction?)")
    return x


def index_names(rank: int) -> tuple[str, ...]:
    """The names a :class:`Region` gives the element index of a ``rank``-D tensor."""
    return tuple(f"i{k}" for k in range(rank))


@dataclass(frozen=True)
class Region:
    """A set of elements of a tensor: a condition over its element index ``i0, i1, ...``.

    It says which elements a kernel must *write* (``writes=`` of an input updated in
    place) or must *read* (``reduced=`` of an input a reduction folds).  The condition may
    use sizes and elements of other index tensors, named in ``at`` as ``name=(tensor,
    index)`` with the index over ``i0, i1, ...`` and sizes (like a work table's reads).
    The tokens of sequence ``i0`` in a paged cache's page table::

        Region("i1 < cdiv(n, 64)", n=("cache_seqlens", "i0"))

    ``"all"`` (or ``True``) is every element.  A region is a promise the verifier checks
    (``coverage`` for writes, ``reads`` for reads), never an assumption.
    """

    # normalised by __init__ (below), which takes what a spec writes
    cond: shapes.Formula
    at: tuple[tuple[str, tuple[str, tuple[shapes.Expr, ...]]], ...]
    where: Location = field(default_factory=caller_location, compare=False, repr=False)

    def __init__(self, cond: object = "all", where: Location | None = None, /, **at: tuple) -> None:
        where = where if where is not None else caller_location()
        object.__setattr__(self, "where", where)
        if cond is True or cond == "all":
            formula = shapes.conj()
        else:
            formula = parse_condition(cond, where, "a region of elements")
        reads: dict[str, tuple[str, tuple]] = {}
        for name, spec in at.items():
            if (
                not isinstance(spec, (tuple, list))
                or len(spec) != 2
                or not isinstance(spec[0], str)
            ):
                raise SpecError(
                    f"element {name!r} of a region must be (tensor name, index), got {spec!r}",
                    where,
                    "For example Region('i1 < n', n=('seq_lens', 'i0')).",
                )
            idx = spec[1] if isinstance(spec[1], (tuple, list)) else (spec[1],)
            reads[name] = (
                spec[0],
                tuple(parse_size(x, where, f"the index of {name}") for x in idx),
            )
        for name, (_t, idx) in reads.items():
            if any(set(reads) & x.free_symbols() for x in idx):
                raise SpecError(
                    f"the index of {name!r} uses another read; index a region's "
                    "reads by i0, i1, ... and sizes",
                    where,
                )
        object.__setattr__(self, "cond", formula)
        object.__setattr__(self, "at", tuple(reads.items()))

    @classmethod
    def of(cls, x: object, where: Location, what: str) -> Region | None:
        """``x`` as a region (None stays None; a condition string or ``"all"`` is wrapped)."""
        if x is None or x is False:
            return None
        if isinstance(x, Region):
            return x
        if isinstance(x, (str, bool, shapes.Formula)):
            return cls(x, where)
        raise SpecError(
            f"{what} must be a condition over i0, i1, ..., 'all' or a tp.Region, not {x!r}", where
        )

    @property
    def read_map(self) -> dict[str, tuple[str, tuple]]:
        return dict(self.at or ())

    @property
    def is_all(self) -> bool:
        return self.cond == shapes.conj() and not self.at

    def condition(self, rank: int) -> shapes.Formula:
        """The condition with its element index as given (names ``i0, ...``)."""
        return self.cond

    def sizes_used(self, rank: int) -> set[str]:
        names = set(index_names(rank)) | set(self.read_map)
        out = self.cond.free_symbols() - names
        for _t, idx in self.read_map.values():
            for x in idx:
                out |= x.free_symbols() - names
        return out

    def check(self, tensors: dict, owner: str, rank: int) -> None:
        """Spec errors: a read of an unknown or non-index tensor, an index of the wrong
        length, a name ``i<k>`` beyond the tensor's rank."""
        idx = set(index_names(rank))
        extra = {
            n
            for n in self.cond.free_symbols()
            if n.startswith("i") and n[1:].isdigit() and n not in idx
        }
        if extra:
            raise SpecError(
                f"the region of {owner} names {', '.join(sorted(extra))}, but "
                f"{owner} has {rank} dimension{'s' * (rank != 1)}",
                self.where,
            )
        for name, (tensor, at) in self.read_map.items():
            src = tensors.get(tensor)
            if src is None or not src.is_index:
                raise SpecError(
                    f"the region of {owner} reads {name} from {tensor!r}, which is "
                    "no index tensor of the kernel",
                    self.where,
                )
            if len(at) != len(src.shape):
                raise SpecError(
                    f"the region of {owner} reads {tensor} with {len(at)} indices;"
                    f" it has {len(src.shape)} dimensions",
                    self.where,
                )


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

    ``enumerates`` declares a 1-D index tensor a *work table* that lists a set of
    keys, as a host builds it from other inputs: entries ``[0, count)`` hold exactly
    the values ``v`` satisfying ``values`` and the condition ``enumerates``, each
    once, in any order; entries from ``count`` on hold other values satisfying
    ``values`` (with ``distinct=True`` the whole table is pairwise different).  The
    condition may use other index tensors' elements through ``reads``, a mapping of
    a name to ``(tensor, index)`` with the index an expression (or a tuple of them,
    one per dimension) over ``v`` and sizes; ``count`` is an expression over sizes
    and read names that do not depend on ``v`` (default: the table's length, every
    entry live).  For a paged work list::

        work=Input(("B*M",), "int32", values="0 <= v < B*M", distinct=True,
                   enumerates="v % M < cdiv(seq, 128)",
                   reads={"seq": ("seq_lens", "v // M"), "n": ("num_work", "0")},
                   count="n")

    says: entries ``[0, num_work[0])`` are exactly the keys ``b*M + page`` of the
    pages ``page < cdiv(seq_lens[b], 128)`` of every sequence ``b``.  The static
    verifier uses it to find, for a key, the entry that holds it; numeric runs must
    build such a table (and its count) from the other inputs, see
    :func:`build_enumeration`.
    """

    shape: tuple
    dtype: str = "float32"
    role: Role = "input"
    values: object = None
    sharded: bool = False
    index_bits: int | None = None
    distinct: bool = False
    updated: bool = False
    enumerates: object = None
    reads: object = None
    count: object = None
    writes: object = None
    reduced: object = None
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
            raise SpecError(
                f"updated=True marks an input written in place; this tensor is "
                f"{self.role} (outputs and scratch are written anyway)",
                self.where,
            )
        if self.distinct and not self.is_index:
            raise SpecError(
                "distinct=True declares an index tensor's values; "
                f"this tensor's dtype is {self.dtype}",
                self.where,
            )
        self._parse_enumeration()
        self._parse_regions()

    def _parse_regions(self) -> None:
        writes = Region.of(self.writes, self.where, "writes=")
        if writes is not None and not self.updated:
            raise SpecError(
                "writes= declares the elements an input updated in place must "
                "write; add updated=True (an output must be written everywhere)",
                self.where,
            )
        reduced = Region.of(self.reduced, self.where, "reduced=")
        if reduced is not None and self.role != "input":
            raise SpecError(
                f"reduced= declares an input a reduction reads; this tensor is {self.role}",
                self.where,
            )
        object.__setattr__(self, "writes", writes)
        object.__setattr__(self, "reduced", reduced)

    def _parse_enumeration(self) -> None:
        if self.enumerates is None:
            if self.reads is not None or self.count is not None:
                raise SpecError(
                    "reads= and count= describe a work table: they go with enumerates=...",
                    self.where,
                )
            return
        fix = "Declare a work table as Input((N,), 'int32', values=..., enumerates=...)."
        if not self.is_index or len(self.shape) != 1 or self.role != "input":
            raise SpecError(
                "enumerates= declares a 1-D index input (a work table); this "
                f"tensor is a {len(self.shape)}-D {self.dtype} {self.role}",
                self.where,
                fix,
            )
        if self.values is None:
            raise SpecError(
                "a work table (enumerates=...) needs values=... bounding its keys",
                self.where,
                "Add values='lo <= v < hi'.",
            )
        cond = (
            shapes.conj()
            if self.enumerates is True
            else parse_condition(self.enumerates, self.where, "the enumerated set")
        )
        reads: dict[str, tuple[str, tuple]] = {}
        given = self.reads or {}
        if not isinstance(given, (Mapping, tuple, list)):  # tuple: the form stored below
            raise SpecError(
                f"reads= maps names to (tensor name, index), not {given!r}",
                self.where,
                "For example reads={'seq': ('seq_lens', 'v // M')}.",
            )
        for name, spec in dict(given).items():
            if not isinstance(name, str) or not name.isidentifier() or name == "v":
                raise SpecError(
                    f"a read of a work table is named by an identifier other than v, not {name!r}",
                    self.where,
                )
            if (
                not isinstance(spec, (tuple, list))
                or len(spec) != 2
                or not isinstance(spec[0], str)
            ):
                raise SpecError(
                    f"read {name!r} must be (tensor name, index), got {spec!r}",
                    self.where,
                    "For example reads={'seq': ('seq_lens', 'v // M')}.",
                )
            idx = spec[1] if isinstance(spec[1], (tuple, list)) else (spec[1],)
            reads[name] = (
                spec[0],
                tuple(parse_size(x, self.where, f"the index of read {name}") for x in idx),
            )
        for name, (_t, idx) in reads.items():
            if any(set(reads) & x.free_symbols() for x in idx):
                raise SpecError(
                    f"the index of read {name!r} uses another read; reads are "
                    "indexed by v and sizes only",
                    self.where,
                )
        count = (
            self.shape[0]
            if self.count is None
            else parse_size(self.count, self.where, "the count of a work table")
        )
        keyed = {n for n, (_t, idx) in reads.items() if any("v" in x.free_symbols() for x in idx)}
        if "v" in count.free_symbols() or count.free_symbols() & keyed:
            raise SpecError(
                f"the count {count} of a work table depends on the key v",
                self.where,
                "Count with sizes and reads at fixed indices.",
            )
        object.__setattr__(self, "enumerates", cond)
        object.__setattr__(self, "reads", tuple(reads.items()))  # hashable, in order
        object.__setattr__(self, "count", count)

    @property
    def read_map(self) -> dict[str, tuple[str, tuple]]:
        """A work table's reads: name -> (tensor, index expressions over ``v`` and sizes)."""
        reads = self.reads or ()
        assert isinstance(reads, tuple), reads  # __post_init__ stored (name, read) pairs
        return dict(reads)

    @property
    def sizes_used(self) -> set[str]:
        """Size symbols this declaration mentions beyond its shape (ranges, work tables)."""
        out: set[str] = set()
        if self.values is not None:
            out |= normalised_formula(self.values, "values=").free_symbols() - {"v"}
        if self.enumerates is not None:
            names = set(self.read_map) | {"v"}
            out |= normalised_formula(self.enumerates, "enumerates=").free_symbols() - names
            out |= normalised_size(self.count, "count=").free_symbols() - names
            for _t, idx in self.read_map.values():
                for x in idx:
                    out |= x.free_symbols() - {"v"}
        for region in (self.writes, self.reduced):
            if isinstance(region, Region):
                out |= region.sizes_used(len(self.shape))
        return out

    @property
    def is_index(self) -> bool:
        return (
            np.issubdtype(np.dtype(self.dtype), np.integer) if self.dtype != "bfloat16" else False
        )

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


def key_bounds(t: Tensor, sizes) -> tuple[int, int]:
    """``[lo, hi)``: the values ``v`` a tensor's ``values`` admits at concrete ``sizes`` lie in
    it (from its comparisons of ``v`` alone with a side free of ``v``)."""
    lo, hi = None, None
    stack = [t.values]
    while stack:
        f = stack.pop()
        if isinstance(f, shapes.BoolOp) and f.kind == "and":
            stack.extend(f.args)
            continue
        if not isinstance(f, shapes.Cmp) or f.op == "!=":
            continue
        for a, op, b in ((f.lhs, f.op, f.rhs), (f.rhs, _FLIP[f.op], f.lhs)):
            if a.as_symbol() != "v" or "v" in b.free_symbols():
                continue
            k = b.evaluate(sizes)
            if op in (">=", ">", "=="):
                low = k + (op == ">")
                lo = low if lo is None else max(lo, low)
            if op in ("<=", "<", "=="):
                high = k + (op != "<")
                hi = high if hi is None else min(hi, high)
    if lo is None or hi is None:
        raise SpecError(
            f"the values {t.values} of a work table must bound v from both sides (lo <= v < hi)",
            t.where,
        )
    return lo, hi


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def enumerate_keys(tensors, name: str, sizes, read, *, limit: int = 1 << 22):
    """``(live, tail)``: the keys of work table ``name`` at concrete ``sizes``, the live ones
    (ascending) and those filling the entries after them (ascending; pairwise different
    from all others where the table is ``distinct``).  ``read(tensor, index)`` gives an
    element of another index tensor.  Raises :class:`SpecError` when no table fits."""
    t = tensors[name]
    if t.enumerates is None:
        raise SpecError(f"{name} is no work table (declared without enumerates=...)", t.where)
    env = {k: int(v) for k, v in sizes.items()}
    length = t.shape[0].evaluate(env)
    lo, hi = key_bounds(t, env)
    if hi - lo > limit:
        raise SpecError(f"work table {name}: {hi - lo} candidate keys at these sizes", t.where)
    reads = t.read_map

    def value(rname, key):
        tensor, idx = reads[rname]
        at = tuple(x.evaluate({**env, "v": key}) for x in idx)
        dims = [d.evaluate(env) for d in tensors[tensor].shape]
        if any(not 0 <= i < n for i, n in zip(at, dims)):
            raise SpecError(
                f"work table {name}: read {rname} = {tensor}{list(at)} is out of "
                f"bounds for key {key}",
                t.where,
            )
        return int(read(tensor, at))

    live: list[int] = []
    dead: list[int] = []
    for key in range(lo, hi):
        if not t.values.evaluate({**env, "v": key}):
            continue
        vals = {r: value(r, key) for r in reads if r in t.enumerates.free_symbols()}
        (live if t.enumerates.evaluate({**env, **vals, "v": key}) else dead).append(key)
    if len(live) > length:
        raise SpecError(
            f"work table {name} has {length} entries but {len(live)} live keys", t.where
        )
    rest = length - len(live)
    if t.distinct:
        if len(dead) < rest:
            raise SpecError(
                f"work table {name}: too few distinct keys to fill {length} entries", t.where
            )
        return live, dead[:rest]
    return live, [(dead or live or [lo])[0]] * rest


def count_cell(t: Tensor, sizes) -> tuple[str, tuple[int, ...]] | None:
    """``(tensor, index)`` of the element holding a work table's count, where its ``count``
    is a single read (``count="n"``, ``reads={"n": ("num_work", 0)}``); else None."""
    cname = normalised_size(t.count, "count=").as_symbol() if t.count is not None else None
    reads = t.read_map
    if cname is None or cname not in reads:
        return None
    tensor, idx = reads[cname]
    env = {k: int(v) for k, v in sizes.items()}
    return tensor, tuple(x.evaluate(env) for x in idx)


def build_enumeration(tensors, name: str, sizes, inputs) -> dict:
    """The work table ``name`` (declared with ``enumerates=``) built from the other inputs.

    ``tensors`` maps names to declarations (a kernel's ``tensors``), ``sizes`` gives every
    size, ``inputs`` the arrays of the tensors the table reads.  The live keys come first,
    ascending, then the table's other admissible keys, ascending (pairwise different where
    the table is ``distinct``).  Returns ``{name: table}`` and, where ``count`` is a single
    read (``"n"`` with ``reads={"n": ("num_work", 0)}``), that count tensor (a copy of its
    input) with the number of live keys written at the read's index.  Raises
    :class:`SpecError` when no table fits (more live keys than entries, too few distinct
    keys, a count given by sizes that disagrees).
    """
    t = tensors[name]

    def read(tensor, at):
        return np.asarray(inputs[tensor])[at]

    live, tail = enumerate_keys(tensors, name, sizes, read)
    out = {name: np.asarray(live + tail, dtype=np.dtype(t.dtype))}
    cell = count_cell(t, sizes)
    if cell is not None:
        tensor, at = cell
        arr = np.array(inputs[tensor], dtype=np.dtype(tensors[tensor].dtype), copy=True)
        arr[at] = len(live)
        out[tensor] = arr
    else:
        env = {k: int(v) for k, v in sizes.items()}
        reads = t.read_map
        vals = {}
        for r in t.count.free_symbols() & set(reads):
            tensor, idx = reads[r]
            vals[r] = int(read(tensor, tuple(x.evaluate(env) for x in idx)))
        n = t.count.evaluate({**env, **vals})
        if n != len(live):
            raise SpecError(
                f"work table {name}: count {t.count} is {n} but {len(live)} keys are live", t.where
            )
    return out


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
