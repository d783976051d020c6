"""Which kernels a module declares: its ``KERNELS`` and ``VARIANTS`` lists, then its attributes.

One answer for every layer that asks: discovery (:mod:`tileproof.project._discover`)
collects them from user files, and a numeric mismatch's rerun command
(:func:`tileproof.verify._api.rerun_target`) checks that ``MODULE:NAME`` finds the
very kernel again.  It lives in ``spec`` because it knows only spec objects, so
both can import it downward.
"""

from __future__ import annotations

from ._kernel import Kernel

__all__ = ["kernels_in"]


def kernels_in(module) -> list[Kernel]:
    """The module's kernels in declaration order, each once (lists first, then attributes)."""
    found: list[Kernel] = []
    for attr in ("KERNELS", "VARIANTS"):
        for k in getattr(module, attr, ()) or ():
            if isinstance(k, Kernel) and k not in found:
                found.append(k)
    for value in vars(module).values():
        if isinstance(value, Kernel) and value not in found:
            found.append(value)
    return found
