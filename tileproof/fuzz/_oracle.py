"""Brute force: execute a :class:`KernelDesc` concretely, program by program, in plain Python.

The oracle is written from the *description* (not from the lowered model nor
from the numeric executor), so a lowering that drops a construct, a static
check that proves too much, and an executor that flags too little all show up
as disagreements with it.  It walks the body of every program at one size
point with one filling of the index tensor and records every element every
access touches, then states per obligation key whether the property fails:

* ``("bounds", line)``: an unmasked element of the access at ``line`` lies
  outside its tensor;
* ``("exists", tensor)``: an element of the output is never written;
* ``("unique", line)``: an element the store at ``line`` writes is written
  again by another instance of it or by a later store — an instance being the
  program, the lane and the values of the loop indices the store's index uses
  *directly* (the same program rewriting one tile on iterations of a loop its
  index ignores is an accumulation, as the coverage obligation states);
* ``("read", line)``: the scratch load at ``line`` reads an element no store
  wrote before it (in an earlier phase, or the same program earlier);
* ``("race", line)``: an element the store at ``line`` writes is written by a
  later store or read by any load in the same phase by another program (or
  another lane of the same lanes region between the same lanes barriers);
* ``("barrier", line)``: the participants of the barrier at ``line`` do not
  all reach it the same number of times;
* ``("split", line)``: a ``lane_part`` of a tile whose halved extent the lane
  count does not divide is executed.

It is deliberately *lenient* where the statement of a property leaves room
(lanes ordering, accumulation): a ``True`` here is a violation under every
reading, so a ``proved`` obligation meeting one is unsound.  An access whose
index reads the index tensor out of bounds *taints* the run: the oracle goes on
with the least value of the declared range (what the static reasoning assumes
of every value read), but the numeric executor reads 0 there, so a tainted run
is compared with the executor on bounds only.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field

from ._desc import KernelDesc

__all__ = ["Outcome", "eval_expr", "run"]


class _Div0(Exception):
    pass


def eval_expr(e, env: dict) -> int:
    tag = e[0]
    if tag == "c":
        return e[1]
    if tag == "s":
        return env[e[1]]
    if tag == "p":
        return env[f"p{e[1]}"]
    if tag == "i":
        return env[f"i{e[1]}"]
    if tag == "lane":
        return env["lane"]
    if tag == "d":
        return env[f"d{e[1]}"]
    if tag == "sel":
        return eval_expr(e[2], env) if eval_cond(e[1], env) else eval_expr(e[3], env)
    a, b = eval_expr(e[1], env), eval_expr(e[2], env)
    if tag == "+":
        return a + b
    if tag == "-":
        return a - b
    if tag == "*":
        return a * b
    if tag in ("//", "%"):
        if b == 0:
            raise _Div0
        return a // b if tag == "//" else a % b
    if tag == "min":
        return min(a, b)
    if tag == "max":
        return max(a, b)
    raise ValueError(e)


def eval_cond(c, env: dict) -> bool:
    if c[0] == "and":
        return eval_cond(c[1], env) and eval_cond(c[2], env)
    a, b = eval_expr(c[1], env), eval_expr(c[2], env)
    return {"<": a < b, "<=": a <= b, "==": a == b, "!=": a != b, ">=": a >= b, ">": a > b}[c[0]]


def loops_used(e, out: set | None = None) -> set:
    """Loop depths an expression uses directly (not through data values)."""
    out = set() if out is None else out
    if e[0] == "i":
        out.add(e[1])
    elif e[0] == "sel":
        for x in (e[1][1], e[1][2], e[2], e[3]):
            loops_used(x, out)
    elif e[0] not in ("c", "s", "p", "lane", "d"):
        loops_used(e[1], out)
        loops_used(e[2], out)
    return out


@dataclass
class Event:
    kind: str  # load | store
    line: int
    tensor: str
    elem: tuple
    pid: int
    lane: int | None
    region: int | None  # line of the lanes region
    epoch: int  # lanes barriers passed within the region
    phase: int
    seq: int
    inst: tuple


@dataclass
class Outcome:
    """What one concrete run shows: per obligation key, whether the property fails."""

    bad: dict = field(default_factory=lambda: defaultdict(bool))
    reached: set = field(default_factory=set)  # keys whose statement ran at least once
    tainted: bool = False
    skipped: str = ""  # why the point could not be run (division by zero in an extent, ...)


class _Prog:
    def __init__(self, desc: KernelDesc, lines: dict, sizes: dict, shapes: dict, idx, out: Outcome):
        self.desc, self.lines, self.sizes, self.shapes, self.idx = desc, lines, sizes, shapes, idx
        self.out = out
        self.events: list[Event] = []
        self.barriers: dict[int, dict] = defaultdict(lambda: defaultdict(int))
        self.seq = 0
        self.oob_value = _least_value(desc, sizes)

    def run(self, pid: int, env: dict) -> None:
        self.pid, self.phase = pid, 0
        self.lane, self.region, self.epoch = None, None, 0
        self.alive = True
        self._body(self.desc.body, (), env, 0)

    def _touch(self, kind, line, tensor, index, mask, env, inst) -> None:
        shape = self.shapes[tensor]
        ranges, tdims = [], []
        for d in index:
            if d[0] == "pt":
                ranges.append([eval_expr(d[1], env)])
            else:
                s, t = (eval_expr(d[1], env), d[2]) if d[0] == "ds" else (0, d[1])
                tdims.append(len(ranges))
                ranges.append(range(s, s + t))
        if mask is not None:
            j, cmp, bound = mask
            k = tdims[j]
            b = eval_expr(bound, env)
            ranges[k] = [v for v in ranges[k] if eval_cond((cmp, ("c", v), ("c", b)), {})]
        self.out.reached.add(("bounds", line))
        for el in itertools.product(*ranges):
            if not all(0 <= v < n for v, n in zip(el, shape)):
                self.out.bad[("bounds", line)] = True
                continue
            self.seq += 1
            self.events.append(
                Event(
                    kind,
                    line,
                    tensor,
                    el,
                    self.pid,
                    self.lane,
                    self.region,
                    self.epoch,
                    self.phase,
                    self.seq,
                    inst,
                )
            )

    def _body(self, stmts, path, env, depth) -> None:
        for n, s in enumerate(stmts):
            if not self.alive:
                return
            here = (*path, n)
            line = self.lines[here]
            tag = s[0]
            if tag in ("load", "store"):
                _, t, index, mask = s
                used = set()
                for d in index:
                    if d[0] != "all":
                        loops_used(d[1], used)
                inst = (line, self.pid, self.lane, tuple(env[f"i{k}"] for k in sorted(used)))
                self._touch(tag, line, t, index, mask, env, inst)
            elif tag == "data":
                _, k, index = s
                e = eval_expr(index[0][1], env)
                self.out.reached.add(("bounds", line))
                if 0 <= e < len(self.idx):
                    env[f"d{k}"] = int(self.idx[e])
                else:  # static reasoning assumes the declared range even here: take its least value
                    self.out.bad[("bounds", line)] = True
                    self.out.tainted = True
                    env[f"d{k}"] = self.oob_value
            elif tag in ("loop", "wloop"):
                _, lo, hi, body = s
                a, b = eval_expr(lo, env), eval_expr(hi, env)
                for i in range(a, b):
                    self._body(body, here, {**env, f"i{depth + 1}": i}, depth + 1)
                    if not self.alive:
                        return
            elif tag == "scan":
                _, lo, hi, step, body = s
                for i in range(lo, hi, step):
                    self._body(body, here, {**env, f"i{depth + 1}": i}, depth + 1)
                    if not self.alive:
                        return
            elif tag == "when":
                _, cond, body = s
                if eval_cond(cond, env):
                    self._body(body, here, dict(env), depth + 1)
            elif tag == "barrier":
                who = (self.pid, self.lane)
                self.barriers[line][who] += 1
                if s[1] in ("grid", "launch"):
                    self.phase += 1
                else:
                    self.epoch += 1
            elif tag == "exit":
                if eval_cond(s[1], env):
                    self.alive = False
            elif tag == "lanes":
                _, nl, body = s
                alive = True
                for ln in range(nl):
                    self.lane, self.region, self.epoch, self.alive = ln, line, 0, True
                    self._body(body, here, {**env, "lane": ln}, depth)
                    alive = alive and self.alive
                self.lane, self.region, self.epoch, self.alive = None, None, 0, alive
            elif tag == "halve":
                _, nl, t, index = s
                lline, pline = self.lines[(*here, "load")], self.lines[(*here, "part")]
                for ln in range(nl):
                    self.lane, self.region, self.epoch = ln, line, 0
                    inst = (lline, self.pid, ln, ())
                    self._touch("load", lline, "x", index, None, {**env, "lane": ln}, inst)
                self.lane, self.region, self.epoch = None, None, 0
                self.out.reached.add(("split", pline))
                if t % nl:
                    self.out.bad[("split", pline)] = True
            else:
                raise ValueError(s)


def _least_value(desc: KernelDesc, sizes: dict) -> int:
    from .. import shapes as S

    t = next((t for t in desc.tensors if t.role == "index"), None)
    if t is None:
        return 0
    f = S.parse_formula(t.values)
    return next((v for v in range(-8, 64) if f.evaluate({**sizes, "v": v})), 0)


def _grid_points(extents: list[int]):
    return itertools.product(*(range(e) for e in extents))


def shapes_at(desc: KernelDesc, sizes: dict) -> dict | None:
    """Concrete tensor shapes at ``sizes`` (``None`` if an extent is negative or undefined)."""
    from .. import shapes as S

    out = {}
    for t in desc.tensors:
        try:
            dims = tuple(S.parse_expr(d).evaluate(sizes) for d in t.shape)
        except ZeroDivisionError:
            return None
        if any(d < 0 for d in dims):
            return None
        out[t.name] = dims
    return out


def run(desc: KernelDesc, lines: dict, sizes: dict, idx, oob_value: int | None = None) -> Outcome:
    """Execute ``desc`` at ``sizes`` with index tensor contents ``idx`` (a flat list).

    ``oob_value``: what a read of the index tensor out of its bounds gives (by default the
    least value of the declared range)."""
    from .. import shapes as S

    out = Outcome()
    shp = shapes_at(desc, sizes)
    try:
        extents = [S.parse_expr(g).evaluate(sizes) for g in desc.grid]
    except ZeroDivisionError:
        out.skipped = "division by zero in a grid extent"
        return out
    if shp is None or any(e < 0 for e in extents):
        out.skipped = "a negative extent"
        return out
    prog = _Prog(desc, lines, sizes, shp, idx, out)
    if oob_value is not None:
        prog.oob_value = oob_value
    env0 = dict(sizes)
    try:
        for pid, point in enumerate(_grid_points(extents)):
            env = {**env0, **{f"p{k}": v for k, v in enumerate(point)}}
            prog.run(pid, env)
    except _Div0:
        out.skipped = "division by zero"
        return out
    _analyse(desc, prog, shp, out, len(list(_grid_points(extents))))
    return out


def _analyse(desc: KernelDesc, prog: _Prog, shp: dict, out: Outcome, nprog: int) -> None:
    ev = prog.events
    by_el: dict = defaultdict(list)
    for e in ev:
        by_el[(e.tensor, e.elem)].append(e)
    roles = {t.name: t.role for t in desc.tensors}
    for name, role in roles.items():
        if role == "output":
            written = {e.elem for e in ev if e.tensor == name and e.kind == "store"}
            out.reached.add(("exists", name))
            if len(written) < _count(shp[name]):
                out.bad[("exists", name)] = True
    for (tensor, _el), es in by_el.items():
        stores = [e for e in es if e.kind == "store"]
        loads = [e for e in es if e.kind == "load"]
        if stores and roles[tensor] == "output":
            _unique(stores, out)
        if stores:
            _races(stores, loads, out)
        if roles[tensor] == "scratch":
            first_phase = min((w.phase for w in stores), default=None)
            first_seq: dict = {}
            for w in stores:
                k = (w.phase, w.pid)
                first_seq[k] = min(first_seq.get(k, w.seq), w.seq)
            for r in loads:
                out.reached.add(("read", r.line))
                seen = (first_phase is not None and first_phase < r.phase) or first_seq.get(
                    (r.phase, r.pid), r.seq
                ) < r.seq
                if not seen:
                    out.bad[("read", r.line)] = True
    for line, counts in prog.barriers.items():
        out.reached.add(("barrier", line))
        scope = _scope_of(desc, prog.lines, line)
        if scope == "grid":
            per = [counts.get((p, None), 0) for p in range(nprog)]
            if len(set(per)) > 1:
                out.bad[("barrier", line)] = True
        elif scope == "lanes":
            by_pid = defaultdict(dict)
            for (p, ln), c in counts.items():
                by_pid[p][ln] = c
            n = _lanes_of(desc, prog.lines, line)
            for d in by_pid.values():
                if len({d.get(ln, 0) for ln in range(n)}) > 1:
                    out.bad[("barrier", line)] = True


def _unique(stores: list[Event], out: Outcome) -> None:
    """Store line L double-writes the element: two instances at L, or any store after L."""
    insts: dict = defaultdict(set)
    for e in stores:
        insts[e.line].add(e.inst)
    lines = sorted(insts)
    for k, ln in enumerate(lines):
        out.reached.add(("unique", ln))
        if len(insts[ln]) > 1 or k + 1 < len(lines):
            out.bad[("unique", ln)] = True


def _races(stores: list[Event], loads: list[Event], out: Outcome) -> None:
    """Store line L races: in one phase, another program (or another lane of one lanes region,
    between the same lanes barriers) writes the element at a line >= L or reads it anywhere."""
    by_phase: dict = defaultdict(lambda: (defaultdict(list), []))
    for e in stores:
        by_phase[e.phase][0][e.line].append(e)
    for e in loads:
        by_phase[e.phase][1].append(e)
    for ln in {e.line for e in stores}:
        out.reached.add(("race", ln))
    for _phase, (st, lds) in by_phase.items():
        lines = sorted(st)
        for k, ln in enumerate(lines):
            a_set = st[ln]
            b_set = [e for later in lines[k:] for e in st[later]] + lds
            if _concurrent_pair(a_set, b_set):
                out.bad[("race", ln)] = True


def _concurrent_pair(a_set: list[Event], b_set: list[Event]) -> bool:
    pa, pb = {e.pid for e in a_set}, {e.pid for e in b_set}
    if pa and pb and len(pa | pb) > 1:
        return True
    la, lb = defaultdict(set), defaultdict(set)
    for e in a_set:
        if e.region is not None:
            la[(e.pid, e.region, e.epoch)].add(e.lane)
    for e in b_set:
        if e.region is not None:
            lb[(e.pid, e.region, e.epoch)].add(e.lane)
    return any(k in lb and len(v | lb[k]) > 1 for k, v in la.items())


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _walk(stmts, path=()):
    for n, s in enumerate(stmts):
        yield (*path, n), s
        if s[0] in ("loop", "wloop"):
            yield from _walk(s[3], (*path, n))
        elif s[0] == "scan":
            yield from _walk(s[4], (*path, n))
        elif s[0] in ("when", "lanes"):
            yield from _walk(s[2], (*path, n))


def _stmt_at(desc, lines, line):
    for p, s in _walk(desc.body):
        if lines.get(p) == line:
            return p, s
    return None, None


def _scope_of(desc, lines, line):
    _, s = _stmt_at(desc, lines, line)
    return s[1] if s is not None and s[0] == "barrier" else None


def _lanes_of(desc, lines, line) -> int:
    p, _ = _stmt_at(desc, lines, line)
    for k in range(len(p) - 1, 0, -1):
        for q, s in _walk(desc.body):
            if q == p[:k] and s[0] == "lanes":
                return s[1]
    return 1
