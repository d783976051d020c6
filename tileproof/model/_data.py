"""The values of index tensors in a concrete run: one oracle that honours every declaration.

A run of the model (:mod:`._interp`) reads index-tensor elements through a data
source.  :class:`Oracle` fills them lazily, one element at a time, so that two
reads of one entry agree: from the values a caller proposes (by data symbol, or
by ``(tensor, index)`` -- a counterexample's), when they are admissible, else
with the admissible value nearest 0.  Every value honours the dtype, ``values``,
``distinct`` and work tables (``enumerates=``, with their count); when none can,
the run raises :class:`TooLarge` and the caller answers ``unknown``, never
``violated``.  The static layer confirms counterexamples on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import shapes
from ._nodes import Access, Model

__all__ = ["Oracle", "RunError", "TooLarge"]


class RunError(Exception):
    """The concrete run cannot proceed (sizes outside the domain, a division by zero, too
    large); printed like a spec error: ``file:line: error: message hint``."""

    def __init__(self, message: str, location=None, hint: str = ""):
        if hint and not message.endswith((".", "?", "!")):
            message += "."
        self.message, self.location, self.hint = message, location, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location is not None and self.location.line else ""
        return f"{where}error: {self.message}" + (f" {self.hint}" if self.hint else "")


class TooLarge(RunError):
    """The concrete run would exceed its budget, or no admissible data exists for it."""


class Oracle:
    """Values of index-tensor elements, one per element (reads of one entry agree).

    A read takes the value proposed for its data symbol, else the one proposed for its
    element (``cells``), else the admissible value nearest 0.  A work table declared with
    ``enumerates=`` (and the element holding its count) is built as a whole from the
    declaration when first read, from the values of the elements its condition reads, so
    that it lists exactly the keys the declaration says.

    Every value honours every declaration -- the dtype, ``values``, ``distinct`` (no value
    twice in one tensor) and work tables (their count) -- and a tensor is only used when
    the rest of it can be completed admissibly too (a ``distinct`` table of n entries needs
    n admissible values): a finding confirmed on these values is one some admissible input
    really shows.  When no such values are found the run raises :class:`TooLarge` (the
    caller then answers ``unknown``, never ``violated``).
    """

    _SCAN = 1 << 18  # candidate values tried when checking that a tensor can be completed

    def __init__(
        self,
        model: Model,
        sizes: Mapping[str, int],
        proposed: Mapping[str, int],
        cells: Mapping | None = None,
    ):
        self.model, self.sizes, self.proposed = model, dict(sizes), dict(proposed)
        self.cells = dict(cells or {})
        self.table: dict = {}
        self.used: dict[str, set[int]] = {}  # values taken, per distinct tensor
        self.checked: set[str] = set()
        self.tables = {
            n: t for n, t in model.tensors.items() if getattr(t, "enumerates", None) is not None
        }
        self.counts: dict = {}
        # tensors the kernel stores into: reads of them see stored values, not these
        self.stored = {
            n.tensor for n in model.walk() if isinstance(n, Access) and n.kind == "store"
        }
        if self.tables:  # work tables are spec declarations: their semantics live there
            from ..spec._decl import count_cell
        for n, t in self.tables.items():
            try:
                cell = count_cell(t, self.sizes)
            except (ZeroDivisionError, shapes.ShapeError):
                cell = None
            if cell is not None:
                self.counts[cell] = n

    def __call__(self, name: str, index: tuple[int, ...]) -> int:
        d = self.model.data[name]
        if d.tensor in self.stored:
            raise RunError(
                f"a read of {d.tensor} (an index tensor the kernel stores into): a concrete "
                "run of the model does not follow stored values, so it cannot give the value "
                "this read sees",
                d.loc,
            )
        return self.cell(d.tensor, index, name)

    def admissible(self, tensor: str, v: int) -> bool:
        """Does ``v`` fit the tensor's dtype and ``values`` (distinctness aside)?"""
        decl = self.model.tensors[tensor]
        bits = 8 * decl.itemsize
        if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
            return False
        try:
            return decl.values is None or bool(decl.values.evaluate({**self.sizes, "v": v}))
        except (ZeroDivisionError, shapes.ShapeError):
            return False

    def _candidates(self, tensor: str, limit: int):
        """Values nearest 0 first, then upward (from the declared lower bound where it is
        above 64), within the declared bounds, ``limit`` of them at most."""
        lo, hi = _bounds(self.model.tensors[tensor], self.sizes)
        lo = -(2**63) if lo is None else lo
        hi = 2**63 if hi is None else hi
        n = 0
        for k in range(0, 65):
            for v in (k, -k) if k else (0,):
                if lo <= v < hi:
                    yield v
                    n += 1
        v = max(lo, 65)
        while n < limit and v < hi:
            yield v
            n += 1
            v += 1

    def _elements(self, tensor: str) -> int:
        decl = self.model.tensors[tensor]
        total = 1
        for d in decl.shape:
            total *= max(d.evaluate(self.sizes), 0)
        return total

    def _completable(self, tensor: str) -> None:
        """The whole tensor can hold admissible values: at least one (``distinct``: one per
        element) -- else no admissible input exists at these sizes."""
        if tensor in self.checked:
            return
        self.checked.add(tensor)
        decl = self.model.tensors[tensor]
        n = self._elements(tensor)
        need = n if getattr(decl, "distinct", False) else min(n, 1)
        if need == 0:
            return
        if decl.values is None:  # the dtype's whole range
            if need <= 2 ** (8 * decl.itemsize):
                return
        found = 0
        for v in self._candidates(tensor, need + self._SCAN):
            if self.admissible(tensor, v):
                found += 1
                if found >= need:
                    return
        raise TooLarge(
            f"no admissible values for {tensor} at {dict(self.sizes)}: "
            f"its declaration needs {need} (values {decl.values}"
            f"{', distinct' if decl.distinct else ''}), found {found}"
        )

    def _take(self, tensor: str, key, v: int) -> int:
        self.table[key] = v
        if getattr(self.model.tensors[tensor], "distinct", False):
            self.used.setdefault(tensor, set()).add(v)
        return v

    def cell(self, tensor: str, index: tuple[int, ...], name: str | None = None) -> int:
        key = (tensor, tuple(index))
        if key in self.table:
            return self.table[key]
        owner = tensor if tensor in self.tables else self.counts.get(key)
        if owner is not None:
            self._build(owner)
            if key in self.table:
                return self.table[key]
        decl = self.model.tensors[tensor]
        self._completable(tensor)
        used = self.used.get(tensor, set()) if getattr(decl, "distinct", False) else set()
        cands = []
        if name is not None and name in self.proposed:
            cands.append(self.proposed[name])
        if key in self.cells:
            cands.append(self.cells[key])
        for v in cands:
            if v not in used and self.admissible(tensor, v):
                return self._take(tensor, key, v)
        for v in self._candidates(tensor, len(used) + self._SCAN):
            if v not in used and self.admissible(tensor, v):
                return self._take(tensor, key, v)
        raise TooLarge(f"no small admissible value for {tensor}{list(index)}")

    def _build(self, name: str) -> None:
        from ..spec._decl import count_cell, enumerate_keys
        from ..spec._errors import SpecError

        t = self.tables[name]
        try:
            live, tail = enumerate_keys(
                self.model.tensors, name, self.sizes, lambda tensor, at: self.cell(tensor, at)
            )
        except SpecError as e:
            raise TooLarge(f"work table {name}: {e.message}") from None
        for i, k in enumerate(live + tail):
            self.table[(name, (i,))] = k
        cell = count_cell(t, self.sizes)
        if cell is not None:
            if cell in self.table and self.table[cell] != len(live):
                raise TooLarge(
                    f"work table {name}: its count {cell[0]}{list(cell[1])} was read "
                    f"as {self.table[cell]} but {len(live)} keys are live"
                )
            if not self.admissible(cell[0], len(live)):
                raise TooLarge(
                    f"work table {name}: {len(live)} live keys, a count that "
                    f"{cell[0]}'s declared values do not admit"
                )
            self.table[cell] = len(live)
        elif t.count is not None:  # a count given by sizes (and reads): it must agree
            reads, env = t.read_map, dict(self.sizes)
            vals = {}
            for r in t.count.free_symbols() & set(reads):
                tensor, idx = reads[r]
                vals[r] = self.cell(tensor, tuple(x.evaluate(env) for x in idx))
            n = t.count.evaluate({**env, **vals})
            if n != len(live):
                raise TooLarge(
                    f"work table {name}: count {t.count} is {n} but {len(live)} keys are live"
                )


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def _bounds(decl, sizes) -> tuple[int | None, int | None]:
    """``[lo, hi)`` around the values a tensor's ``values`` admits, from its comparisons of
    ``v`` alone with a side free of ``v`` (None where it states no bound)."""
    lo = hi = None
    stack = [decl.values] if decl.values is not None else []
    while stack:
        f = stack.pop()
        if isinstance(f, shapes.BoolOp) and f.kind == "and":
            stack.extend(f.args)
            continue
        if not isinstance(f, shapes.Cmp) or f.op not in _FLIP:
            continue
        for a, op, b in ((f.lhs, f.op, f.rhs), (f.rhs, _FLIP[f.op], f.lhs)):
            if a.as_symbol() != "v" or "v" in b.free_symbols():
                continue
            try:
                k = b.evaluate(sizes)
            except (ZeroDivisionError, shapes.ShapeError):
                continue
            if op in (">=", ">", "=="):
                lo = max(lo, k + (op == ">")) if lo is not None else k + (op == ">")
            if op in ("<=", "<", "=="):
                hi = min(hi, k + (op != "<")) if hi is not None else k + (op != "<")
    return lo, hi
