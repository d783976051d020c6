"""The root of every error tileproof raises on purpose: :class:`TileproofError`.

Catch ``tileproof.TileproofError`` to catch anything tileproof reports as an error in
what it was given; any other exception escaping tileproof is a bug in tileproof.  The
family (each worded for the user, with the file and line where one is known):

- :class:`~tileproof.spec.SpecError` — a kernel spec that cannot be lowered (CLI exit 2);
- ``ConfigError`` (``tileproof.project``) — a ``[tool.tileproof]`` setting that
  cannot be used (exit 2); no spec error: the spec may be fine;
- ``NumericUnsupported`` (``tileproof.verify.numeric``) — a construct or a request the
  numeric executor cannot run; inside a check it is the numeric status ``error``, raised
  out of one (``--devices`` beyond what JAX sees) it is a usage error (exit 2); no spec
  error either: the spec may be correct;
- :class:`~tileproof.shapes.ShapeError` — malformed shape arithmetic (also a
  ``ValueError``).

This module imports nothing (``tileproof.shapes`` must import without JAX).
"""

from __future__ import annotations

__all__ = ["TileproofError"]


class TileproofError(Exception):
    """Anything tileproof reports as an error in its input (a spec, a setting, a formula, a
    request), as opposed to a bug in tileproof."""
