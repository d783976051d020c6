"""Typed counterexample keys: what a counterexample value *is*, not only how it prints.

A counterexample used to be keyed by display strings (``b'``, ``element[0]``,
``iteration[i_29]``, ``start_pos[0]``).  Each key is now a :class:`CexKey`: a ``str``
that still reads, hashes and compares as exactly that text (so ``cx["element[0]"]``,
the text report and the JSON's ``counterexample`` object are unchanged), and carries

- ``role``: ``size`` (a size symbol), ``program`` (a grid axis' program id), ``rank``,
  ``lane``, ``loop`` (a loop index), ``iteration`` (how many iterations of a loop),
  ``element`` (one coordinate of the element a finding is about), ``data`` (the value of
  an index tensor: at a fixed index, or loaded at a site), ``value`` (another quantity
  the finding names: an offset, an extent, a core count) or ``symbol`` (a plain name
  whose role the model was not asked about);
- ``name``: the symbol, the loop's variable, the tensor, or ``""`` for an element;
- ``at``: the element's coordinate axis ``(k,)``, or a tensor element's index (``index``
  in the JSON);
- ``instance``: 2 for the second program, lane or rank of a pairwise finding (``p'``).

:func:`typed` reads the syntax; :func:`refine` assigns roles to plain names from the
schedule model (sizes, grid axes, ranks, lanes, loops, data symbols).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model import Model

__all__ = ["ROLES", "CexKey", "refine", "roles_of", "typed"]

ROLES = (
    "size",
    "program",
    "rank",
    "lane",
    "loop",
    "iteration",
    "element",
    "data",
    "value",
    "symbol",
)

_INDEXED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([^\]]*)\]$")
_INTS = re.compile(r"^-?\d+(\s*,\s*-?\d+)*$")
_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)('*)$")


class CexKey(str):
    """A counterexample key: its display text, plus what the value is (see the module)."""

    role: str
    name: str
    at: tuple[int, ...]  # the JSON's "index" (``str.index`` keeps its meaning)
    instance: int

    def __new__(
        cls, text: str, role: str, name: str = "", at: tuple[int, ...] = (), instance: int = 1
    ) -> CexKey:
        assert role in ROLES, role
        self = super().__new__(cls, text)
        self.role, self.name, self.at, self.instance = role, name, tuple(at), instance
        return self

    def __reduce__(self):  # pickles (worker processes) with its role
        return (CexKey, (str(self), self.role, self.name, self.at, self.instance))

    def with_role(self, role: str) -> CexKey:
        return CexKey(str(self), role, self.name, self.at, self.instance)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": str(self), "role": self.role}
        if self.name:
            out["name"] = self.name
        if self.at or self.role == "element":
            out["index"] = list(self.at)
        if self.instance != 1:
            out["instance"] = self.instance
        return out


def parse(text: str) -> CexKey:
    """The key ``text`` typed by its syntax alone (plain names get the role ``symbol``)."""
    if isinstance(text, CexKey):
        return text
    text = str(text)
    m = _INDEXED.match(text)
    if m:
        head, inside = m.group(1), m.group(2).strip()
        if head == "element" and inside.isdigit():
            return CexKey(text, "element", "", (int(inside),))
        if head == "iteration":
            return CexKey(text, "iteration", inside)
        if _INTS.match(inside):
            return CexKey(text, "data", head, tuple(int(x) for x in inside.split(",")))
        return CexKey(text, "value", text)
    m = _NAME.match(text)
    if m:
        return CexKey(text, "symbol", m.group(1), (), 1 + len(m.group(2)))
    return CexKey(text, "value", text)


def typed(ce: Mapping[str, int] | None) -> dict[str, int] | None:
    """``ce`` with :class:`CexKey` keys (same text, same order, same values)."""
    if ce is None:
        return None
    return {parse(k): v for k, v in ce.items()}


def roles_of(model: Model) -> dict[str, str]:
    """Plain symbol -> role, from a schedule model."""
    from ..model import Lanes, Loop

    roles: dict[str, str] = {}
    for name in model.data:
        roles[name] = "data"
        roles[f"{name}_carried"] = "data"
    for node in model.walk():
        if isinstance(node, Loop):
            roles[node.var] = "loop"
            for c in node.carried:
                roles.setdefault(c, "data")
        elif isinstance(node, Lanes):
            roles[node.var] = "lane"
    if model.ranks:
        roles[model.ranks[0]] = "rank"
    for name, _extent in model.grid:
        roles[name] = "program"
    for name in model.sizes:
        roles[name] = "size"
    return roles


def refine(ce: Mapping[str, int] | None, roles: Mapping[str, str]) -> dict[str, int] | None:
    """``ce`` typed, plain names given their role from ``roles`` (else ``value``)."""
    if ce is None:
        return None
    out: dict[str, int] = {}
    for k, v in ce.items():
        key = parse(k)
        if key.role == "symbol":
            key = key.with_role(roles.get(key.name, "value"))
        out[key] = v
    return out
