"""The analysis of one model: its names, and the context of every site.

A *site* is a node together with everything that holds wherever it executes:

* the **domain**: the kernel's assumptions over its sizes (sizes are ``>= 1``
  by the shapes convention unless an assumption ``NAME >= k`` says otherwise);
* **ranges** of the per-program names in scope: program ids
  ``0 <= pid < extent``, the rank ``0 <= r < n``, lane ids ``0 <= lane < n``,
  loop indices ``lo <= i < hi`` of every enclosing loop, and (for accesses)
  tile coordinates ``0 <= _c < tile``;
* **data** values read from index tensors, constrained by their declared range
  and by their dtype's range, and by nothing else;
* the **path**: the conditions of the enclosing branches (``then``: the
  condition, ``else``: its negation), early-exit guards included;
* the **phase**: how many grid barriers (and launch boundaries) the program has
  passed before the node, an expression (usually a constant) over the names in scope.

Every lower bound other than ``1`` is stated as a literal ``NAME >= k`` so that
:func:`tileproof.shapes.prove` gives the symbol that domain.

Obligation modules build a query and an assumption list from sites and call
:meth:`Analysis.decide` (:mod:`._decide`: the solver door, its strategies and
budget), then complete and minimise a counterexample (:mod:`._counterexamples`)
and word the verdict (:mod:`._explain`).  Sites and phases are found by
:mod:`._sites`; orderings between two instances are in :mod:`._order`.

Pairwise properties (two programs, two lanes, two ranks) rename the
per-instance names of a site with :meth:`Analysis.instance`; sizes stay shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ... import shapes
from ...model import Access, Lanes, Loop, Model
from ._counterexamples import Counterexamples
from ._decide import CHECK_BUDGET, INT64_MIN, Answer, Decider, F, T
from ._explain import COORD, Explainer
from ._sites import Site, inexact_phase_loops, loop_range, sites_of

__all__ = [
    "CHECK_BUDGET",
    "INT64_MIN",
    "Analysis",
    "Answer",
    "Instance",
    "Site",
    "all_eq",
    "implies",
    "loop_range",
]


def implies(a: shapes.Formula, b: shapes.Formula) -> shapes.Formula:
    return shapes.disj(shapes.negate(a), b)


def all_eq(xs: Sequence[shapes.Expr], ys: Sequence[shapes.Expr]) -> shapes.Formula:
    return shapes.conj(*(shapes.eq(x, y) for x, y in zip(xs, ys)))


# ------------------------------------------------------------------------- instances


@dataclass
class Instance:
    """A renaming of a site's per-instance names (``b -> b__2``); sizes are shared."""

    mapping: dict[str, shapes.Expr] = field(default_factory=dict)
    tag: str = ""

    def __call__(self, x):
        if x is None or not self.mapping:
            return x
        return x.subs(self.mapping)

    def name(self, n: str) -> str:
        e = self.mapping.get(n)
        return e.as_symbol() if e is not None and e.as_symbol() else n


# --------------------------------------------------------------------------- analysis


