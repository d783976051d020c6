"""Static verification: proof obligations of a schedule model, decided for every admissible shape.

``check_static(model)`` (:mod:`._check`) returns one
:class:`~tileproof.report.Obligation` per (kind, node).  One module per
obligation kind, each headed by its formal statement:

* ``shape``: :mod:`._shape`; ``bounds``: :mod:`._bounds` (accesses) and
  :mod:`._stored` (values stored into a ``values=`` tensor); ``overflow``:
  :mod:`._overflow`; ``split``: :mod:`._split`; ``barrier``: :mod:`._barrier`;
  ``race``: :mod:`._race`; ``ring``: :mod:`._ring`; ``reads``: :mod:`._reads`;
* ``coverage``: :mod:`._coverage` (every output element written exactly once)
  and :mod:`._read_after_write` (outputs and scratch read only where written).

What they share, one job a module:

* :mod:`._context` — the analysis of one model: names, ranges, the context
  facts of a site, instances (renamings) for two-program queries;
* :mod:`._sites` — sites and phases (barriers passed) of every node;
  :mod:`._order` — what happens before what (phases, program order, lanes);
* :mod:`._decide` — the one door to :func:`tileproof.shapes.prove`: the decision
  strategies, each with its soundness argument, and the deterministic budget;
  :mod:`._divisions` — one more strategy (divisions as fresh names) for ``reads``;
* :mod:`._counterexamples` — completing and minimising a refutation;
  :mod:`._explain` — names and verdicts in the kernel's words;
* :mod:`._witness` (inverting an index map), :mod:`._writers` (candidate writers
  of an element), :mod:`._digits` and :mod:`._pairs` (two instances touching one
  element), :mod:`._confirm` (concrete confirmation on the model's interpreter).

Generic formula helpers (divisors and division atoms, linearity, relaxations,
lower-bound declarations, value bounds, division by a monomial) live in
:mod:`tileproof.shapes`.
"""

from ._check import check_static as check_static
from ._check import check_static_timed as check_static_timed
