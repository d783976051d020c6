"""Where each node of the model runs: its context, and the one door to the solver.

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
:meth:`Analysis.decide`, which calls :func:`tileproof.shapes.prove`, re-checks
every counterexample by evaluating the model's own expressions, and turns an
``inconsistent`` context (the node is unreachable) into a vacuous proof: the
domain itself was shown consistent first (see :mod:`._shape`).

Pairwise properties (two programs, two lanes, two ranks) rename the
per-instance names of a site with :meth:`Analysis.instance`; sizes stay shared.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ... import shapes
from ...model import (
    Access,
    Barrier,
    Branch,
    Lanes,
    Loop,
    Model,
    Node,
    walk,
)
from ...shapes._context import declared_lower_bounds
from ...shapes._relax import is_linear
from ...shapes._solver import RLIMIT
from .._report import Obligation

__all__ = ["Analysis", "Answer", "Instance", "Site"]

CHECK_BUDGET = 20_000  # shapes.prove calls per kernel (the catalog needs a few hundred)
T = shapes.conj()  # True
F = shapes.disj()  # False
INT64_MIN = -(2**63)
_ZERO = shapes.as_expr(0)
_COORD = re.compile(r"^_c\d+$")


def implies(a: shapes.Formula, b: shapes.Formula) -> shapes.Formula:
    return shapes.disj(shapes.negate(a), b)


def all_eq(xs: Sequence[shapes.Expr], ys: Sequence[shapes.Expr]) -> shapes.Formula:
    return shapes.conj(*(shapes.eq(x, y) for x, y in zip(xs, ys)))


# ----------------------------------------------------------------------------- sites


@dataclass(frozen=True)
class Site:
    """A node and what holds where it runs (see the module docstring)."""

    node: Node
    order: int  # position in program order (depth first)
    loops: tuple[Loop, ...]  # enclosing loops, outermost first
    lanes: tuple[Lanes, ...]  # enclosing lanes regions, outermost first
    conds: tuple[shapes.Formula, ...]  # enclosing branch conditions (already negated for else)
    branches: tuple[tuple[Branch, bool], ...]  # enclosing branches and the side taken
    phase: shapes.Expr  # grid barriers passed before the node
    # lanes barriers passed before the node since the start of its innermost lanes region
    lane_phase: shapes.Expr = _ZERO

    @property
    def loc(self):
        return self.node.loc

    @property
    def exits(self) -> tuple[Branch, ...]:
        return tuple(b for b, side in self.branches if b.exit and side)

    def loop_of(self, var: str) -> Loop | None:
        return next((lp for lp in self.loops if lp.var == var), None)


def _barrier_count(nodes: Iterable[Node], counts, into_lanes: bool) -> shapes.Expr:
    """How many barriers that ``counts`` executing ``nodes`` passes (an expression): loops
    multiply by their trip count, branches choose; lanes regions only if ``into_lanes``."""
    total = shapes.as_expr(0)
    for n in nodes:
        if isinstance(n, Barrier):
            if counts(n):
                total = total + 1
        elif isinstance(n, Loop):
            inner = _barrier_count(n.body, counts, into_lanes)
            if inner != 0:
                total = total + shapes.maximum(n.hi - n.lo, 0) * inner
        elif isinstance(n, Branch):
            a = _barrier_count(n.then, counts, into_lanes)
            b = _barrier_count(n.orelse, counts, into_lanes)
            if a != 0 or b != 0:
                total = total + shapes.where(n.cond, a, b)
        elif isinstance(n, Lanes) and into_lanes:
            total = total + _barrier_count(n.body, counts, into_lanes)
    return total


def grid_barriers(nodes: Iterable[Node]) -> shapes.Expr:
    """How many grid barriers (and launch boundaries) executing ``nodes`` passes."""
    return _barrier_count(nodes, lambda n: n.ends_phase, True)


def _bound_inside(loop: Loop | Lanes) -> set[str]:
    """Names that take a new value in every iteration of ``loop`` (or lane of a lanes
    region): its index, the indices of loops and lanes inside it, and the data it reads (or
    carries) there."""
    out = {loop.var, *getattr(loop, "carried", ())}
    for n in walk(loop.body):
        if isinstance(n, (Loop, Lanes)):
            out.add(n.var)
            out.update(getattr(n, "carried", ()))
        elif isinstance(n, Access) and n.value is not None:
            out.add(n.value)
    return out


def inexact_phase_loops(body: list[Node]) -> list[Loop | Lanes]:
    """Loops whose grid barriers per iteration change from one iteration to the next.

    Phases count grid barriers as ``(i - lo) * per_iteration`` at the start of iteration
    ``i``; that is exact only when ``per_iteration`` is the same in every iteration.  A
    barrier in an inner loop of ``i`` iterations (a triangular loop), or under a branch on
    ``i`` or on data read in the loop, breaks it (and, in a lanes region, a count that
    differs from lane to lane): those are returned, and the
    obligations that compare phases (race, coverage) cannot be trusted for the kernel.
    """
    out = []
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (Loop, Lanes)):  # lanes: one count for the program, whichever lane
            inner = grid_barriers(n.body)
            if inner != 0 and inner.free_symbols() & _bound_inside(n):
                out.append(n)
        stack.extend(n.children())
    return out


def lane_barriers(nodes: Iterable[Node]) -> shapes.Expr:
    """How many ``lanes`` barriers of the enclosing lanes region executing ``nodes`` passes
    (those of a nested lanes region synchronise its own lanes only: not counted)."""
    return _barrier_count(nodes, lambda n: n.scope == "lanes", False)


def _sites(body: list[Node]) -> list[Site]:
    out: list[Site] = []

    def walk(nodes, loops, lanes, conds, branches, phase, lph):
        for n in nodes:
            out.append(Site(n, len(out), loops, lanes, conds, branches, phase, lph))
            if isinstance(n, Loop):
                inner = grid_barriers(n.body)  # exact only outside inexact_phase_loops
                start = phase + (shapes.sym(n.var) - n.lo) * inner if inner != 0 else phase
                linner = lane_barriers(n.body)
                lstart = lph + (shapes.sym(n.var) - n.lo) * linner if linner != 0 else lph
                walk(n.body, (*loops, n), lanes, conds, branches, start, lstart)
            elif isinstance(n, Branch):
                walk(n.then, loops, lanes, (*conds, n.cond), (*branches, (n, True)), phase, lph)
                walk(n.orelse, loops, lanes, (*conds, shapes.negate(n.cond)),
                     (*branches, (n, False)), phase, lph)
            elif isinstance(n, Lanes):
                walk(n.body, loops, (*lanes, n), conds, branches, phase, shapes.as_expr(0))
            phase = phase + grid_barriers([n])
            if not isinstance(n, Lanes):
                lph = lph + lane_barriers([n])

    walk(body, (), (), (), (), shapes.as_expr(0), shapes.as_expr(0))
    return out


def inexact_lane_phases(region: Lanes) -> bool:
    """Lane phases count lanes barriers as ``(i - lo) * per_iteration`` in a loop, exact
    only when ``per_iteration`` is the same in every iteration (and every lane): a lanes
    barrier in a triangular loop, or under a branch on a loop index or on data read in the
    loop or on the lane id, breaks it, and no lane ordering is then claimed."""
    stack = list(region.body)
    while stack:
        n = stack.pop()
        if isinstance(n, Lanes):
            continue  # its barriers order its own lanes only
        if isinstance(n, Loop):
            inner = lane_barriers(n.body)
            if inner != 0 and inner.free_symbols() & (_bound_inside(n) | {region.var}):
                return True
        stack.extend(n.children())
    return bool(lane_barriers(region.body).free_symbols() & {region.var})


def lane_order(an: Analysis, a: Site, x: Instance, b: Site, y: Instance,
               strict: bool) -> shapes.Formula:
    """Lanes barriers order instance ``x`` of ``a`` against instance ``y`` of ``b`` (two lanes
    of one program, whose ids the caller equates): both in one instance of the same innermost
    lanes region (its enclosing loops at equal indices) and separated by a lanes barrier —
    ``x`` first when ``strict`` (lane phase of ``x`` below ``y``'s), else in either order.
    False where the regions differ: no ordering is claimed (fail closed).  That the lanes
    reach the barriers alike is the ``barrier`` obligation's part."""
    if not a.lanes or not b.lanes or a.lanes[-1] is not b.lanes[-1]:
        return F
    if a.lane_phase == 0 and b.lane_phase == 0:
        return F
    if inexact_lane_phases(a.lanes[-1]):
        return F
    region = an.by_node[id(a.lanes[-1])]
    outer = [shapes.sym(lp.var) for lp in region.loops]
    same = all_eq([x(v) for v in outer], [y(v) for v in outer])
    pa, pb = x(a.lane_phase), y(b.lane_phase)
    return shapes.conj(same, shapes.lt(pa, pb) if strict else shapes.ne(pa, pb))


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


# ---------------------------------------------------------------------------- answers


@dataclass
class Answer:
    """A decision re-checked on the model: ``proved``, ``refuted`` (with ``cex``) or ``unknown``."""

    status: str
    cex: dict[str, int] | None = None
    reason: str = ""
    vacuous: bool = False  # proved because the context admits no values (unreachable)

    @property
    def proved(self) -> bool:
        return self.status == "proved"


# --------------------------------------------------------------------------- analysis


class Analysis:
    """The model, its sites and names, and the solver door shared by all obligation kinds."""

    def __init__(self, model: Model, *, timeout_ms: int | None = None,
                 budget: int = CHECK_BUDGET):
        self.model = model
        # The budget that decides verdicts is deterministic: at most ``budget`` solver
        # checks per kernel, each under z3's rlimit (see :mod:`tileproof.shapes._solver`),
        # so a loaded machine answers exactly as an idle one.  ``timeout_ms`` is an opt-in
        # wall-clock cap on top (the ``solver-timeout-ms`` setting): only a user who sets it
        # trades determinism for a bounded wall time.
        self.budget = budget
        self.deadline = (time.perf_counter() + timeout_ms / 1000.0
                         if timeout_ms is not None else None)
        self.sites = _sites(model.body)
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
        # reads of an input tensor at an index of sizes only are one value for everyone
        self.global_data = {
            n for n, d in self.data.items()
            if getattr(model.tensors.get(d.tensor), "role", "input") == "input" and d.index
            and all(not (x.free_symbols() - set(self.sizes)) for x in d.index)
        }
        self.per_instance = per - self.global_data
        self.domain: tuple[shapes.Formula, ...] = tuple(model.assume) + tuple(
            shapes.ge(shapes.sym(s), k) for s, k in model.lower_bounds.items()
        )
        self.domain_status: str | None = None  # set by the shape check: consistent / inconsistent
        self.example: dict[str, int] = {}  # admissible sizes found by the shape check
        self.solver_seconds = 0.0
        self.queries = 0
        self._cache: dict = {}
        self.log: list[tuple[float, shapes.Formula, str]] = []  # (seconds, query, status)
        self.memo: dict = {}  # results one obligation kind computes and another reuses
        self._splitting = False  # inside the divisor checks of a division split
        self.checks = 0  # calls of shapes.prove: what the deterministic budget counts

    # -- names
    def is_size(self, name: str) -> bool:
        return (name not in self.per_instance and name not in self.data
                and not _COORD.match(name) and "__" not in name)

    def is_shared(self, name: str) -> bool:
        """The same for every instance: a size, or a global read (see ``global_data``)."""
        return self.is_size(name) or name in self.global_data

    def label(self, name: str) -> str:
        """How a user reads a name (``i_29`` is "loop index i (line 29)")."""
        base, _, inst = name.partition("__")
        if base in self.loop_vars:
            lp = self.loop_vars[base]
            m = re.match(r"^(.*)_(\d+)$", base)
            text = (f"loop index {m.group(1)} (line {lp.loc.line})"
                    if m and lp.loc.line and m.group(2) == str(lp.loc.line) else f"loop index {base}")
        elif base in self.data:
            d = self.data[base]
            shown = plain(shapes.sym(base), self)
            if len(shown) > 40:  # a long index: the tensor and the line say enough
                shown = f"{d.tensor}[...]"
            text = f"{shown} (line {d.loc.line})"
        elif base in self.lane_vars:
            text = f"lane {base}"
        else:
            text = base
        return text + (f" [{inst}]" if inst else "")

    def ranges(self, names: Iterable[str] | None = None) -> list[shapes.Formula]:
        """Ranges of program ids (and the rank when it is no grid axis)."""
        out: list[shapes.Formula] = []
        for p in self.pids:
            if names is None or p in names:
                v = shapes.sym(p)
                out += [shapes.ge(v, 0), shapes.lt(v, self.extents[p])]
        if self.rank_var and self.rank_var not in self.extents and (
            names is None or self.rank_var in names
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
        data = [f for n in sorted(names) if n in self.data
                for f in (self.data[n].range, self.data[n].dtype_range())]
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
                ren = {s: shapes.sym(f"{s}__{tag}")
                       for s in d.range.free_symbols() | {base} if not self.is_shared(s) or s == base}
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

    def instance(self, site: Site | None, tag: str, *, keep: Iterable[str] = (),
                 names: Iterable[str] | None = None) -> Instance:
        """Rename every per-instance name (and coordinate) except those in ``keep``."""
        pool = set(self.per_instance) if names is None else set(names)
        if site is not None and isinstance(site.node, Access):
            pool |= {c for c, _ in site.node.coord_ranges()}
        pool -= set(keep)
        return Instance({n: shapes.sym(f"{n}__{tag}") for n in sorted(pool)}, tag)

    def data_consistency(self, a: Instance, b: Instance, formulas, *,
                         extra: Sequence[tuple] = ()) -> list[shapes.Formula]:
        """Facts linking data values read by the two instances (and within each).

        Two reads of one entry of an input tensor agree (functional consistency); for a
        tensor declared ``distinct``, reads of different entries also differ.  Reads of a
        non-input tensor agree only when they are the same read node.  Names of other
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
            index = tuple(inst(x) for x in self.data[base].index)
            reads.setdefault(self.data[base].tensor, []).append((base, n, index))
        for name, tensor, index in extra:
            reads.setdefault(tensor, []).append((None, name, tuple(index)))
        out = []
        for tensor, items in reads.items():
            decl = self.model.tensors.get(tensor)
            role = getattr(decl, "role", "input")
            distinct = bool(getattr(decl, "distinct", False))
            for i, (b1, n1, i1) in enumerate(items):
                for b2, n2, i2 in items[i + 1:]:
                    if role != "input" and b1 != b2:
                        continue
                    if len(i1) != len(i2) or not i1:
                        continue
                    v1, v2 = shapes.sym(n1), shapes.sym(n2)
                    at = all_eq(i1, i2)
                    out.append(implies(at, shapes.eq(v1, v2)))
                    if distinct:
                        out.append(implies(shapes.eq(v1, v2), at))
        return out

    # -- the solver door
    def decide(self, query: shapes.Formula, assume: Sequence[shapes.Formula], *,
               quick: bool = False) -> Answer:
        """``prove(query, assume)``, counterexample re-checked; unreachable means vacuous.

        Cheaper sound attempts come first: the query is one of the assumptions; it holds
        under the linear assumptions alone; it holds in the linear relaxation (nonlinear
        terms as opaque symbols, :mod:`._atoms`).  ``quick`` stops there (``unknown``).
        """
        key = (query, tuple(assume), quick)
        got = self._cache.get(key)
        if got is not None:
            return got
        spent = self._spent()
        if spent:
            return Answer("unknown", reason=spent)
        ren = _equal_symbols(assume)
        if ren:  # x == y assumed: decide the equivalent problem with y replaced by x
            low = _literal_lower(assume)
            keep: dict[str, int] = {}
            for y, x in ren.items():  # the class keeps the largest lower bound (1 by default)
                rep = x.as_symbol()
                keep[rep] = max(keep.get(rep, low.get(rep, 1)), low.get(y, 1))
            q2 = query.subs(ren)
            a2 = tuple(dict.fromkeys([*(f.subs(ren) for f in assume),
                                      *(shapes.ge(shapes.sym(x), k) for x, k in keep.items())]))
            ans = self.decide(q2, tuple(f for f in a2 if f != T), quick=quick)
            if ans.cex is not None:
                cex = dict(ans.cex)
                for y, x in ren.items():
                    cex[y] = x.evaluate(cex)
                ans = Answer(ans.status, cex, ans.reason, ans.vacuous)
            self._cache[key] = ans
            return ans
        quot = None if self._splitting else self._divisions(query, assume)
        if quot:  # x // G, x % G (symbolic G >= 1): decide it over x = G*q + r
            low = _literal_lower(assume)
            facts = list(quot.facts())
            for x, g, q, r in quot.splits:
                facts += [shapes.ge(shapes.sym(q), INT64_MIN),
                          shapes.ge(g * shapes.sym(q) + shapes.sym(r), low.get(x, 1))]
            q2 = quot.rewrite(query)
            a2 = tuple(dict.fromkeys([*(quot.rewrite(f) for f in assume), *facts]))
            ans = self.decide(q2, tuple(f for f in a2 if f != T), quick=quick)
            if ans.cex is not None:
                try:
                    cex = quot.complete(dict(ans.cex))
                    ans = Answer(ans.status, {k: int(v.evaluate(cex)) if isinstance(
                        v, shapes.Expr) else v for k, v in cex.items()}, ans.reason, ans.vacuous)
                except (shapes.ShapeError, ZeroDivisionError):
                    ans = Answer("unknown", reason="a counterexample could not be mapped back")
            self._cache[key] = ans
            return ans
        t0 = time.perf_counter()
        given = set(_conjuncts(list(assume)))
        rest = [f for f in _conjuncts([query]) if f not in given]
        if not rest:  # every part of the query is one of the assumptions
            ans = Answer("proved")
            self._cache[key] = ans
            return ans
        try:
            ans = self._linear_first(query, assume)
            if ans is None:
                ans = self._relaxed(query, assume)
            if ans is None and quick:
                ans = Answer("unknown", reason="not decided by the quick attempts")
            if ans is None:
                ans = self._local_first(query, assume)
            if ans is None:
                ans = self._answer(self._prove(query, assume), query, assume)
        except shapes.ShapeError as e:
            ans = Answer("unknown", reason=f"the solver rejected the query: {e}")
        dt = time.perf_counter() - t0
        self.solver_seconds += dt
        self.queries += 1
        self.log.append((dt, query, ans.status))
        self._cache[key] = ans
        return ans

    def _prove(self, query, assume) -> shapes.Decision:
        """:func:`tileproof.shapes.prove`, counted against the budget (cached answers too, so
        the count does not depend on what an earlier kernel left in the cache)."""
        self.checks += 1
        return shapes.prove(query, assume)

    def _spent(self) -> str:
        """Why no further query may be asked (empty while the budgets last)."""
        if self.checks >= self.budget:
            return (f"solver budget of the static check exhausted ({self.budget} checks of at "
                    f"most {RLIMIT} z3 resource units each, per kernel)")
        if self.deadline is not None and time.perf_counter() > self.deadline:
            return "time budget of the static check exhausted (the solver-timeout-ms setting)"
        return ""

    def _linear_first(self, query, assume) -> Answer | None:
        """Try the query under the linear assumptions only (fewer hypotheses: a proof there is
        a proof).  A refutation counts only if it satisfies every assumption as well."""
        linear = tuple(f for f in assume if not _nonlinear(f))
        if len(linear) == len(assume):
            return None
        d = self._prove(query, linear)
        if d.verdict == "proved":
            return Answer("proved")
        if d.verdict == "refuted":
            cex = dict(d.counterexample or {})
            try:
                if all(f.evaluate(cex) for f in assume) and not query.evaluate(cex):
                    return self._answer(d, query, assume)
            except (ZeroDivisionError, shapes.ShapeError):
                pass
        return None

    def _divisions(self, query, assume):
        """Splits ``x = G*q + r`` for the atoms ``x // G`` / ``x % G`` of the problem (``x`` a
        symbol, ``G`` symbolic, free of ``x`` and provably ``>= 1`` here): see
        :class:`._witness.Quotients`; an equivalence, so proofs and counterexamples carry
        over (``x`` of a counterexample is ``G*q + r``)."""
        from ._witness import Quotients, division_atoms

        atoms: list = []
        for f in (query, *assume):
            division_atoms(f, atoms)
        cands = {a.args[0].as_symbol() for a in atoms
                 if a.args[0].as_symbol() and not a.args[1].is_const
                 and a.args[0].as_symbol() not in a.args[1].free_symbols()}
        if not cands:
            return None
        names = {n: (shapes.as_expr(0), shapes.as_expr(1)) for n in cands}
        self._splitting = True  # the divisor checks themselves are decided as they are
        try:
            quot = Quotients.find([query, *assume], names,
                                  lambda g: self.decide(shapes.ge(g, 1), assume).proved,
                                  prefix="_d")
        finally:
            self._splitting = False
        return quot or None

    def _local_first(self, query, assume) -> Answer | None:
        """Try the query under the assumptions about its own symbols only (and the literal
        bounds of those): a proof from fewer hypotheses is a proof, and a small problem is
        often decided at once where the whole one exhausts the solver.  Refutations are
        ignored (the dropped assumptions may exclude them)."""
        names = query.free_symbols()
        parts = _conjuncts(list(assume))
        tried: set[int] = set()
        for _hop in range(2):  # the query's own symbols, then their small neighbourhood
            local = tuple(f for f in parts if f.free_symbols() <= names)
            if len(local) == len(parts) or len(local) in tried:
                return None
            tried.add(len(local))
            if self._prove(query, local).verdict == "proved":
                return Answer("proved")
            near = [f.free_symbols() for f in parts if f.free_symbols() & names]
            names = names.union(*(fs for fs in near if len(fs) <= 4))
        return None

    def _relaxed(self, query, assume) -> Answer | None:
        """Proved in the linear relaxation (see :mod:`tileproof.shapes._atomise`), or None."""
        from ...shapes._atomise import atomise

        got = atomise(query, assume)
        if got is None:
            return None
        d = self._prove(*got)
        return Answer("proved") if d.verdict == "proved" else None

    def _answer(self, d, query, assume) -> Answer:
        if d.verdict == "proved":
            return Answer("proved")
        if d.verdict == "inconsistent":
            if self.domain_status == "consistent":
                return Answer("proved", vacuous=True)
            return Answer("unknown", reason="the assumptions admit no values")
        if d.verdict == "unknown":
            return Answer("unknown", reason=d.reason or "the solver gave no answer")
        cex = dict(d.counterexample or {})
        try:
            ok = all(f.evaluate(cex) for f in assume)
            fails = not query.evaluate(cex)
        except ZeroDivisionError:
            return Answer("unknown", cex=cex,
                          reason="a divisor can be zero here (see the shape obligations)")
        except shapes.ShapeError as e:
            return Answer("unknown", reason=f"counterexample could not be re-checked: {e}")
        if not (ok and fails):
            return Answer("unknown", reason=f"solver counterexample {cex} did not re-check")
        if (d.reason or "").startswith("division by zero"):
            return Answer("unknown", cex=cex,
                          reason="a divisor can be zero here (see the shape obligations)")
        return Answer("refuted", cex=cex)

    def complete(self, query: shapes.Formula, assume: Sequence[shapes.Formula],
                 cex: Mapping[str, int], show: Iterable) -> dict[str, int] | None:
        """``cex`` extended to every name the expressions in ``show`` use, re-checked.

        A solver's model binds the names of the query it decided; a message evaluates more
        (the whole element, a phase), and a name the decided query no longer mentions (a
        shared term cancelled from both sides of an equation, say) has no value.  So the
        missing names get their ranges (declared data ranges, id, lane and loop ranges,
        tile coordinates), every value already found is pinned, and the refutation is
        decided again: the answer is a complete assignment that still refutes ``query``
        under ``assume``, or None when there is none to be had.
        """
        full = dict(cex)
        need: set[str] = set()
        for e in show:
            if e is not None:
                need |= e.free_symbols()
        facts: list[shapes.Formula] = []
        seen: set[str] = set()
        todo = sorted(need - set(full))
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            got = self._range_of(n)
            facts += got
            for f in got:
                todo += sorted(f.free_symbols() - set(full) - seen)
        missing = sorted(need - set(full))
        if not missing:
            return full
        # mention every missing name so that the model binds it
        facts += [shapes.ge(shapes.sym(n), INT64_MIN) for n in missing]
        pins = [shapes.eq(shapes.sym(k), v) for k, v in full.items()]
        ans = self.decide(query, (*assume, *facts, *pins))
        if ans.status != "refuted" or ans.cex is None:
            return None
        full.update(ans.cex)
        try:
            if query.evaluate(full) or not all(f.evaluate(full) for f in assume):
                return None
        except (shapes.ShapeError, ZeroDivisionError):
            return None
        return full if not (need - set(full)) else None

    def _range_of(self, name: str) -> list[shapes.Formula]:
        """The range facts of one (possibly renamed) name: ids, lanes, loops, data, coords."""
        base, sep, tag = name.partition("__")
        ren = (lambda f: f.subs({m: shapes.sym(f"{m}__{tag}") for m in f.free_symbols()
                                 if m in self.per_instance or _COORD.match(m)})) if sep else (
            lambda f: f)
        v = shapes.sym(name)
        if base in self.pids or base == self.rank_var:
            return [ren(f) for f in self.ranges([base])]
        if base in self.lane_vars:
            return [shapes.ge(v, 0), shapes.lt(v, self.lane_vars[base].n)]
        if base in self.loop_vars:
            return [ren(f) for f in loop_range(self.loop_vars[base])]
        if base in self.data:
            return self.data_facts([v])
        return []

    def minimise(self, query: shapes.Formula, assume: Sequence[shapes.Formula],
                 cex: dict[str, int], *, steps: int = 64) -> dict[str, int]:
        """Smallest sizes (one after the other, in declaration order), then smallest data
        values, that still refute: a binary search of refutable ``NAME <= v`` queries.

        Every returned counterexample is a refutation re-checked by :meth:`decide`; the
        search stops after ``steps`` queries (a count, not a time: the counterexample a
        user sees must not depend on machine load) with the best one found so far.
        """
        left = steps
        best = dict(cex)
        fixed: list[shapes.Formula] = []
        lower = _literal_lower(assume)
        for name in [*self.sizes, *sorted(n for n in cex if n in self.data)]:
            if name not in best:
                continue
            v = shapes.sym(name)
            lo, hi = lower.get(name, 1 if name in self.sizes else best[name]), best[name]
            while lo < hi and left > 0 and not self._spent():
                left -= 1
                mid = (lo + hi) // 2
                ans = self.decide(query, (*assume, *fixed, shapes.le(v, mid)))
                if ans.status == "refuted" and ans.cex and ans.cex.get(name, hi) <= mid:
                    best, hi = ans.cex, ans.cex.get(name, mid)
                else:
                    lo = mid + 1
            fixed.append(shapes.eq(v, best[name]))
        return best

    # -- reporting
    def values(self, cex: Mapping[str, int], *, skip: Iterable[str] = ()) -> dict[str, int]:
        """The user-visible part of a counterexample: sizes first, then ids, loops, data."""
        skip = set(skip)
        pool = [n for n in cex if n not in skip and not _COORD.match(n.partition("__")[0])
                and not n.startswith("_")]

        def rank(n):
            base = n.partition("__")[0]
            if base in self.sizes:
                return (0, self.sizes.index(base), n)
            if base in self.pids or base == self.rank_var:
                return (1, self.pids.index(base) if base in self.pids else 99, n)
            if base in self.lane_vars:
                return (2, 0, n)
            if base in self.loop_vars:
                return (3, 0, n)
            if base in self.data:
                return (4, 0, n)
            return (5, 0, n)

        return {n: int(cex[n]) for n in sorted(pool, key=rank)}

    def split(self, cex: Mapping[str, int], *tags: str) -> tuple[dict[str, int], list[dict[str, int]]]:
        """Sizes, and per instance tag its user-visible names without the tag (``b__2`` -> ``b``)."""
        sizes = self.values({k: v for k, v in cex.items() if self.is_size(k)})
        insts = []
        for tag in tags:
            suffix = f"__{tag}"
            mine = {k[: -len(suffix)]: v for k, v in cex.items() if k.endswith(suffix)}
            insts.append(self.values(mine))
        return sizes, insts

    def who(self, vals: Mapping[str, int], *, what: str = "program") -> str:
        """``program (b=0, qt=1) at loop index i (line 29)=0, lane l=1`` from one instance."""
        ids = [f"{k}={v}" for k, v in vals.items() if k in self.pids or k == self.rank_var]
        rest = [f"{self.label(k)}={v}" for k, v in vals.items()
                if k not in self.pids and k != self.rank_var and k not in self.data]
        text = f"{what} ({', '.join(ids)})" if ids else f"the {what}"
        if rest:
            text += " at " + ", ".join(rest)
        return text

    def primed(self, sizes: Mapping[str, int], insts: Sequence[Mapping[str, int]]) -> dict[str, int]:
        """One counterexample dict: sizes, the first instance's names, the second's primed."""
        out = dict(sizes)
        for i, vals in enumerate(insts):
            out.update({k + "'" * i: v for k, v in vals.items()})
        return out

    def show(self, vals: Mapping[str, int]) -> str:
        return ", ".join(f"{self.label(k)}={v}" for k, v in vals.items())

    def relevant(self, cex: Mapping[str, int], *exprs) -> dict[str, int]:
        """The counterexample restricted to sizes and the names the given expressions mention."""
        names: set[str] = set(self.sizes)
        for e in exprs:
            if e is not None:
                names |= e.free_symbols()
        # data symbols pull in the names of their index
        for n in list(names):
            d = self.data.get(n.partition("__")[0])
            if d is not None:
                for x in d.index:
                    names |= x.free_symbols()
        return self.values({k: v for k, v in cex.items() if k in names})

    def obligation(self, kind: str, node_or_site, message: str, ans: Answer, *,
                   violated: str | None = None, cex: dict[str, int] | None = None,
                   t0: float | None = None, hint: str = "", detail: dict | None = None) -> Obligation:
        """Turn an Answer into an Obligation (``violated`` is the message when refuted)."""
        node = node_or_site.node if isinstance(node_or_site, Site) else node_or_site
        loc = node.loc if node is not None else self.model_location()
        secs = time.perf_counter() - t0 if t0 is not None else 0.0
        det = dict(detail or {})
        if isinstance(node, Access):  # the tensor it is about: scopes unsupported constructs
            det.setdefault("tensor", node.tensor)
        site = self.by_node.get(id(node)) if node is not None else None
        if ans.status == "proved" and site is not None:
            reach = self.reachable(site)
            if reach.status != "refuted":
                det["vacuous"] = True
                why = ("its premises admit no program/size: vacuous" if reach.proved else
                       f"whether any program/size reaches it is unknown ({reach.reason})")
                return Obligation(kind, "unknown", message, loc, reason=why, seconds=secs,
                                  hint="Check the domain, the grid and the conditions around "
                                       f"{loc.short}: no admissible values execute it.",
                                  detail=det)
        if ans.status == "proved":
            if ans.vacuous:
                det["vacuous"] = True
            return Obligation(kind, "proved", message, loc, seconds=secs, detail=det,
                              reason="unreachable: no admissible values reach it" if ans.vacuous
                              else "")
        if ans.status == "refuted":
            return Obligation(kind, "violated", violated or message, loc,
                              counterexample=cex if cex is not None else self.values(ans.cex or {}),
                              seconds=secs, hint=hint, detail=det)
        return Obligation(kind, "unknown", message, loc, reason=ans.reason or "undecided",
                          seconds=secs, hint=hint, detail=det)

    def model_location(self):
        from ...spec._errors import UNKNOWN, Location

        src = self.model.source
        file, _, line = src.rpartition(":")
        try:
            return Location(file, int(line))
        except ValueError:
            return UNKNOWN


def _nonlinear(f) -> bool:
    """Does ``f`` multiply two non-constant quantities, or divide by one (anywhere)?"""
    return not is_linear([f])


def _literal_lower(assume: Sequence[shapes.Formula]) -> dict[str, int]:
    return declared_lower_bounds(assume)


def _equal_symbols(assume: Sequence[shapes.Formula]) -> dict[str, shapes.Expr]:
    """``{y: x}`` for the assumed equalities ``x == y`` between two symbols (conjuncts of the
    assumptions), ``x`` the representative of its class (the smallest name)."""
    parent: dict[str, str] = {}

    def find(n: str) -> str:
        while parent.get(n, n) != n:
            n = parent[n]
        return n

    for f in _conjuncts(list(assume)):
        if isinstance(f, shapes.Cmp) and f.op == "==":
            a, b = f.lhs.as_symbol(), f.rhs.as_symbol()
            if a and b and a != b:
                ra, rb = find(a), find(b)
                if ra != rb:
                    lo, hi = sorted((ra, rb))
                    parent[hi] = lo
    return {n: shapes.sym(find(n)) for n in parent}


def _conjuncts(fs: list) -> list:
    out = []
    for f in fs:
        if isinstance(f, shapes.BoolOp) and f.kind == "and":
            out += _conjuncts(list(f.args))
        else:
            out.append(f)
    return out


def loop_range(lp: Loop) -> list[shapes.Formula]:
    v = shapes.sym(lp.var)
    low = shapes.ge(v, lp.lo.const_value) if lp.lo.is_const else shapes.ge(v, INT64_MIN)
    out = [low, shapes.lt(v, lp.hi)]
    if not lp.lo.is_const:
        out.append(shapes.ge(v, lp.lo))
    return out


def plain(e, an: Analysis) -> str:
    """An expression as a user reads it: ``i_29`` -> ``i``, ``block_table_23`` -> ``block_table[b, i]``."""
    text = str(e)
    names = sorted(e.free_symbols(), key=len, reverse=True)
    for n in names:
        m = re.match(r"^(.*)_(\d+)$", n)
        if n in an.data:
            d = an.data[n]
            idx = ", ".join(plain(x, an) for x in d.index)
            text = re.sub(rf"\b{re.escape(n)}\b", f"{d.tensor}[{idx}]", text)
        elif n in an.loop_vars and m:
            text = re.sub(rf"\b{re.escape(n)}\b", m.group(1), text)
        elif _COORD.match(n):  # a tile coordinate: the position along that tile axis
            text = re.sub(rf"\b{re.escape(n)}\b", f"pos{n[2:]}", text)
    return text

