"""TPU manual DMAs (``pltpu.make_async_copy``/``async_copy``, ``.start()``, ``.wait()``).

What a local DMA is, from the installed JAX (``jax/_src/pallas/mosaic/primitives.py``):
``dma_start`` reads the source ref slice and writes the destination slice asynchronously
and adds the copy's size to the destination semaphore (``dma_start_partial_discharge_rule``:
``dst_sem + size``); ``dma_wait`` blocks until the semaphore holds the waited copy's size and
subtracts it (``dma_wait_partial_discharge_rule``: ``sem - size``).  It names no copy: a wait
only counts.  Mosaic lowers both to ``tpu.enqueue_dma`` / ``tpu.wait_dma2`` on the refs and
the semaphore (``jax/_src/pallas/mosaic/lowering.py`` ``_dma_start_lowering_rule``,
``_dma_wait_lowering_rule``); the hardware completes the copies of one semaphore in no
promised order.

So the model, exact for what it accepts:

* ``start`` is a bounds-checked read of the source slice (a ``tp_load`` at the start's line)
  and puts the copy *in flight* on its semaphore element.
* A copy's destination holds the source's values only once its semaphore is **drained**: a
  wait that brings the number of waits on that semaphore up to the number of copies started
  on it (several copies on one semaphore, as paged attention's pages, complete together
  then -- with k < n waits, some k of the n copies are done, not known which).  At that wait
  the destination is written (a ``tp_store``), so reading it earlier reads memory never
  written there (``coverage``) and the numeric executor sees the copy where it lands.
* While a copy is in flight: a read of its destination is ``coverage`` violated (in-flight
  data), a write of its destination or of its source, or a second copy into its
  destination, is ``race`` violated -- each an :class:`~tileproof.model.Assert` that the two
  slices share no element, proved for every size, program, loop index and table value.
* A wait with no copy in flight on its semaphore never returns: ``coverage`` violated
  wherever it is reached.

Fail closed: the pairing is followed within one straight-line block (the kernel body of
one grid step, one branch, one loop iteration).  A copy still in flight when its block ends
(a prefetch for the next grid step or loop iteration, a start under ``pl.when`` waited
outside), a wait on a copy started in an enclosing block, copies of different sizes on one
semaphore, semaphore elements the trace cannot tell apart are unsupported: the ``coverage``
and ``race`` obligations about the semaphore array and every source and destination used
with it are unknown (``Unsupported.only``); everything else stays decided, the bounds of
both slices included (an unpaired copy's destination slice is checked where it starts).
Remote copies, ``add=True`` copies and regular semaphores (``semaphore_signal``/``wait``/
``read``) are unsupported outright.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import shapes
from ..spec import _primitives as P
from ..spec._errors import Location
from ._access import _Gather, _i32, _load, _store, _Unmodelled, _unsupported, _View

__all__ = ["DmaState", "Sem"]


@dataclass(frozen=True)
class Sem:
    """A DMA semaphore scratch ref (``pltpu.SemaphoreType.DMA(shape)``), or one element."""

    name: str
    shape: tuple[int, ...]
    index: tuple = ()  # one index value per dimension once indexed

    def key(self) -> tuple:
        """Trace-time identity of the element: a literal, or the traced value itself."""
        out = []
        for i in self.index:
            c = _const(i)
            out.append(("c", c) if c is not None else ("v", id(i)))
        return tuple(out)


def _const(x) -> int | None:
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, np.ndarray) and x.shape == () and np.issubdtype(x.dtype, np.integer):
        return int(x)
    return None


def sem_at(sem: Sem, transforms, loc: Location) -> Sem:
    """``sems.at[i]``: one semaphore element (a slice of semaphores is not modelled)."""
    idx = list(sem.index)
    for t in transforms or ():
        if type(t).__name__ != "NDIndexer":
            raise _Unmodelled(f"the semaphore transform {type(t).__name__}", loc)
        for ix in t.indices:
            if type(ix).__name__ == "Slice" or getattr(ix, "shape", ()) != ():
                raise _Unmodelled("a DMA on a slice of semaphores", loc)
            idx.append(ix)
    if len(idx) != len(sem.shape):
        raise _Unmodelled("a DMA on a slice of semaphores", loc)
    return Sem(sem.name, sem.shape, tuple(idx))


@dataclass
class _Copy:
    sem: Sem
    src: _View
    dst: _View
    data: object
    loc: Location
    size: int


@dataclass
class _Scope:
    """The copies started in one straight-line block, per semaphore element: copies, waits."""

    flights: dict = field(default_factory=dict)  # (name, key) -> [copies, waits]
    serial: int = 0  # unique per replayed body (ids of dead scopes could be reused)

    def copies(self):
        for cs, _w in self.flights.values():
            yield from cs


def _size(v: _View) -> int:
    """What a copy adds to its semaphore: the hardware counts bytes, so the dtype counts."""
    dt = v.block.dtype
    item = 2 if dt == "bfloat16" else np.dtype(dt).itemsize
    return (int(np.prod(v.shape)) if v.shape else 1) * item


def _span(d) -> tuple:
    if d[0] == "point":
        return d[1], 1
    if d[2] is None:
        raise _Unmodelled("a DMA slice of symbolic extent", Location("", 0))
    return d[1], int(d[2])


class DmaState:
    """The DMAs of one replayed kernel body (one grid step); see the module docstring."""

    def __init__(self):
        self.scopes: list[_Scope] = [_Scope()]
        self.loose: dict[str, Location] = {}  # semaphore array -> first unpaired use
        self.reasons: dict[str, str] = {}
        self.used: dict[str, set] = {}  # semaphore array -> sources and destinations
        self._scoped = 0
        self._orphans: set = set()
        self._serial = 0

    def scoped_sem(self, shape: tuple, loc: Location) -> Sem:
        """A semaphore ``pl.run_scoped`` allocates: a name of its own (it is no tensor)."""
        self._scoped += 1
        return Sem(f"scoped_sem_{loc.line}_{self._scoped}", shape)

    # ------------------------------------------------------------------ blocks
    def push(self) -> None:
        self._serial += 1
        self.scopes.append(_Scope(serial=self._serial))

    def pop(self) -> None:
        sc = self.scopes.pop()
        for c in sc.copies():
            self._loose(c.sem.name, c.loc, "a copy still in flight when its block ends")
            self._land(c)

    def finish(self) -> None:
        """End of the kernel body: copies in flight cross into the next grid step."""
        for sc in self.scopes:
            for c in sc.copies():
                self._loose(
                    c.sem.name,
                    c.loc,
                    "a copy still in flight when the kernel body ends (it crosses into "
                    "the next grid step)",
                )
                self._land(c)
        for name, loc in self.loose.items():
            only = tuple(sorted({name, *self.used.get(name, ())}))
            what = (
                f"the DMA on semaphore {name} is not paired with its wait in one block "
                f"({self.reasons[name]}): when its destination is written is not modelled"
            )
            P.unsupported_p.bind(what=what, site=loc, only=only)

    @staticmethod
    def _land(c: _Copy) -> None:
        """An unpaired copy's destination slice lies in its array (a ``bounds`` rule, exact);
        its write is not in the model (when it lands is not: scoped unknown, see finish)."""
        try:
            dims = [_span_at(d, c.loc) for d in c.dst.dims]
        except _Unmodelled as u:  # a slice of symbolic extent: not checked (fail closed)
            _unsupported(u.what, u.loc)
            return
        shape = [shapes.as_expr(e) for e in c.dst.tensor.decl.shape]
        P.assert_p.bind(
            *[_i32(s) for s, _n in dims],
            *[_i32(e.const_value) if e.is_const else P.size_p.bind(name="", expr=e) for e in shape],
            form="inside",
            sizes=tuple(n for _s, n in dims),
            kind="bounds",
            what=f"the destination slice of the DMA into {c.dst.tensor.name} started at "
            f"{c.loc.short} lies inside {c.dst.tensor.name}",
            broken=f"the DMA started at {c.loc.short} writes outside {c.dst.tensor.name}",
            site=c.loc,
            tensor=c.dst.tensor.name,
            hint="Keep the destination slice inside the scratch buffer for every index.",
        )

    def _loose(self, name: str, loc: Location, why: str) -> None:
        if name not in self.loose:
            self.loose[name] = loc
            self.reasons[name] = why

    # ------------------------------------------------------------------ operations
    def start(self, src, dst, sem: Sem, loc: Location, params: dict) -> None:
        if params.get("add"):
            raise _Unmodelled("a DMA with add=True (an accumulating copy)", loc)
        for v, what in ((src, "source"), (dst, "destination")):
            if not isinstance(v, _View):
                raise _Unmodelled(f"a DMA {what} that is not a kernel operand or scratch", loc)
        if src.shape != dst.shape:
            raise _Unmodelled(
                f"a DMA from a slice of shape {src.shape} into one of shape {dst.shape}", loc
            )
        self.used.setdefault(sem.name, set()).update({src.tensor.name, dst.tensor.name})
        self.touch(src, False, loc, by_dma=True)
        self.touch(dst, True, loc, by_dma=True)
        data = _load(src, None, None, loc)  # the source slice, bounds-checked
        self._ambiguous(sem, loc)
        flights = self.scopes[-1].flights.setdefault((sem.name, sem.key()), [[], 0])
        flights[0].append(_Copy(sem, src, dst, data, loc, _size(dst)))

    def wait(self, dst, sem: Sem, loc: Location) -> None:
        if isinstance(dst, _View):
            self.used.setdefault(sem.name, set()).add(dst.tensor.name)
        k = (sem.name, sem.key())
        self._ambiguous(sem, loc)
        here = self.scopes[-1].flights.get(k)
        outer = [sc.flights[k] for sc in self.scopes[:-1] if k in sc.flights]
        if outer:
            self._loose(sem.name, loc, "a wait on a copy started in an enclosing block")
            return
        if here is None:
            # a copy of another block (an earlier grid step's prefetch) may be in flight on
            # it: then the semaphore is loose (see finish) and this rule is scoped unknown.
            # Once per line, semaphore element and block: the waits after it add nothing
            once = (loc, k, self.scopes[-1].serial)
            if once in self._orphans:
                return
            self._orphans.add(once)
            P.assert_p.bind(
                form="never",
                kind="coverage",
                what=f"the DMA wait on {_sem_text(sem)} at {loc.short} has a started copy "
                "to wait for",
                broken=f"the DMA wait on {_sem_text(sem)} at {loc.short} waits for a copy "
                "that was never started (it never returns)",
                site=loc,
                tensor=sem.name,
                hint="A wait with no started copy on its semaphore never returns: start the "
                "copy first (on the same semaphore element), or do not wait.",
            )
            return
        copies, waits = here
        size = _size(dst) if isinstance(dst, _View) else None
        if any(c.size != size for c in copies):
            self._loose(sem.name, loc, "copies of different sizes on one semaphore")
            return
        here[1] = waits + 1
        if here[1] < len(copies):
            return  # some copies done, not known which: none is written yet
        del self.scopes[-1].flights[k]
        for c in copies:  # the semaphore is drained: every copy on it has landed
            _store(c.dst, c.data, None, loc)

    def touch(self, view, write: bool, loc: Location, *, by_dma: bool = False) -> None:
        """A kernel access (or a new copy's source/destination) against the copies in flight."""
        views = view.views if isinstance(view, _Gather) else (view,)
        for v in views:
            if not isinstance(v, _View):
                continue
            for sc in self.scopes:
                for c in sc.copies():
                    if v.tensor.name == c.dst.tensor.name:
                        if by_dma and write:
                            kind, what = "race", "the destination of the DMA"
                        elif by_dma:
                            kind, what = "coverage", "the source of the DMA"
                        elif write:
                            kind, what = "race", "the write"
                        else:
                            kind, what = "coverage", "the read"
                        self._apart(
                            v,
                            c.dst,
                            kind,
                            f"{what} of {v.tensor.name} at {loc.short}",
                            f"the destination of the DMA started at {c.loc.short}",
                            loc,
                        )
                    elif write and v.tensor.name == c.src.tensor.name:
                        self._apart(
                            v,
                            c.src,
                            "race",
                            f"the {'destination of the DMA' if by_dma else 'write'} of "
                            f"{v.tensor.name} at {loc.short}",
                            f"the source of the DMA started at {c.loc.short}",
                            loc,
                        )

    # ------------------------------------------------------------------ helpers
    def _ambiguous(self, sem: Sem, loc: Location) -> None:
        """Two elements of one semaphore array the trace cannot tell apart (a traced index
        against another): their counts may be one count, not modelled."""
        key = sem.key()
        for sc in self.scopes:
            for name, k2 in sc.flights:
                if name != sem.name or k2 == key:
                    continue
                if any(a[0] == "v" or b[0] == "v" for a, b in zip(key, k2) if a != b) and all(
                    a == b or a[0] == "v" or b[0] == "v" for a, b in zip(key, k2)
                ):
                    self._loose(sem.name, loc, "semaphore elements whose indices may be equal")

    def _apart(self, a: _View, b: _View, kind: str, who: str, other: str, loc: Location) -> None:
        spans_a = [_span_at(d, loc) for d in a.dims]
        spans_b = [_span_at(d, loc) for d in b.dims]
        P.assert_p.bind(
            *[_i32(s) for s, _n in spans_a],
            *[_i32(s) for s, _n in spans_b],
            form="disjoint",
            sizes=tuple(n for _s, n in spans_a) + tuple(n for _s, n in spans_b),
            kind=kind,
            what=f"{who} stays clear of {other} until its wait",
            broken=f"{who} touches {other} before its wait "
            + (
                "(it reads data still in flight)"
                if kind == "coverage"
                else "(a race with the copy)"
            ),
            site=loc,
            tensor=a.tensor.name,
            hint="A DMA's destination may be read or written only after the wait that "
            "completes it, and its source written only after that wait; use another "
            "buffer (double buffering) or move the wait earlier.",
        )


def _span_at(d, loc: Location) -> tuple:
    try:
        return _span(d)
    except _Unmodelled as u:
        raise _Unmodelled(u.what, loc) from None


def _sem_text(sem: Sem) -> str:
    if not sem.index:
        return sem.name
    return f"{sem.name}[{', '.join(str(_const(i)) if _const(i) is not None else '?' for i in sem.index)}]"


def dma_eqn(replay, eqn, vals, loc: Location) -> list:
    """``dma_start`` / ``dma_wait`` of the replayed body (``_body._Replay.eqn``)."""
    p = eqn.params
    try:  # (src, dst, dst_sem, src_sem, device_id): AsyncCopyDescriptor._get_args_and_tree
        src, dst, dst_sem, src_sem, device_id = p["tree"].unflatten(vals)
    except (KeyError, TypeError, ValueError):
        raise _Unmodelled(
            f"{eqn.primitive.name} with operands laid out as {p.get('tree')}", loc
        ) from None
    if src_sem is not None or device_id is not None:
        raise _Unmodelled("a remote DMA (to or from another device)", loc)
    s_ref, s_tr = _ref_and_transforms(src)
    d_ref, d_tr = _ref_and_transforms(dst)
    m_ref, m_tr = _ref_and_transforms(dst_sem)
    if not isinstance(m_ref, Sem):
        raise _Unmodelled("a DMA on a semaphore that is not a DMA semaphore scratch", loc)
    sem = sem_at(m_ref, m_tr, loc)
    dv = replay.view(d_ref, d_tr, loc)
    if eqn.primitive.name == "dma_start":
        replay.dma.start(replay.view(s_ref, s_tr, loc), dv, sem, loc, p)
    else:  # a wait uses the destination's size and the semaphore (no source address)
        replay.dma.wait(dv, sem, loc)
    return []


def _ref_and_transforms(x):
    if type(x).__name__ == "TransformedRef":
        return x.ref, tuple(x.transforms)
    return x, ()
