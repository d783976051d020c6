"""Static verification: proof obligations of a schedule model, decided for every admissible shape.

``check_static(model)`` returns one :class:`~tileproof.verify._report.Obligation`
per (kind, node): ``shape``, ``bounds``, ``coverage``, ``overflow``, ``split``,
``barrier``, ``race``, ``ring``.  Each kind lives in its own module, headed by
its formal statement; :mod:`._context` holds what they share (the context of
every node and the single door to :func:`tileproof.shapes.prove`).
"""

from ._check import check_static as check_static
from ._check import check_static_timed as check_static_timed
