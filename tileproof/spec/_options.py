"""A kernel's own numeric settings: :class:`NumericOptions` (``numeric=`` of ``tp.kernel``).

``numeric=`` used to be an untyped dict whose misspelt keys passed silently (a
``"gradient": False`` simply compared gradients anyway).  It is now a typed, frozen
object; a dict is still accepted and converted, and a key it does not know is a
:class:`SpecError` naming the spec's file:line and the valid keys.

The object also reads as the mapping it replaces (``opts.get("derive")``,
``"budget" in opts``, ``opts.items()``) over the settings that were *given*: the
executor, the numeric cache key and user code that read the old dict keep working and
see exactly what they saw before.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ._errors import Location, SpecError

__all__ = ["NumericOptions"]


@dataclass(frozen=True, eq=False)
class NumericOptions(Mapping):
    """A kernel's numeric defaults; ``None`` means "not set" (the run's own default applies).

    - ``sizes``: points tried first (one ``{size: value}`` mapping or a sequence of them);
    - ``budget``: how many further points the domain gives;
    - ``gradients``: compare gradients too (default: yes);
    - ``tolerances``: per dtype ``(rtol, atol)`` or ``{"rtol": .., "atol": ..}``;
    - ``derive``: ``derive(inputs, sizes)`` computes inputs from others (work tables);
    - ``skip``: why numerics are not run for this kernel (the numeric status is then
      ``skipped``: the one skip a user asks for).
    """

    sizes: Mapping[str, int] | Sequence[Mapping[str, int]] | None = None
    budget: int | None = None
    gradients: bool | None = None
    tolerances: Mapping[str, Any] | None = None
    derive: Callable[..., Any] | None = None
    skip: str | None = None

    @classmethod
    def keys_known(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def of(
        cls, value: NumericOptions | Mapping[str, Any] | None, where: Location | None = None
    ) -> NumericOptions:
        """``value`` as options: a dict is converted; an unknown key or a value of the wrong
        type is a :class:`SpecError` at ``where`` (the spec's ``tp.kernel(...)`` line)."""
        if value is None:
            return cls()
        if isinstance(value, NumericOptions):
            return value
        if not isinstance(value, Mapping):
            raise SpecError(
                f"numeric= must be a dict of numeric settings or "
                f"tp.NumericOptions(...), got {type(value).__name__}",
                where,
            )
        known = cls.keys_known()
        bad = [k for k in value if k not in known]
        if bad:
            near = difflib.get_close_matches(str(bad[0]), known, n=1)
            guess = f" (did you mean {near[0]!r}?)" if near else ""
            raise SpecError(
                f"numeric= has no setting {', '.join(repr(k) for k in bad)}{guess}.",
                where,
                f"Valid keys: {', '.join(known)}.",
            )
        opts = cls(**dict(value))
        opts._check(where)
        return opts

    def _check(self, where: Location | None) -> None:
        """Types as documented: a wrong one would fail deep inside a numeric run."""

        def bad(key: str, want: str) -> SpecError:
            got = getattr(self, key)
            return SpecError(f"numeric={{{key!r}: ...}} must be {want}, got {got!r}", where)

        s = self.sizes
        if (
            s is not None
            and not isinstance(s, Mapping)
            and not (
                isinstance(s, Sequence)
                and not isinstance(s, str)
                and all(isinstance(p, Mapping) for p in s)
            )
        ):
            raise bad("sizes", "a {size: value} dict or a list of them")
        if self.budget is not None and (
            isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 0
        ):
            raise bad("budget", "an int >= 0")
        if self.gradients is not None and not isinstance(self.gradients, bool):
            raise bad("gradients", "True or False")
        if self.tolerances is not None and not isinstance(self.tolerances, Mapping):
            raise bad("tolerances", "a dict of dtype name -> (rtol, atol)")
        if self.derive is not None and not callable(self.derive):
            raise bad("derive", "a function derive(inputs, sizes)")
        if self.skip is not None and not isinstance(self.skip, str):
            raise bad("skip", "a string saying why")

    def replace(self, **changes: Any) -> NumericOptions:
        """A copy with some settings changed (the object itself is frozen)."""
        return NumericOptions.of({**dict(self), **changes})

    # -- the read-only mapping of the settings given (what the old dict held)
    def __getitem__(self, key: str) -> Any:
        if key in self.keys_known():
            value = getattr(self, key)
            if value is not None:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k in self.keys_known() if getattr(self, k) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"NumericOptions({', '.join(f'{k}={v!r}' for k, v in self.items())})"
