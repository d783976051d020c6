"""Test helpers: assert that kernel specs verify, in any test suite.

    from tileproof.testing import assert_verified
    from mykernels.specs import paged

    def test_paged():
        assert_verified(paged)              # static proofs and numerics
        assert_verified(paged, numeric=False)

A failure raises :class:`AssertionError` whose message is tileproof's text
report (findings with their counterexamples, the summary table), so pytest
shows what a ``tileproof check`` would print.  Settings come from
``[tool.tileproof]`` of the nearest pyproject.toml, unless ``config`` is given;
proofs are cached in ``.tileproof_cache/`` like the command's.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Iterable

__all__ = ["assert_verified", "sizes"]


def assert_verified(
    kernel,
    *,
    numeric: bool = True,
    timeout_ms: int | None = None,
    config=None,
    cache: bool = True,
    **numeric_options,
):
    """Verify ``kernel`` (or several); raise ``AssertionError`` with the report unless all hold.

    Returns the :class:`~tileproof.verify.Report` so tests can look further.
    ``numeric_options`` go to the numeric matcher (e.g. ``extra_sizes=[...]``).
    """
    __tracebackhide__ = True
    from dataclasses import replace

    from .project import load_config, run_kernel
    from .report import Report, to_text
    from .spec._kernel import Kernel

    kernels = (
        [kernel]
        if isinstance(kernel, Kernel)
        else list(kernel)
        if isinstance(kernel, Iterable)
        else None
    )
    if not kernels or not all(isinstance(k, Kernel) for k in kernels):
        raise TypeError(f"assert_verified takes a tileproof kernel (or several), got {kernel!r}")
    cfg = config if config is not None else load_config()
    if timeout_ms is not None:
        cfg = replace(cfg, timeout_ms=timeout_ms)
    # proofs and matched numeric results of unchanged kernels are reused (never a mismatch)
    cfg = replace(cfg, cache=cfg.cache and cache)
    report = Report(
        [
            run_kernel(k, cfg, numeric=numeric, numeric_options=numeric_options or None)
            for k in kernels
        ]
    )
    if not report.ok:
        raise AssertionError("\n" + to_text(report))
    return report


def sizes(kernel, *, capped: bool = True):
    """A hypothesis strategy of admissible sizes for ``kernel`` (a dict per example).

    Built from the domain: each size ranges over the bounds its single-symbol
    assumptions give (small values weighted first, as hypothesis does), the
    whole domain filters the draws, and by default so does the numeric
    executor's memory cap, so every example can also be run with
    :func:`tileproof.verify.numeric.execute`::

        @given(tileproof.testing.sizes(paged))
        def test_paged_at(sz): ...
    """
    from hypothesis import strategies as st

    from . import shapes
    from .shapes._atom import Op
    from .verify.numeric._sizes import _bounds, admissible

    def step(name: str) -> int:
        """k when the domain says ``name % k == 0``: draw multiples instead of filtering."""
        k = 1
        for f in kernel.assume:
            if isinstance(f, shapes.Cmp) and f.op == "==" and f.rhs == 0:
                atom = f.lhs.as_atom()
                if isinstance(atom, Op) and atom.kind == "mod" and atom.args[0].as_symbol() == name:
                    if atom.args[1].is_const:
                        k = math.lcm(k, atom.args[1].const_value)
        return k

    fields = {}
    for name, (lo, hi) in _bounds(kernel).items():
        k = step(name)
        fields[name] = st.integers(min_value=-(-lo // k), max_value=hi // k).map(
            functools.partial(operator.mul, k)
        )  # k * m: the multiples of k in [lo, hi]
    return st.fixed_dictionaries(fields).filter(lambda env: admissible(kernel, env, capped))
