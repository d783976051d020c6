"""Ring steps: random one-direction ring/mesh kernels against a simulation of their traffic.

A :class:`RingDesc` fixes the parameters of the usual ring kernel — each rank
folds its own shard, then ``fori_loop(lo, hi)`` steps of ``sendrecv(cur,
to=..., frm=..., send=..., recv=...)`` each followed by ``fold(cur, when=...)``
(or, with ``fold_first``, preceded by it: a fold of the raw carry, what arrived
at the step before) — and :func:`simulate` runs it for a concrete rank count,
tracking the origin of every chunk.  Conditions may mention the step ``i``:
a rank that skips a receive at one step forwards poison at the next.

* ``edge-send`` / ``edge-recv``: a send or a receive leaves the open mesh
  (``to`` or ``frm`` outside ``[0, n)``);
* ``send`` / ``recv``: a send whose destination does not receive from the
  sender at that step, or a receive whose source does not send to it;
* ``exists``: some rank never folds some chunk ``c < n``;
* ``unique``: some rank folds one chunk twice;
* ``chunk``: a fold of a value that came from nobody (poisoned) or from no rank.

:func:`differential_ring` matches the ring obligations by their statements and
reports a ``proved`` one that some ``n <= box`` violates as unsound.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st

from ._check import Problem, Report

__all__ = ["RingDesc", "differential_ring", "render_ring", "ring_kernels", "simulate"]


@dataclass(frozen=True)
class RingDesc:
    topology: str  # ring | mesh
    to: str  # python expressions over r, n
    frm: str
    send: str
    recv: str
    when: str
    lo: str
    hi: str
    fold_own: bool = True
    min_n: int = 1
    box: int = 6
    fold_first: bool = False  # fold the carry before the step's sendrecv


def render_ring(d: RingDesc, name: str = "ring_kernel") -> str:
    assume = [f"n <= {d.box}"] + ([f"n >= {d.min_n}"] if d.min_n > 1 else [])
    acc = "tp.fold(own)" if d.fold_own else "jnp.zeros(4)"
    move = f"        cur = tp.sendrecv(cur, to={d.to}, frm={d.frm}, send={d.send}, recv={d.recv})"
    fold = f"acc + tp.fold(cur, when={d.when})"
    body = (
        f"        acc = {fold}\n{move}\n        return cur, acc"
        if d.fold_first
        else f"{move}\n        return cur, {fold}"
    )
    return f'''import jax.numpy as jnp
from jax import lax

import tileproof.spec as tp


@tp.kernel(grid={{"one": 1}}, ranks=tp.Ranks(size="n", topology="{d.topology}", name="r"),
           assume={assume!r},
           tensors=dict(x=tp.Input(("n", 4), sharded=True), y=tp.Output(("n", 4))))
def {name}(x, y):
    r, n = tp.rank_id(), tp.num_ranks()
    own = tp.load(x, (r, slice(None)))
    acc = {acc}

    def step(i, carry):
        cur, acc = carry
{body}

    _, acc = lax.fori_loop({d.lo}, {d.hi}, step, (own, acc))
    tp.store(y, (r, slice(None)), acc)
'''


def _ev(expr: str, r: int, n: int, i: int = 0):
    return eval(expr, {"True": True, "False": False}, {"r": r, "n": n, "i": i})  # ours only


def simulate(d: RingDesc, n: int) -> set[str]:
    """The ring properties violated at rank count ``n``."""
    bad: set[str] = set()
    ring = d.topology == "ring"
    cur: list = list(range(n))
    folds = [Counter() for _ in range(n)]
    if d.fold_own:
        for r in range(n):
            folds[r][r] += 1

    def fold_all(i):
        for r in range(n):
            if _ev(d.when, r, n, i):
                if cur[r] is None or not 0 <= cur[r] < n:
                    bad.add("chunk")
                else:
                    folds[r][cur[r]] += 1

    for i in range(_ev(d.lo, 0, n), _ev(d.hi, 0, n)):
        if d.fold_first:
            fold_all(i)
        to = [_ev(d.to, r, n, i) for r in range(n)]
        frm = [_ev(d.frm, r, n, i) for r in range(n)]
        if ring:
            to, frm = [t % n for t in to], [f % n for f in frm]
        snd = [bool(_ev(d.send, r, n, i)) for r in range(n)]
        rcv = [bool(_ev(d.recv, r, n, i)) for r in range(n)]
        new = [None] * n
        for r in range(n):
            if snd[r]:
                t = to[r]
                if not 0 <= t < n:
                    bad.add("edge-send")
                elif not (rcv[t] and frm[t] == r):  # off the edge is edge-send's
                    bad.add("send")
            if rcv[r]:
                s = frm[r]
                if not 0 <= s < n:
                    bad.add("edge-recv")
                if 0 <= s < n and not (snd[s] and to[s] == r):
                    bad.add("recv")  # off the edge is edge-recv's
                elif 0 <= s < n:
                    new[r] = cur[s]
        cur = new
        if not d.fold_first:
            fold_all(i)
    for r in range(n):
        if any(folds[r][c] == 0 for c in range(n)):
            bad.add("exists")
        if any(v > 1 for v in folds[r].values()):
            bad.add("unique")
    return bad


def _key(msg: str) -> str | None:
    if msg.startswith("every rank folds every chunk"):
        return "exists"
    if msg.startswith("no rank folds a chunk twice"):
        return "unique"
    if "folds only chunks of existing ranks" in msg:
        return "chunk"
    if "stay on the open mesh" in msg:
        return "edge-send" if msg.startswith("send") else "edge-recv"
    if msg.startswith("every send"):
        return "send"
    if msg.startswith("every receive"):
        return "recv"
    return None


_DIR: list[str] = []


def _build(d: RingDesc):
    src = render_ring(d)
    if not _DIR:
        _DIR.append(tempfile.mkdtemp(prefix="tileproof_fuzz_ring_"))
    h = hashlib.sha1(src.encode()).hexdigest()[:16]
    path = os.path.join(_DIR[0], f"ring_{h}.py")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(src)
    modname = f"_tileproof_fuzz_ring_{h}"
    if modname not in sys.modules:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[modname] = mod
    return sys.modules[modname].ring_kernel, src


def differential_ring(d: RingDesc) -> Report:
    from ..lowering import lower
    from ..verify.static import check_static

    kern, src = _build(d)
    rep = Report(d, src)  # type: ignore[arg-type]
    try:
        rep.obligations = [o for o in check_static(lower(kern)) if o.kind == "ring"]
    except Exception as e:  # a crash of the verifier on a well-formed spec is a finding too
        rep.problems.append(Problem("error", None, f"{type(e).__name__}: {e}"))
        return rep
    seen = {n: simulate(d, n) for n in range(d.min_n, d.box + 1)}
    rep.points = len(seen)
    for o in rep.obligations:
        k = _key(o.message)
        if k == "chunk" and "fold(cur" not in src.splitlines()[o.location.line - 1]:
            k = "chunk-own"  # the fold of the rank's own shard: never of a missing rank
        if o.status == "proved" and k is not None:
            rep.judged += 1
            broken = [n for n, b in seen.items() if k in b]
            if broken:
                rep.problems.append(
                    Problem(
                        "unsound",
                        ("ring", k),
                        f"ring proved ({o.message}) but the simulation violates it",
                        {"n": broken[0]},
                    )
                )
        elif o.status == "violated" and o.counterexample and "n" in o.counterexample:
            rep.judged += 1
            n = o.counterexample["n"]
            if d.min_n <= n <= 16 and not simulate(d, n):
                rep.problems.append(
                    Problem(
                        "irreproducible",
                        ("ring", None),
                        f"ring violated ({o.message}) but the simulation shows nothing",
                        {"n": n},
                    )
                )
    return rep


@st.composite
def ring_kernels(draw, box: int = 6, perturb: bool = True) -> RingDesc:
    """The one-direction ring or mesh pattern; ``perturb``: change one of to/frm/send/recv."""
    topo = draw(st.sampled_from(["ring", "mesh"]))
    fwd = draw(st.booleans())
    if topo == "ring":
        to, frm = ("(r + 1) % n", "(r - 1) % n") if fwd else ("(r - 1) % n", "(r + 1) % n")
        send = recv = "True"
    else:
        to, frm = ("r + 1", "r - 1") if fwd else ("r - 1", "r + 1")
        send, recv = ("r < n - 1", "r > 0") if fwd else ("r > 0", "r < n - 1")
    if perturb and draw(st.integers(0, 2)) == 0:  # a perturbation of one parameter
        which = draw(st.sampled_from(["to", "frm", "send", "recv"]))
        alt = draw(
            st.sampled_from(
                ["r + 1", "r - 1", "(r + 1) % n", "(r - 1) % n", "(r + 2) % n"]
                if which in ("to", "frm")
                else [
                    "True",
                    "r > 0",
                    "r < n - 1",
                    "r >= 1",
                    "r + 1 < n",
                    "n > 1",
                    "r != i",
                    "r + i < n",
                    "i < n - 1",
                    "r - i + 1 >= 0",
                ]
            )
        )
        to, frm, send, recv = [
            alt if w == which else v
            for w, v in zip(("to", "frm", "send", "recv"), (to, frm, send, recv))
        ]
    when = draw(st.sampled_from(["True", recv, recv, "r > 0", "n > 1"]))
    lo = draw(st.sampled_from(["1", "1", "0"]))
    hi = draw(st.sampled_from(["n", "n", "n - 1", "n + 1"]))
    fold_first = draw(st.sampled_from([False, False, True]))
    return RingDesc(
        topo,
        to,
        frm,
        send,
        recv,
        when,
        lo,
        hi,
        draw(st.booleans()) or lo == "0",
        draw(st.sampled_from([1, 1, 2])),
        box,
        fold_first,
    )
