"""Differential: symbolic bounds/coverage verdicts against brute-force enumeration of small sizes.

A ``proved`` must never meet a concrete violation at any enumerated size, and
a ``violated`` counterexample must really violate the property.  The brute
force is the model's concrete interpreter (:func:`tileproof.model.events`), which
shares nothing with the symbolic reasoning: it runs the model's loops and branches
for every program and collects the elements each access touches.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import pytest

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.model import Access, events, touched
from tileproof.verify.static import check_static


def _tiles(grid: str, tile: int, masked: bool):
    @tp.kernel(
        grid={"p": grid},
        assume=["N <= 4096"],
        tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
    )
    def tiles(x, y):
        p, n = tp.program_id(0), tp.size("N")
        mask = (p * tile + jnp.arange(tile)) < n if masked else None
        tp.store(
            y, (tp.ds(p * tile, tile),), tp.load(x, (tp.ds(p * tile, tile),), mask=mask), mask=mask
        )

    return tiles


def _heads(aligned: bool, masked: bool):
    @tp.kernel(
        grid={"b": "B", "q": "cdiv(H, 16)"},
        assume=["B <= 8", "H <= 64", *(["H % 16 == 0"] if aligned else [])],
        tensors=dict(x=tp.Input(("B*H", 4)), y=tp.Output(("B*H", 4))),
    )
    def heads(x, y):
        b, q, H = tp.program_id(0), tp.program_id(1), tp.size("H")
        rows = tp.ds(b * H + q * 16, 16)
        mask = (q * 16 + jnp.arange(16))[:, None] < H if masked else None
        tp.store(y, (rows, slice(None)), tp.load(x, (rows, slice(None)), mask=mask), mask=mask)

    return heads


KERNELS = [
    ("cdiv-unmasked", _tiles("cdiv(N, 64)", 64, False), {"N": range(1, 140)}),
    ("cdiv-masked", _tiles("cdiv(N, 64)", 64, True), {"N": range(1, 140)}),
    ("floordiv-masked", _tiles("N // 32", 32, True), {"N": range(1, 100)}),
    ("heads-aligned", _heads(True, False), {"B": range(1, 4), "H": range(16, 65, 16)}),
    ("heads-tail", _heads(False, False), {"B": range(1, 4), "H": range(1, 40)}),
    ("heads-tail-masked", _heads(False, True), {"B": range(1, 4), "H": range(1, 40)}),
]


# ------------------------------------------------------------------------ brute force


def _run(model, sizes):
    """(access node, element, program) for every element every program touches, in program
    order: the model's one concrete interpreter, which shares nothing with the solver."""
    out = []
    for ev in events(model, sizes, want=lambda n: isinstance(n, Access)):
        out.extend((ev.node, el, ev.program) for el in touched(ev.node, ev.env))
    return out


def _concrete(model, sizes):
    """Per obligation key: does the property hold at these sizes?"""
    touched = _run(model, sizes)
    facts = {}
    for node in model.walk():
        if isinstance(node, Access):
            shape = [d.evaluate(sizes) for d in model.tensors[node.tensor].shape]
            ok = all(
                all(0 <= e < s for e, s in zip(el, shape)) for n, el, _ in touched if n is node
            )
            facts[("bounds", node.loc.line, node.kind)] = ok
    for name, t in model.tensors.items():
        if t.role != "output":
            continue
        shape = [d.evaluate(sizes) for d in t.shape]
        writes = [el for n, el, _ in touched if n.tensor == name and n.kind == "store"]
        every = set(itertools.product(*(range(s) for s in shape)))
        facts[("exists", name)] = every <= set(writes)
        facts[("unique", name)] = len(writes) == len(set(writes))
    return facts


def _key(o):
    if o.kind == "bounds":
        return ("bounds", o.location.line, o.message.split()[0])
    if "every element" in o.message or "never written" in o.message:
        return ("exists", o.message.split("output ")[1].split()[0])
    if "twice" in o.message:
        return (
            "unique",
            o.message.split(" of ")[1].split()[0]
            if "written twice" in o.message
            else o.message.split()[1],
        )
    return None


@pytest.mark.parametrize("label,kernel,ranges", KERNELS, ids=[k[0] for k in KERNELS])
def test_symbolic_verdicts_agree_with_enumeration(label, kernel, ranges):
    model = lower(kernel)
    obs = [
        o
        for o in check_static(model, kinds=("shape", "bounds", "coverage"))
        if o.kind in ("bounds", "coverage")
    ]
    names = list(ranges)
    points = [dict(zip(names, vals)) for vals in itertools.product(*ranges.values())]
    points = [p for p in points if all(f.evaluate(p) for f in model.assume)]
    table = [(p, _concrete(model, p)) for p in points]
    for o in obs:
        key = _key(o)
        assert key is not None, o.message
        if o.status == "proved":
            broken = [p for p, facts in table if not facts[key]]
            assert not broken, f"{label}: proved {o.message!r} but it fails at {broken[0]}"
        elif o.status == "violated":
            sizes = {k: v for k, v in o.counterexample.items() if k in names}
            assert all(f.evaluate(sizes) for f in model.assume), (label, sizes)
            assert not _concrete(model, sizes)[key], f"{label}: {o.message!r} holds at {sizes}"
        else:
            pytest.fail(f"{label}: {o.message} is {o.status}: {o.reason}")
