"""Typed counterexample keys: what a counterexample value *is*, not only how it prints.

Each key of a counterexample is a :class:`CexKey`, built by the check that found the
value (the role is known there; it is never guessed back from the text).  It carries

- ``role``: ``size`` (a size symbol), ``program`` (a grid axis' program id), ``rank``,
  ``lane``, ``loop`` (a loop index), ``iteration`` (how many iterations of a loop),
  ``element`` (one coordinate of the element a finding is about), ``data`` (the value of
  an index tensor: at a fixed index, or loaded at a site) or ``value`` (another quantity
  the finding names: an offset, an extent, a core count; also a name the model does not
  know);
- ``name``: the symbol, the loop's variable, the tensor, or ``""`` for an element;
- ``at``: the element's coordinate axis ``(k,)``, or a tensor element's index (``index``
  in the JSON);
- ``instance``: 2 for the second program, lane or rank of a pairwise finding (``p'``).

Its display text (``b'``, ``element[0]``, ``iteration[i_29]``, ``start_pos[0]``) is
derived from these fields in one place, :func:`display`.  A key *is* that text (a ``str``
subclass that hashes and compares as it), so ``cx["element[0]"]``, the text report and
the JSON's ``counterexample`` object read as they always did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ROLES",
    "CexKey",
    "display",
    "element_items",
    "key_of",
    "typed_keys",
    "with_quantities",
]

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
)


def display(role: str, name: str, at: tuple[int, ...], instance: int) -> str:
    """The one spelling of a key: ``element[k]``, ``iteration[v]``, ``T[i, j]``, ``name'``."""
    if role == "element":
        return f"element[{at[0]}]"
    if role == "iteration":
        return f"iteration[{name}]"
    if at:
        return f"{name}[{', '.join(str(x) for x in at)}]"
    return name + "'" * (instance - 1)


class CexKey(str):
    """A counterexample key: its role, name, index and instance; it reads as its display."""

    role: str
    name: str
    at: tuple[int, ...]  # the JSON's "index" (``str.index`` keeps its meaning)
    instance: int

    def __new__(
        cls, role: str, name: str = "", at: Sequence[int] = (), instance: int = 1
    ) -> CexKey:
        at = tuple(int(x) for x in at)
        _check(role, name, at, instance)
        self = super().__new__(cls, display(role, name, at, instance))
        self.role, self.name, self.at, self.instance = role, name, at, instance
        return self

    # -- the keys a check builds beside the model's names
    @classmethod
    def element(cls, axis: int) -> CexKey:
        """Coordinate ``axis`` of the element a finding is about (``element[0]``)."""
        return cls("element", "", (axis,))

    @classmethod
    def iteration(cls, var: str) -> CexKey:
        """How many iterations the loop over ``var`` ran (``iteration[i_29]``)."""
        return cls("iteration", var)

    @classmethod
    def cell(cls, tensor: str, index: Sequence[int]) -> CexKey:
        """The value of an index tensor at a concrete index (``start_pos[0]``; a 0-d
        tensor's one value reads ``T[]``, as it always did)."""
        return cls("data", tensor, index) if len(index) else cls("data", f"{tensor}[]")

    @classmethod
    def quantity(cls, name: str) -> CexKey:
        """Another quantity a finding names (``offset``, ``extent``, ``cores``)."""
        return cls("value", name)

    def primed(self, extra: int) -> CexKey:
        """The same name for the instance ``extra`` further on (``b`` -> ``b'``)."""
        return CexKey(self.role, self.name, self.at, self.instance + extra)

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (worker processes) with its role
        return (CexKey, (self.role, self.name, self.at, self.instance))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": str(self), "role": self.role}
        if self.name:
            out["name"] = self.name
        if self.at or self.role == "element":
            out["index"] = list(self.at)
        if self.instance != 1:
            out["instance"] = self.instance
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CexKey:
        """The key :meth:`to_json` wrote (a ``ValueError`` if its text does not match)."""
        key = cls(d["role"], d.get("name", ""), d.get("index", ()), d.get("instance", 1))
        if str(key) != d["key"]:
            raise ValueError(f"counterexample key {d['key']!r} reads back as {str(key)!r}")
        return key


def _check(role: str, name: str, at: tuple[int, ...], instance: int) -> None:
    """A key's fields must spell one key, and no other key's text."""
    if role not in ROLES:
        raise ValueError(f"counterexample key role {role!r} is not one of {ROLES}")
    if instance < 1 or (instance > 1 and at):
        raise ValueError(f"counterexample key {name!r}: instance {instance} with index {at}")
    if role == "element":
        if name or len(at) != 1:
            raise ValueError(f"an element key has one axis and no name, not {name!r}{list(at)}")
    elif not name:
        raise ValueError(f"a {role} counterexample key needs a name")
    elif role == "iteration" and at:
        raise ValueError(f"an iteration key has no index, not {list(at)}")


def key_of(k: str) -> CexKey:
    """``k`` as the :class:`CexKey` it must be (a ``TypeError`` for plain text: a key's role
    is stated by the check that made it, never guessed from its text)."""
    if not isinstance(k, CexKey):
        raise TypeError(
            f"counterexample key {k!r} is plain text: build it as a CexKey (role, name, "
            "index), where the value is found"
        )
    return k


def typed_keys(ce: Mapping[str, int] | None) -> dict[str, int] | None:
    """``ce`` as a finding's counterexample: a new dict, each key checked by :func:`key_of`.

    Its type says ``str`` keys: a :class:`CexKey` is a ``str``, and readers look values up
    by their text (``cx["element[0]"]``); :func:`key_of` gives a key its type back."""
    if ce is None:
        return None
    return {key_of(k): v for k, v in ce.items()}


def element_items(element: Sequence[int]) -> dict[CexKey, int]:
    """``{element[0]: e0, element[1]: e1, ...}``: the element a finding is about."""
    return {CexKey.element(k): v for k, v in enumerate(element)}


def with_quantities(ce: Mapping[CexKey, int], **quantities: int) -> dict[CexKey, int]:
    """``ce`` followed by the other quantities a finding names (``offset=...``, ``chunk=...``),
    each keyed ``value``.  A quantity whose name a key of ``ce`` already spells (a size called
    ``offset``) is left out: one text cannot name two values, and the counterexample keeps
    that key's own, re-checked value (the message states the quantity)."""
    out = dict(ce)
    for name, v in quantities.items():
        key = CexKey.quantity(name)
        if key not in out:
            out[key] = v
    return out
