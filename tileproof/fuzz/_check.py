"""Static verdicts against brute force: every size point of a small box, several index fillings.

:func:`differential` builds the kernel of a :class:`KernelDesc`, lowers it,
runs :func:`check_static`, then executes the description with the oracle
(:mod:`._oracle`) at every admissible size point with all sizes ``<= box`` and,
for the index tensor, its extreme fillings (all smallest, all largest) and
seeded random ones within the declared range.  Optionally the numeric
executor runs the same points and fillings too.

* **unsound**: an obligation ``proved`` whose key is violated by some run
  (oracle or executor) — a bug in the verifier;
* **irreproducible**: a ``violated`` obligation whose counterexample sizes
  show no violation of its key in any filling — a wrong counterexample;
* **executor disagreement**: the executor's flag differs from the oracle
  on a key both observe exactly (out-of-bounds accesses, unwritten outputs).

Obligations are matched to oracle keys through their kind, source line and
message (see :func:`key_of`); ones no key describes (shape, overflow, the
residency of a barrier) are counted but not judged.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .. import shapes as S
from ._desc import KernelDesc, build, render_lines
from ._oracle import run
from ._problem import Problem

__all__ = ["Problem", "Report", "differential", "key_of", "size_points"]


@dataclass
class Report:
    desc: KernelDesc
    source: str
    obligations: list = field(default_factory=list)
    judged: int = 0
    points: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def unsound(self) -> list[Problem]:
        return [p for p in self.problems if p.what == "unsound"]

    def text(self) -> str:
        lines = [str(p) for p in self.problems]
        obs = [
            f"  {o.kind:9} {o.status:9} L{o.location.line}: {o.message}" for o in self.obligations
        ]
        return "\n".join([*lines, "obligations:", *obs, "spec:", self.source])


def key_of(ob, tensors: dict) -> tuple | None:
    """The oracle key an obligation speaks about, or ``None``."""
    line, msg = ob.location.line, ob.message
    if ob.kind == "bounds":
        return ("bounds", line) if msg.startswith(("load ", "store ")) else None
    if ob.kind == "coverage":
        if "twice" in msg:
            return ("unique", line)
        if msg.startswith("load ") or "index" in ob.detail:
            return ("read", line)
        for name, role in tensors.items():
            if role == "output" and (f"output {name} " in msg or f"of {name} " in msg):
                return ("exists", name)
        return None
    if ob.kind == "race":
        return ("race", line)
    if ob.kind == "split":
        return ("split", line)
    if ob.kind == "barrier":
        return ("barrier", line) if "reach" in msg or "alike" in msg or "skip" in msg else None
    return None


def size_points(desc: KernelDesc) -> list[dict]:
    """Every admissible size point with all sizes in ``1..box``."""
    assume = [S.parse_formula(a) for a in desc.assume]
    out = []
    for vals in itertools.product(range(1, desc.box + 1), repeat=len(desc.sizes)):
        env = dict(zip(desc.sizes, vals))
        try:
            if all(f.evaluate(env) for f in assume):
                out.append(env)
        except ZeroDivisionError:
            pass
    return out


def fillings(
    desc: KernelDesc, sizes: dict, rng: random.Random, extra: int = 2
) -> list[list | None]:
    """Index tensor contents at ``sizes``: all-smallest, all-largest, alternating, random."""
    t = next((t for t in desc.tensors if t.role == "index"), None)
    if t is None:
        return [None]
    n = 1
    for d in t.shape:
        n *= S.parse_expr(d).evaluate(sizes)
    f = S.parse_formula(t.values)
    vals = [v for v in range(-8, 64) if f.evaluate({**sizes, "v": v})]
    if not vals or n < 0:
        return []
    lo, hi = min(vals), max(vals)
    out = [
        [lo] * n,
        [hi] * n,
        [(lo, hi)[k % 2] for k in range(n)],
        [(hi, lo)[k % 2] for k in range(n)],
    ]
    out += [[rng.choice(vals) for _ in range(n)] for _ in range(extra)]
    uniq = []
    for x in out:
        if x not in uniq:
            uniq.append(x)
    return uniq


def differential(
    desc: KernelDesc, *, executor: bool | int = False, seed: int = 0, timeout_ms: int = 20_000
) -> Report:
    """Check every static verdict of ``desc``'s kernel against brute-force runs (see module doc).

    ``executor``: also run the numeric executor (``True``: at every point; an
    int ``k``: at ``k`` points, the smallest and the counterexamples first).
    """
    from ..lowering import lower
    from ..verify.static import check_static

    kern, src, _ = build(desc)
    _, lines = render_lines(desc)
    rep = Report(desc, src)
    try:
        model = lower(kern)
        obs = check_static(model, timeout_ms=timeout_ms)
    except Exception as e:  # a crash of the verifier on a well-formed spec is a finding too
        rep.problems.append(Problem("error", None, f"{type(e).__name__}: {e}"))
        return rep
    rep.obligations = obs
    roles = {t.name: t.role for t in desc.tensors}
    keyed = [(o, key_of(o, roles)) for o in obs]
    rng = random.Random(seed)
    bad_at: dict = defaultdict(list)  # key -> [(sizes, idx)]
    points = size_points(desc)
    runs = []
    for sz in points:
        for idx in fillings(desc, sz, rng):
            out = run(desc, lines, sz, idx)
            if out.skipped:
                continue
            rep.points += 1
            runs.append((sz, idx, out))
            for k, b in out.bad.items():
                if b:
                    bad_at[k].append((sz, idx))
    for o, k in keyed:
        if k is None:
            continue
        rep.judged += 1
        if o.status == "proved" and bad_at.get(k):
            sz, idx = bad_at[k][0]
            rep.problems.append(
                Problem(
                    "unsound",
                    k,
                    f"{o.kind} proved ({o.message}) but the brute-force run violates it",
                    sz,
                    idx,
                )
            )
        elif o.status == "violated" and o.counterexample is not None:
            cex = {s: o.counterexample[s] for s in desc.sizes if s in o.counterexample}
            if len(cex) != len(desc.sizes) or max(cex.values(), default=0) > 64:
                continue
            if _uses_data(o.counterexample, desc) or _reproduces(
                desc, lines, cex, ("bounds", k[1]), rng
            ):
                continue  # data values we cannot replay, or an element outside the tensor
            if not _reproduces(desc, lines, cex, k, rng):
                rep.problems.append(
                    Problem(
                        "irreproducible",
                        k,
                        f"{o.kind} violated ({o.message}) but no run at its sizes shows it",
                        cex,
                    )
                )
    if executor:
        from ._exec import cross_check

        cross_check(kern, desc, keyed, runs, rep, executor, bad_at)
    return rep


def _uses_data(cex: dict, desc: KernelDesc) -> bool:
    """The counterexample names values read from the index tensor (not replayed here)."""
    return any(t.role == "index" for t in desc.tensors) and any(
        k not in desc.sizes and not k.startswith(("p", "element", "dim", "i", "lane")) for k in cex
    )


def _reproduces(desc, lines, sizes, key, rng) -> bool:
    try:
        fills = fillings(desc, sizes, rng, extra=6)
    except ZeroDivisionError:
        return False
    for idx in fills:
        out = run(desc, lines, sizes, idx)
        if out.bad.get(key):
            return True
        if out.tainted:  # an index read out of bounds: the counterexample may take any value
            vals = sorted(set(idx))
            if any(
                run(desc, lines, sizes, idx, v).bad.get(key) for v in range(vals[0], vals[-1] + 1)
            ):
                return True
    return False


def as_array(idx) -> np.ndarray | None:
    return None if idx is None else np.asarray(idx, np.int32)
