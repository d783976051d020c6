"""Numeric matching: the tiled schedule executed in JAX, against the reference.

``execute(kernel, sizes, inputs) -> (outputs, flags)`` runs a kernel spec's tiled
schedule as a pure JAX function of its input arrays — jit-compiled, differentiable,
the same on CPU and GPU — by interpreting the body's traced jaxpr (the trace the
lowering reads) once per program, vectorised:

* **programs** are a ``vmap`` over the flattened grid, **ranks** an outer named
  ``vmap`` (or real devices under ``shard_map`` with ``devices=``), **lanes** a
  ``vmap`` inside a program; no Python loop runs over any of them;
* **phases**: top-level ``barrier("grid")`` (and ``"launch"``) calls split the body; each phase runs
  for every program against the memory as it was when the phase began, then its
  writes are applied.  Values a program computed before a barrier carry over;
* **loops** with kernel operations become ``lax.scan`` of a static length (the
  largest trip count at the sizes and the declared value ranges, from the lowered
  model) with an ``active`` mask, so reverse-mode AD works; a loop that would run
  longer is flagged, not cut silently; **branches** with kernel operations run
  every branch under its predicate; ``exit_if`` masks the rest of the program.

Memory is as strict as the hardware: buffers start poisoned (NaN, or the most
negative integer); a program sees its own writes at once, other programs' only
after the next grid barrier (its lanes' after a lanes barrier); masked-off and
out-of-range elements read 0.  Run-time findings (:class:`Flags`, worded by
:meth:`Flags.findings`): out-of-bounds loads and stores (with program and element,
never clamped), reads of never-written elements, write-write races and
read-write races within a phase, output elements never written, loops past their
static bound, programs that exit before a grid barrier, ring sends and receives
that do not match or leave an open mesh.  Top-level accesses whose tiles are a
disjoint affine tiling of the tensor become reshapes instead of gathers and
scatters (``benchmarks/numeric_vs_pallas.py``: within noise of XLA).  A tensor far
larger than what a phase writes into it (a KV cache) has its write-write races found
by sorting the writes (:mod:`._sparse`) instead of with writer maps of its size.

Cost: on a CPU a numeric check is compile-bound.  ``check_numeric`` compiles each
point's executor with counts-only flags (``executor(..., detail=False)``: exact
counts, no first-offender search; a detailed run follows only a hit, so messages are
unchanged), at LLVM's cheapest optimisation level (:func:`._execute.compile_options`),
and both vjps of a gradient point as one program.

``check_numeric(kernel)`` chooses sizes from the domain (:func:`choose_sizes`:
given points such as a static counterexample first, the authors' defaults, the
smallest point, one that makes divisions inexact, then seeded random points; each
tensor at most :data:`CAP_ELEMENTS` elements — the given points and the defaults at
most :func:`device_cap_elements`, from the device's free memory — and at most
:data:`CAP_PROGRAMS` programs), draws inputs (:func:`draw_inputs`), and compares the outputs and the
``jax.vjp`` gradients with ``kernel.reference`` under per-dtype tolerances
(:data:`TOLERANCES`), and a declared backward spec with the reference's vjp.
"""

from ._check import check_numeric as check_numeric
from ._compare import TOLERANCES as TOLERANCES
from ._execute import execute as execute
from ._execute import executor as executor
from ._flags import KINDS as KINDS
from ._flags import Finding as Finding
from ._flags import Flags as Flags
from ._inputs import draw_inputs as draw_inputs
from ._jaxpr import NumericUnsupported as NumericUnsupported
from ._sizes import CAP_ELEMENTS as CAP_ELEMENTS
from ._sizes import CAP_PROGRAMS as CAP_PROGRAMS
from ._sizes import choose_sizes as choose_sizes
from ._sizes import device_cap_elements as device_cap_elements
