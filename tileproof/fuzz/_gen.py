"""Hypothesis strategies for random small kernels (:class:`KernelDesc`).

The generator draws near-correct kernels on purpose: a tile size ``t``, a grid
that tiles a size by ``t`` (``cdiv(N, t)`` or the tail-dropping ``N // t``),
starts ``t * p + ...`` and masks against the tensor's extent — then perturbs
them (off by one, a floor-divided or modulo program id, a data value, a loop
index, a lane id, a missing mask), so the verdicts are a mix of ``proved``
and ``violated`` and the boundaries between them get exercised.

``kernels(constructs=...)`` restricts the constructs drawn (names in
:data:`CONSTRUCTS`), so a test can leave out one whose fix is in flight.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ._desc import KernelDesc, TensorDesc

__all__ = ["CONSTRUCTS", "kernels"]

CONSTRUCTS = frozenset(
    {
        "grid2",
        "grid3",
        "mask",
        "floordiv",
        "mod",
        "minmax",
        "data",
        "loop",
        "dataloop",
        "when",
        "barrier",
        "exit",
        "lanes",
        "lanes_barrier",
        "halve",
        "scratch",
        "point",
        "twod",
        "while",
        "select",
        "negdiv",
        "barrier_when",
        "scan",
    }
)

N, M = ("s", "N"), ("s", "M")


def c(k):
    return ("c", k)


# tensor extents: text (for the spec) and expression (for masks)
_DIMS = {
    "N": N,
    "M": M,
    "N + 1": ("+", N, c(1)),
    "2*N": ("*", c(2), N),
    "N - 1": ("-", N, c(1)),
    "4": c(4),
    "6": c(6),
    "N*M": ("*", N, M),
}


@st.composite
def kernels(draw, constructs=CONSTRUCTS, box: int = 6) -> KernelDesc:
    """A random kernel: half of them a correct tiling skeleton with a few extra statements."""
    if draw(st.booleans()):
        return draw(skeletons(constructs, box))
    return draw(free_kernels(constructs, box))


def _cdiv(e, t: int):
    return e if t == 1 else ("//", ("+", e, c(t - 1)), c(t))


@st.composite
def skeletons(draw, constructs=CONSTRUCTS, box: int = 6) -> KernelDesc:
    """``y[tile p] = f(x[tile p])`` over ``cdiv(N, t)`` programs, masked, in one of several
    correct shapes (a loop accumulating into one tile, lanes sharing the tile, a scratch
    round trip through a grid barrier to the neighbour's tile), plus a few random statements.
    Correct as drawn except where a drawn choice says otherwise (no barrier, no mask)."""
    cs = set(constructs)
    d = draw
    t = d(st.sampled_from([1, 2, 3, 4]))
    assume = [f"N <= {box}", *d(st.lists(st.sampled_from(["N % 2 == 0", "N >= 2"]), max_size=1))]
    p = ("p", 0)
    start = ("*", c(t), p)
    tile = (("ds", start, t),)
    masked = "mask" not in cs or d(st.integers(0, 4)) > 0
    m = (0, "<", N) if masked else None
    tensors = [TensorDesc("x", "input", ("N",))]
    body = [("load", "x", tile, m)]
    scratch = "scratch" in cs and "barrier" in cs and d(st.booleans())
    if scratch:
        tensors.append(TensorDesc("s", "scratch", ("N",)))
        body.append(("store", "s", tile, m))
        if d(st.integers(0, 3)):
            body.append(("barrier", "grid"))
        nxt = ("*", c(t), ("%", ("+", p, c(d(st.sampled_from([1, 0])))), _cdiv(N, t)))
        body.append(("load", "s", (("ds", nxt, t),), m))
    tensors.append(TensorDesc("y", "output", ("N",)))
    shape = d(st.sampled_from(["plain", "loop", "lanes", "when"]))
    store = ("store", "y", tile, m)
    if shape == "loop" and "loop" in cs:
        body.append(("loop", c(0), d(st.sampled_from([c(2), N])), (store,)))
    elif shape == "lanes" and "lanes" in cs and t in (2, 4):
        nl = d(st.sampled_from([2] if t == 2 else [2, 4]))
        part = t // nl
        ls = ("+", start, ("*", c(part), ("lane",)))
        body.append(
            ("lanes", nl, (("store", "y", (("ds", ls, part),), (0, "<", N) if masked else None),))
        )
    elif shape == "when" and "when" in cs:
        body.append(("when", (">=", p, c(0)), (store,)))
    else:
        body.append(store)
    ctx = _Ctx(
        d,
        cs - {"barrier", "exit", "lanes", "halve"},
        t,
        1,
        {tn.name: tn.shape for tn in tensors},
        False,
        False,
        scratch,
        list(_DIMS),
    )
    for _ in range(d(st.integers(0, 2))):
        stmt = ctx.stmt(0, True, False)
        if not (stmt[0] == "store" or any(x[0] == "store" for x in _flat([stmt]))):
            body.insert(d(st.integers(0, len(body))), stmt)
    if "exit" in cs and d(st.integers(0, 5)) == 0:
        body.insert(d(st.integers(0, len(body))), ("exit", ctx.cond()))
    return KernelDesc(("N",), tuple(assume), (f"cdiv(N, {t})",), tuple(tensors), tuple(body), box)


@st.composite
def free_kernels(draw, constructs=CONSTRUCTS, box: int = 6) -> KernelDesc:
    """Kernels assembled statement by statement from the constructs (mostly defective)."""
    cs = set(constructs)
    two = draw(st.booleans())
    sizes = ("N", "M") if two else ("N",)
    assume = [f"{s} <= {box}" for s in sizes]
    extra = ["N % 2 == 0", "N >= 2", "N % 3 == 0"] + (["M <= N", "M % 2 == 0"] if two else [])
    assume += draw(st.lists(st.sampled_from(extra), max_size=1, unique=True))
    size_dims = [d for d in _DIMS if "M" not in d or two]

    t = draw(st.sampled_from([1, 2, 3, 4]))
    base = draw(st.sampled_from(["N", "M"] if two else ["N"]))
    g0 = draw(
        st.sampled_from(
            [base, f"cdiv({base}, {t})", f"{base} // {t}", f"cdiv({base}, {t})", "2", f"{base} - 1"]
        )
    )
    grid = [g0]
    naxes = (
        1
        + draw(st.integers(0, 1 if "grid2" in cs else 0))
        + (draw(st.integers(0, 1)) if "grid3" in cs and len(cs) > 0 else 0)
    )
    for _ in range(naxes - 1):
        grid.append(draw(st.sampled_from(["2", "1", "N", "cdiv(N, 2)"] + (["M"] if two else []))))

    xdim = draw(st.sampled_from([base, base, "N + 1", "2*N", "4"] + (["N*M"] if two else [])))
    ydim = draw(st.sampled_from([base, base, base, "N + 1", "N - 1", "2*N", "4"]))
    x2 = ("twod" in cs) and draw(st.booleans())
    tensors = [TensorDesc("x", "input", (xdim, "4") if x2 else (xdim,))]
    has_idx = ("data" in cs) and draw(st.booleans())
    if has_idx:
        n_idx = draw(st.sampled_from(["N", "4", "N + 1"]))
        vals = draw(
            st.sampled_from(
                [
                    "0 <= v < N",
                    "0 <= v <= N",
                    "1 <= v <= N",
                    "0 <= v < 2",
                    f"0 <= v < cdiv(N, {t})",
                    "0 <= v <= 4 - 1",
                ]
            )
        )
        tensors.append(TensorDesc("idx", "index", (n_idx,), vals))
    has_s = ("scratch" in cs) and draw(st.booleans())
    if has_s:
        tensors.append(TensorDesc("s", "scratch", (draw(st.sampled_from([base, "N + 1", "4"])),)))
    tensors.append(TensorDesc("y", "output", (ydim,)))
    shapes = {td.name: td.shape for td in tensors}
    ctx = _Ctx(draw, cs, t, len(grid), shapes, two, has_idx, has_s, size_dims)
    body = ctx.block(depth=0, top=True, n_max=4)
    # make sure y is stored at least once (mostly), with the canonical tile
    if not any(s[0] == "store" and s[1] == "y" for s in _flat(body)) and draw(st.booleans()):
        body.append(ctx.access("store", "y"))
    return KernelDesc(tuple(sizes), tuple(assume), tuple(grid), tuple(tensors), tuple(body), box)


def _flat(stmts):
    for s in stmts:
        yield s
        if s[0] in ("loop", "wloop"):
            yield from _flat(s[3])
        elif s[0] == "scan":
            yield from _flat(s[4])
        elif s[0] in ("when", "lanes"):
            yield from _flat(s[2])


class _Ctx:
    def __init__(self, draw, cs, t, naxes, shapes, two, has_idx, has_s, size_dims):
        self.draw, self.cs, self.t, self.naxes = draw, cs, t, naxes
        self.shapes, self.two, self.has_idx, self.has_s = shapes, two, has_idx, has_s
        self.loops: list[int] = []  # loop depths in scope
        self.data: list[int] = []  # data vars in scope
        self.ndata = 0
        self.lane = None  # lane count in scope
        self.when_top = False  # drawing the body of a top-level when
        self.phase_ok = True

    # -- expressions
    def pid(self):
        return ("p", self.draw(st.integers(0, self.naxes - 1)))

    def atom(self):
        d = self.draw
        opts = ["pid"]
        if self.loops:
            opts += ["loop", "loop"]
        if self.data:
            opts += ["data", "data"]
        if self.lane is not None:
            opts += ["lane", "lane"]
        kind = d(st.sampled_from(opts))
        if kind == "pid":
            e = self.pid()
        elif kind == "loop":
            e = ("i", d(st.sampled_from(self.loops)))
        elif kind == "data":
            e = ("d", d(st.sampled_from(self.data)))
        else:
            e = ("lane",)
        if "negdiv" in self.cs and d(st.integers(0, 7)) == 0:  # floor of a negative operand
            e = (d(st.sampled_from(["//", "%"])), ("-", e, c(1)), c(d(st.sampled_from([2, 3]))))
        elif "floordiv" in self.cs and d(st.integers(0, 5)) == 0:
            e = ("//", e, c(d(st.sampled_from([2, 3]))))
        elif "mod" in self.cs and d(st.integers(0, 5)) == 0:
            e = ("%", e, c(d(st.sampled_from([2, 3]))))
        return e

    def start(self, t: int):
        """``t * atom (+ t * atom) (+ off)``, possibly min/max-clamped."""
        d = self.draw
        e = ("*", c(d(st.sampled_from([t, t, 1, 2]))), self.atom())
        if d(st.integers(0, 3)) == 0:
            e = ("+", e, ("*", c(d(st.sampled_from([t, 1]))), self.atom()))
        off = d(st.sampled_from([0, 0, 0, 0, 1, -1]))
        if off:
            e = ("+", e, c(off))
        if "minmax" in self.cs and d(st.integers(0, 7)) == 0:
            e = ("min", e, ("-", N, c(t)))
        if "minmax" in self.cs and d(st.integers(0, 9)) == 0:
            e = ("max", e, c(0))
        if "select" in self.cs and d(st.integers(0, 9)) == 0:
            e = ("sel", self.cond(), e, d(st.sampled_from([c(0), ("*", c(t), self.atom())])))
        return e

    def bound(self, dimtext: str):
        e = _DIMS.get(dimtext, N)
        off = self.draw(st.sampled_from([0, 0, 0, 1, -1]))
        return ("+", e, c(off)) if off else e

    def cond(self):
        d = self.draw
        opts = [
            ("==", self.pid(), c(0)),
            ("<", self.pid(), ("-", N, c(1))),
            ("!=", self.pid(), c(1)),
            (">", N, c(2)),
            ("==", ("%", self.pid(), c(2)), c(0)),
        ]
        if self.loops:
            opts.append(("<", ("i", self.loops[-1]), ("-", N, c(1))))
        if self.data:
            opts.append((">", ("d", self.data[-1]), c(0)))
        if self.lane is not None:
            opts.append(("==", ("lane",), c(0)))
        return d(st.sampled_from(opts))

    # -- accesses
    def access(self, kind: str, tensor: str):
        d = self.draw
        shape = self.shapes[tensor]
        t = self.t if d(st.integers(0, 3)) else d(st.sampled_from([1, 2, 3, 4]))
        index = []
        for k, dim in enumerate(shape):
            if k > 0 and dim.isdigit() and d(st.booleans()):
                index.append(("all", int(dim)))
            elif "point" in self.cs and d(st.integers(0, 3)) == 0:
                index.append(("pt", self.start(1)))
            else:
                index.append(("ds", self.start(t), t))
        tiles = [(k, i) for k, i in enumerate(index) if i[0] == "ds"]
        mask = None
        if tiles and "mask" in self.cs and d(st.booleans()):
            j = d(st.integers(0, len([i for i in index if i[0] != "pt"]) - 1))
            k = [n for n, i in enumerate(index) if i[0] != "pt"][j]
            if index[k][0] == "ds":
                mask = (j, d(st.sampled_from(["<", "<", "<="])), self.bound(shape[k]))
        return (kind, tensor, tuple(index), mask)

    def data_stmt(self):
        k = self.ndata
        self.ndata += 1
        e = self.start(1) if self.draw(st.booleans()) else self.atom()
        return ("data", k, (("pt", e),)), k

    # -- statements
    def block(self, depth: int, top: bool, n_max: int = 3, in_lanes: bool = False) -> list:
        d = self.draw
        n = d(st.integers(1, n_max))
        out = []
        saved = list(self.data)
        for _ in range(n):
            out.append(self.stmt(depth, top, in_lanes))
        self.data = saved
        return out

    def stmt(self, depth: int, top: bool, in_lanes: bool):
        d = self.draw
        cs = self.cs
        opts = ["store_y", "store_y", "load_x"]
        if self.has_s:
            opts += ["store_s", "load_s"]
        if self.has_idx:
            opts += ["data"]
        if depth < 2:
            if "loop" in cs:
                opts += ["loop"]
            if "when" in cs:
                opts += ["when"]
        if top and not in_lanes:
            if "barrier" in cs:
                opts += ["barrier"]
            if "exit" in cs:
                opts += ["exit"]
            if "lanes" in cs:
                opts += ["lanes"]
            if "halve" in cs:
                opts += ["halve"]
        if in_lanes and "lanes_barrier" in cs:
            opts += ["lbarrier"]
        if depth == 1 and self.when_top and "barrier_when" in cs:
            opts += ["barrier"]
        kind = d(st.sampled_from(opts))
        if kind == "store_y":
            return self.access("store", "y")
        if kind == "load_x":
            return self.access("load", "x")
        if kind == "store_s":
            return self.access("store", "s")
        if kind == "load_s":
            return self.access("load", "s")
        if kind == "data":
            s, k = self.data_stmt()
            self.data.append(k)
            return s
        if kind == "loop" and "scan" in cs and d(st.integers(0, 3)) == 0:
            lo, step = d(st.sampled_from([0, 0, 1])), d(st.sampled_from([1, 1, 2]))
            hi = d(st.sampled_from([2, 3, 4, 6]))
            self.loops.append(depth + 1)
            body = self.block(depth + 1, False, 2, in_lanes)
            self.loops.pop()
            return ("scan", lo, hi, step, tuple(body))
        if kind == "loop":
            if "while" in cs and d(st.booleans()):
                kind = "wloop"
            lo = c(d(st.sampled_from([0, 0, 1])))
            his = [N, c(2), ("//", ("+", N, c(1)), c(2)), ("-", N, c(1))]
            if self.data and "dataloop" in cs:
                his.append(("d", self.data[-1]))
            hi = d(st.sampled_from(his))
            self.loops.append(depth + 1)
            body = self.block(depth + 1, False, 2, in_lanes)
            self.loops.pop()
            return (kind, lo, hi, tuple(body))
        if kind == "when":
            cond = self.cond()
            self.when_top = top and not in_lanes
            body = tuple(self.block(depth + 1, False, 2, in_lanes))
            self.when_top = False
            return ("when", cond, body)
        if kind == "barrier":
            return ("barrier", "grid")
        if kind == "lbarrier":
            return ("barrier", "lanes")
        if kind == "exit":
            return ("exit", self.cond())
        if kind == "lanes":
            nl = d(st.sampled_from([2, 3]))
            self.lane = nl
            body = self.block(depth, True, 3, in_lanes=True)
            self.lane = None
            return ("lanes", nl, tuple(body))
        if kind == "halve":
            nl = d(st.sampled_from([2, 3]))
            t = d(st.sampled_from([2, 3, 4, 6]))
            index = (
                ("ds", self.start(t), t),
                *tuple(("all", int(k)) for k in self.shapes["x"][1:]),
            )
            return ("halve", nl, t, index)
        raise AssertionError(kind)
