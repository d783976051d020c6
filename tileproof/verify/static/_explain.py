"""Explanations: how names, values and verdicts read in a message.

Names are shown in the kernel's terms (``i_29`` is "loop index i (line 29)",
``block_table_23`` is ``block_table[b, i]``), counterexamples list sizes
first, then ids, lanes, loops and data, each keyed by a
:class:`~tileproof.report.CexKey` that says what the name is (:meth:`Explainer.key`:
the role is decided here, from the model, where the name is known), and
:meth:`Explainer.obligation` turns a decision into an
:class:`~tileproof.report.Obligation`, reporting a proof at a site no
admissible values reach as ``unknown`` (vacuous), never ``proved``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ... import shapes
from ...model import Access
from ...report import Obligation
from ...report._keys import CexKey
from ._decide import Answer
from ._sites import Site

__all__ = ["COORD", "Explainer", "plain"]

COORD = re.compile(r"^_c\d+$")  # a tile coordinate


class Explainer:
    """Names and verdicts in a user's words (a base of :class:`._context.Analysis`, whose
    names it reads: declared here for the reader and the type checker)."""

    model: Any
    sizes: list[str]
    pids: list[str]
    rank_var: str | None
    data: dict
    loop_vars: dict
    lane_vars: dict
    by_node: dict
    reachable: Any  # Callable[[Site], Answer]
    roles: dict[str, str]  # name -> its counterexample key's role (:meth:`name_roles`)

    def name_roles(self) -> dict[str, str]:
        """What each name of the model is, as a counterexample key's role: index-tensor
        values (and the values loops carry) ``data``, loop indices ``loop``, lane ids
        ``lane``, the rank ``rank``, grid axes ``program``, sizes ``size`` (a later role
        wins where one name has two)."""
        roles: dict[str, str] = {}
        for name in self.model.data:
            roles[name] = "data"
            roles[f"{name}_carried"] = "data"
        for var, lp in self.loop_vars.items():
            roles[var] = "loop"
            for c in lp.carried:
                roles.setdefault(c, "data")
        for var in self.lane_vars:
            roles[var] = "lane"
        if self.rank_var:
            roles[self.rank_var] = "rank"
        for name in self.pids:
            roles[name] = "program"
        for name in self.model.sizes:
            roles[name] = "size"
        return roles

    def key(self, name: str) -> CexKey:
        """The counterexample key of a name the solver or a run gave a value (a name the
        model does not know, such as an instance-tagged ``b__2``, is a ``value``)."""
        if isinstance(name, CexKey):
            return name
        return CexKey(self.roles.get(name, "value"), name)

    def label(self, name: str) -> str:
        """How a user reads a name (``i_29`` is "loop index i (line 29)")."""
        base, _, inst = name.partition("__")
        if base in self.loop_vars:
            lp = self.loop_vars[base]
            m = re.match(r"^(.*)_(\d+)$", base)
            text = (
                f"loop index {m.group(1)} (line {lp.loc.line})"
                if m and lp.loc.line and m.group(2) == str(lp.loc.line)
                else f"loop index {base}"
            )
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

    def values(self, cex: Mapping[str, int], *, skip: Iterable[str] = ()) -> dict[CexKey, int]:
        """The user-visible part of a counterexample, keyed by :meth:`key`: sizes first, then
        ids, loops, data."""
        skip = set(skip)
        pool = [
            n
            for n in cex
            if n not in skip and not COORD.match(n.partition("__")[0]) and not n.startswith("_")
        ]

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

        return {self.key(n): int(cex[n]) for n in sorted(pool, key=rank)}

    def split(
        self, cex: Mapping[str, int], *tags: str
    ) -> tuple[dict[CexKey, int], list[dict[CexKey, int]]]:
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
        rest = [
            f"{self.label(k)}={v}"
            for k, v in vals.items()
            if k not in self.pids and k != self.rank_var and k not in self.data
        ]
        text = f"{what} ({', '.join(ids)})" if ids else f"the {what}"
        if rest:
            text += " at " + ", ".join(rest)
        return text

    def primed(
        self, sizes: Mapping[str, int], insts: Sequence[Mapping[str, int]]
    ) -> dict[CexKey, int]:
        """One counterexample dict: sizes, the first instance's names, the second's primed."""
        out = {self.key(k): v for k, v in sizes.items()}
        for i, vals in enumerate(insts):
            out.update({self.key(k).primed(i): v for k, v in vals.items()})
        return out

    def show(self, vals: Mapping[str, int]) -> str:
        return ", ".join(f"{self.label(k)}={v}" for k, v in vals.items())

    def relevant(self, cex: Mapping[str, int], *exprs) -> dict[CexKey, int]:
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

    def obligation(
        self,
        kind: str,
        node_or_site,
        message: str,
        ans: Answer,
        *,
        violated: str | None = None,
        cex: dict[CexKey, int] | None = None,
        t0: float | None = None,
        hint: str = "",
        detail: dict | None = None,
    ) -> Obligation:
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
                why = (
                    "its premises admit no program/size: vacuous"
                    if reach.proved
                    else f"whether any program/size reaches it is unknown ({reach.reason})"
                )
                return Obligation(
                    kind,
                    "unknown",
                    message,
                    loc,
                    reason=why,
                    seconds=secs,
                    hint="Check the domain, the grid and the conditions around "
                    f"{loc.short}: no admissible values execute it.",
                    detail=det,
                )
        if ans.status == "proved":
            if ans.vacuous:
                det["vacuous"] = True
            return Obligation(
                kind,
                "proved",
                message,
                loc,
                seconds=secs,
                detail=det,
                reason="unreachable: no admissible values reach it" if ans.vacuous else "",
            )
        if ans.status == "refuted" and self.rereads(ans.cex):
            return Obligation(
                kind,
                "unknown",
                message,
                loc,
                reason=self.rereads(ans.cex),
                seconds=secs,
                hint=hint,
                detail=det,
            )
        if ans.status == "refuted":
            return Obligation(
                kind,
                "violated",
                violated or message,
                loc,
                counterexample=cex if cex is not None else self.values(ans.cex or {}),
                seconds=secs,
                hint=hint,
                detail=det,
            )
        return Obligation(
            kind,
            "unknown",
            message,
            loc,
            reason=ans.reason or "undecided",
            seconds=secs,
            hint=hint,
            detail=det,
        )

    def rereads(self, cex: Mapping[str, int] | None) -> str:
        """Why a refutation cannot be reported: it assigns values to reads of a tensor the
        kernel stores into (empty when it does not).

        Such a read has no index (see :func:`tileproof.lowering._data.unpin_written`): the
        verifier takes it as any value in the declared range, which is sound for a proof,
        but whether the kernel's own stores can put that value there before the read is
        not modelled, and the concrete runs of the model do not follow stored values either
        (:class:`tileproof.model._data.Oracle` refuses such reads).  So the counterexample
        cannot be confirmed: ``unknown``, never a ``violated`` that may not happen."""
        data = getattr(self, "data", {})
        hit = sorted(
            {
                data[base].tensor
                for k in cex or {}
                for base in (k.partition("__")[0],)
                if base in data and data[base].tensor in self.stored_tensors
            }
        )
        if not hit:
            return ""
        names = ", ".join(hit)
        return (
            f"refuted only with values read from {names} after the kernel may have stored "
            f"into it; the model does not follow stored values, so the counterexample cannot "
            f"be confirmed"
        )

    @property
    def stored_tensors(self) -> set[str]:
        """Tensors some store of the model writes."""
        got = getattr(self, "_stored_tensors", None)
        if got is None:
            got = self._stored_tensors = {
                n.tensor for n in self.model.walk() if isinstance(n, Access) and n.kind == "store"
            }
        return got

    def model_location(self):
        from ...spec._errors import UNKNOWN, Location

        src = self.model.source
        file, _, line = src.rpartition(":")
        try:
            return Location(file, int(line))
        except ValueError:
            return UNKNOWN


def plain(e, an: Explainer) -> str:
    """An expression as a user reads it: ``i_29`` -> ``i``, ``block_table_23`` -> ``block_table[b, i]``."""
    text = str(e)
    names = sorted(e.free_symbols(), key=len, reverse=True)
    for n in names:
        m = re.match(r"^(.*)_(\d+)$", n)
        if n in an.data and not an.data[n].tensor:  # a step count (_loops._carried_steps)
            continue
        if n in an.data:
            d = an.data[n]
            idx = ", ".join(plain(x, an) for x in d.index)
            text = re.sub(rf"\b{re.escape(n)}\b", f"{d.tensor}[{idx}]", text)
        elif n in an.loop_vars and m:
            text = re.sub(rf"\b{re.escape(n)}\b", m.group(1), text)
        elif COORD.match(n):  # a tile coordinate: the position along that tile axis
            text = re.sub(rf"\b{re.escape(n)}\b", f"pos{n[2:]}", text)
    return text