class Analysis(Decider, Counterexamples, Explainer):
    """The model, its sites and names, and the context facts every obligation kind uses.

    Its bases hold the other jobs: :class:`._decide.Decider` (the solver door),
    :class:`._counterexamples.Counterexamples` and :class:`._explain.Explainer`.
    """

    def __init__(self, model: Model, *, timeout_ms: int | None = None, budget: int = CHECK_BUDGET):
        super().__init__(timeout_ms=timeout_ms, budget=budget)
        self.model = model
        self.sites = sites_of(model.body)
        self.inexact_phases = inexact_phase_loops(model.body)
        self._reach: dict = {}  # site context -> Answer (is it satisfiable?)
        self.by_node = {id(s.node): s for s in self.sites}
        self.pids = [name for name, _ in model.grid]
        self.extents = dict(model.grid)
        self.rank_var = model.ranks[0] if model.ranks else None
        self.rank_size = model.ranks[-2] if model.ranks else None
        self.topology = model.ranks[-1] if model.ranks else None
        self.loop_vars = {s.node.var: s.node for s in self.sites if isinstance(s.node, Loop)}
        self.lane_vars = {s.node.var: s.node for s in self.sites if isinstance(s.node, Lanes)}
        self.data = dict(model.data)
        per = set(self.pids) | set(self.loop_vars) | set(self.lane_vars) | set(self.data)
        if self.rank_var:
            per.add(self.rank_var)
        self.sizes = [s for s in model.sizes if s not in per]
        self.roles = self.name_roles()
        # reads of an input tensor at an index of sizes only are one value for everyone
        self.global_data = {
            n
            for n, d in self.data.items()
            if getattr(model.tensors.get(d.tensor), "role", "input") == "input"
            and d.index
            and all(not (x.free_symbols() - set(self.sizes)) for x in d.index)
        }
        self.per_instance = per - self.global_data
        self.read_keys = self._read_keys()
        self.settled = self._settled()
        self.domain: tuple[shapes.Formula, ...] = tuple(model.assume) + tuple(
            shapes.ge(shapes.sym(s), k) for s, k in model.lower_bounds.items()
        )
        self.example: dict[str, int] = {}  # admissible sizes found by the shape check
        self.memo: dict = {}  # results one obligation kind computes and another reuses

    def _read_keys(self) -> dict[str, tuple[str, ...]]:
        """Per data symbol, the names that pick one execution of its read: program ids (and
        the rank), the lanes and loop indices around the read (a loop-carried read: the
        carrying loop's index too).  Two instances that agree on them are one execution and
        read one value, whatever the kernel stores in between."""
        base = [*self.pids]
        if self.rank_var and self.rank_var not in self.extents:
            base.append(self.rank_var)
        out: dict[str, tuple[str, ...]] = {}
        for s in self.sites:
            around = [*base, *(ln.var for ln in s.lanes), *(lp.var for lp in s.loops)]
            if isinstance(s.node, Access) and s.node.value is not None:
                out[s.node.value] = tuple(around)
            elif isinstance(s.node, Loop):
                for c in s.node.carried:
                    if c is not None:
                        out[c] = (*around, s.node.var)
        return out

    def _settled(self) -> dict[str, tuple[shapes.Expr, ...]]:
        """Reads of a stored-into tensor that no store can follow: the read's phase and every
        store's phase of that tensor are constants, and the read's is greater (a grid barrier
        or launch boundary separates them).  Such reads see the tensor as the stores left it,
        one value per element, like an input's: data symbol -> the element read.  None where
        phases are inexact (see ``inexact_phases``)."""
        if self.inexact_phases:
            return {}
        last: dict[str, int | None] = {}
        for s in self.sites:
            if isinstance(s.node, Access) and s.node.kind == "store":
                t, ph = s.node.tensor, s.phase
                if not ph.is_const or (t in last and last[t] is None):
                    last[t] = None
                else:
                    last[t] = max(last.get(t, ph.const_value), ph.const_value)
        out: dict[str, tuple[shapes.Expr, ...]] = {}
        for s in self.sites:
            n = s.node
            if not (isinstance(n, Access) and n.value is not None and n.value in self.data):
                continue
            d = self.data[n.value]
            top = last.get(d.tensor)
            if d.index or not d.entry or top is None or not s.phase.is_const:
                continue
            if s.phase.const_value > top:
                out[n.value] = d.entry
        return out

    # -- names
    def is_size(self, name: str) -> bool:
        return (
            name not in self.per_instance
            and name not in self.data
            and not COORD.match(name)
            and "__" not in name
        )

    def is_shared(self, name: str) -> bool:
        """The same for every instance: a size, or a global read (see ``global_data``)."""
        return self.is_size(name) or name in self.global_data

    def ranges(self, names: Iterable[str] | None = None) -> list[shapes.Formula]:
        """Ranges of program ids (and the rank when it is no grid axis)."""
        out: list[shapes.Formula] = []
        for p in self.pids:
            if names is None or p in names:
                v = shapes.sym(p)
                out += [shapes.ge(v, 0), shapes.lt(v, self.extents[p])]
        if (
            self.rank_var
            and self.rank_var not in self.extents
            and (names is None or self.rank_var in names)
        ):
            v = shapes.sym(self.rank_var)
            out += [shapes.ge(v, 0), shapes.lt(v, self.rank_size)]
        return out

    def scope(self, site: Site, *, upto: int | None = None) -> list[shapes.Formula]:
        """Ranges of every name in scope at ``site`` and its path (not its data; see :meth:`assume`).

        ``upto`` keeps only the first ``upto`` enclosing loops (for a Loop's own bounds).
        """
        out = self.ranges()
        for ln in site.lanes:
            v = shapes.sym(ln.var)
            out += [shapes.ge(v, 0), shapes.lt(v, ln.n)]
        for lp in site.loops if upto is None else site.loops[:upto]:
            out += loop_range(lp)
        out += list(site.conds)
        return out

    def reachable(self, site: Site) -> Answer:
        """Do admissible values reach ``site``?  ``refuted``: yes (a re-checked witness),
        ``proved``: no (its context is unsatisfiable), else ``unknown``.

        The context is the domain, the ranges of program ids, lanes and enclosing loops,
        the enclosing branch conditions (early exits included), the tile coordinates of an
        access and the declared ranges of the data all of these mention.  One query per
        distinct context, cached: an obligation proved at a site no values reach is
        vacuous, and :meth:`obligation` reports it ``unknown``, never ``proved``.
        """
        facts = self.scope(site)
        names: set[str] = set()
        if isinstance(site.node, Access):
            facts += self.coords(site.node)
            for d in site.node.dims:
                names |= d.start.free_symbols()
        data = [
            f
            for n in sorted(names)
            if n in self.data
            for f in (self.data[n].range, self.data[n].dtype_range())
        ]
        assume = self.assume(facts, data)
        got = self._reach.get(assume)
        if got is None:
            got = self.decide(F, assume)
            self._reach[assume] = got
        return got

    def coords(self, acc: Access) -> list[shapes.Formula]:
        out = []
        for c, n in acc.coord_ranges():
            out += [shapes.ge(shapes.sym(c), 0), shapes.lt(shapes.sym(c), n)]
        return out

    def data_facts(self, formulas: Iterable) -> list[shapes.Formula]:
        """Declared and dtype ranges of every data symbol free in ``formulas`` (renamed ones too).

        A renamed symbol ``v__a`` (instance ``a`` of a two-program query) gets its range with
        *every* per-instance name in it renamed the same way — a range that mentions a program
        id, loop variable or another data value speaks of that instance's, never of the
        un-renamed one — and the ranges of the data symbols a range mentions are added too.
        """
        todo: list[str] = []
        for f in formulas:
            if f is not None:
                todo += sorted(f.free_symbols())
        out, done = [], set()
        while todo:
            n = todo.pop()
            if n in done:
                continue
            done.add(n)
            base, sep, tag = n.partition("__")
            d = self.data.get(base)
            if d is None:
                continue
            ren = {}
            if sep:
                ren = {
                    s: shapes.sym(f"{s}__{tag}")
                    for s in d.range.free_symbols() | {base}
                    if not self.is_shared(s) or s == base
                }
            rng = d.range.subs(ren) if ren else d.range
            out.append(rng)
            out.append(d.dtype_range().subs(ren) if ren else d.dtype_range())
            todo += sorted(rng.free_symbols() - done)
        return out

    def assume(self, *parts: Iterable[shapes.Formula], query=None) -> tuple[shapes.Formula, ...]:
        """Domain + the given facts + data ranges of everything mentioned (query included)."""
        facts: list[shapes.Formula] = []
        for p in parts:
            for f in p:
                if f is not None and f not in facts and f != T:
                    facts.append(f)
        data = self.data_facts([*facts, query])
        return self.domain + tuple(facts) + tuple(f for f in data if f not in facts)

    def instance(
        self,
        site: Site | None,
        tag: str,
        *,
        keep: Iterable[str] = (),
        names: Iterable[str] | None = None,
    ) -> Instance:
        """Rename every per-instance name (and coordinate) except those in ``keep``."""
        pool = set(self.per_instance) if names is None else set(names)
        if site is not None and isinstance(site.node, Access):
            pool |= {c for c, _ in site.node.coord_ranges()}
        pool -= set(keep)
        return Instance({n: shapes.sym(f"{n}__{tag}") for n in sorted(pool)}, tag)

    def data_consistency(
        self, a: Instance, b: Instance, formulas, *, extra: Sequence[tuple] = ()
    ) -> list[shapes.Formula]:
        """Facts linking data values read by the two instances (and within each).

        Two reads of one entry of an input tensor agree (functional consistency); for a
        tensor declared ``distinct``, reads of different entries also differ.  Reads of a
        tensor the kernel stores into have no index (see
        :func:`tileproof.lowering._data.unpin_written`): two of them agree only when they
        are one execution of one read node (the same program, lanes and loop indices around
        it, :meth:`_read_keys`).  Names of other
        instances than ``a`` and ``b`` are left alone (their indices are not known here).
        ``extra`` adds reads ``(name, tensor, index)`` with their indices as given (the
        reads of a work table's declaration); ``name`` must be free of the model's.
        """
        names: set[str] = set()
        for f in formulas:
            names |= f.free_symbols()
        by_tag = {a.tag: a, b.tag: b}
        same = Instance({}, "")
        reads: dict[str, list[tuple[str, str, tuple]]] = {}
        for n in sorted(names):
            base, sep, tag = n.partition("__")
            if base not in self.data or (sep and tag not in by_tag):
                continue
            inst = by_tag.get(tag, same) if sep else by_tag.get("", same)
            settled = self.settled.get(base)
            index = tuple(inst(x) for x in (settled or self.data[base].index))
            entry = (base, n, index, inst, settled is not None)
            reads.setdefault(self.data[base].tensor, []).append(entry)
        for name, tensor, index in extra:
            reads.setdefault(tensor, []).append((None, name, tuple(index), None, False))
        out = []
        for tensor, items in reads.items():
            decl = self.model.tensors.get(tensor)
            role = getattr(decl, "role", "input")
            distinct = bool(getattr(decl, "distinct", False))
            for i, (b1, n1, i1, x1, s1) in enumerate(items):
                for b2, n2, i2, x2, s2 in items[i + 1 :]:
                    v1, v2 = shapes.sym(n1), shapes.sym(n2)
                    key = self.read_keys.get(b1) if b1 is not None and b1 == b2 else None
                    if key is not None and not i1 and x1 is not None and x2 is not None:
                        ks = [shapes.sym(k) for k in key]
                        once = all_eq([x1(k) for k in ks], [x2(k) for k in ks])
                        out.append(implies(once, shapes.eq(v1, v2)))
                    if s1 != s2:  # a settled read and one a store may precede: unlinked
                        continue
                    if role != "input" and b1 != b2 and not s1:
                        continue
                    if len(i1) != len(i2) or not i1:
                        continue
                    at = all_eq(i1, i2)
                    out.append(implies(at, shapes.eq(v1, v2)))
                    if distinct and not s1:  # distinct is not checked on stores
                        out.append(implies(shapes.eq(v1, v2), at))
        return out
