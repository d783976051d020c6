"""The model as a text listing: what users and tests read to see what the verifier reasons about."""

from __future__ import annotations

from ..model._nodes import (
    Access,
    Arith,
    Assert,
    Barrier,
    Branch,
    Claim,
    Comm,
    Divide,
    Fold,
    LanePart,
    Lanes,
    Loop,
    Model,
    Node,
    SplitReduce,
    Unsupported,
)

__all__ = ["listing"]


def _line(node: Node) -> str:
    return f"L{node.loc.line:<4}" if node.loc.line else "L?   "


def _node(node: Node, model: Model, depth: int, out: list[str]) -> None:
    pad = "  " * depth
    pre = f"  {_line(node)} {pad}"
    if isinstance(node, Access):
        idx = ", ".join(str(d) for d in node.dims)
        text = f"{node.kind:<5} {node.tensor}[{idx}]"
        if node.mask is not None:
            text += f"  mask {node.mask}"
        if node.value is not None:
            text += f"  -> {node.value}  ({model.data[node.value].range})"
        if node.stored is not None or node.stored_why is not None:
            text += f"  <- {node.stored if node.stored is not None else 'opaque'}"
        out.append(pre + text)
    elif isinstance(node, Loop):
        out.append(pre + f"for {node.var} in [{node.lo}, {node.hi}):")
        for name in node.carried:
            d = model.data[name]
            out.append(f"  {_line(node)} {pad}  carry {name} = {d.describe()}  ({d.range})")
        for c in node.body:
            _node(c, model, depth + 1, out)
    elif isinstance(node, Branch):
        kw = "unless-exited" if node.exit else "if"
        out.append(pre + f"{kw} {node.cond}:")
        for c in node.then:
            _node(c, model, depth + 1, out)
        if node.orelse:
            out.append(f"  {_line(node)} {pad}else:")
            for c in node.orelse:
                _node(c, model, depth + 1, out)
    elif isinstance(node, Barrier):
        out.append(pre + f"barrier({node.scope})")
    elif isinstance(node, Lanes):
        how = "task-parallel" if node.mode == "task" else f"halving axis {node.axis}"
        out.append(pre + f"lanes {node.var} in [0, {node.n}) {how}:")
        for c in node.body:
            _node(c, model, depth + 1, out)
    elif isinstance(node, LanePart):
        what = "lane_part of" if node.what == "lane_part" else f"halved ({node.what})"
        out.append(pre + f"{what} tile {list(node.shape)} along axis {node.axis} / {node.n}")
    elif isinstance(node, SplitReduce):
        out.append(pre + f"{node.primitive} over lane-split axis {node.axis}")
    elif isinstance(node, Comm):
        out.append(
            pre + f"sendrecv to {node.dst} if {node.send}; from {node.src} if {node.recv}"
            f"  (chunk of rank {node.prov})"
        )
    elif isinstance(node, Fold):
        out.append(pre + f"fold chunk of rank {node.prov} if {node.cond}")
    elif isinstance(node, (Arith, Divide)):
        pass  # intermediate arithmetic is checked, not listed
    elif isinstance(node, Claim):
        out.append(pre + f"claim {node.expr} % {node.modulus} == 0  ({node.what})")
    elif isinstance(node, Assert):
        out.append(pre + f"assert {node.cond}  ({node.kind}: {node.what})")
    elif isinstance(node, Unsupported):
        out.append(pre + f"UNSUPPORTED: {node.what}")


def _launch(launch) -> str:
    """The machine model a barrier's residency depends on, in one line."""
    text = f"start {launch.start}"
    if launch.cores is not None:
        text = f"{launch.cores} cores, " + text
    for t in launch.concurrent:
        text += (
            f"; concurrent {t.name} ({t.programs} programs, {'fenced' if t.fenced else 'unfenced'})"
        )
    return text


def listing(model: Model) -> str:
    out = [f"kernel {model.name}  ({model.source})"]
    out.append(f"  sizes   {' '.join(model.sizes) or '-'}")
    if model.assume:
        out.append(f"  domain  {'; '.join(str(a) for a in model.assume)}")
    if model.grid:
        out.append("  grid    " + ", ".join(f"{n} < {e}" for n, e in model.grid))
    if model.ranks:
        var, size, topo = model.ranks
        out.append(f"  ranks   {var} < {size} ({topo})")
    if model.launch is not None:
        out.append(f"  launch  {_launch(model.launch)}")
    out.append(f"  index   int{model.index_bits}")
    out.append("  tensors")
    width = max((len(n) for n in model.tensors), default=0)
    for name, t in model.tensors.items():
        shape = ", ".join(str(d) for d in t.shape)
        extra = f"  values {t.values}" if t.values is not None else ""
        extra += "  sharded" if t.sharded else ""
        extra += "  distinct" if getattr(t, "distinct", False) else ""
        extra += f"  index int{t.index_bits}" if t.index_bits is not None else ""
        extra += "  updated" if getattr(t, "updated", False) else ""
        if getattr(t, "enumerates", None) is not None:
            reads = "".join(
                f", {r} = {tn}[{', '.join(map(str, idx))}]" for r, (tn, idx) in t.read_map.items()
            )
            extra += f"  enumerates {{v : {t.enumerates}{reads}}} in [0, {t.count})"
        out.append(f"    {name:<{width}}  {t.role:<7} {t.dtype}[{shape}]{extra}")
    out.append("  body")
    for n in model.body:
        _node(n, model, 0, out)
    return "\n".join(out)
