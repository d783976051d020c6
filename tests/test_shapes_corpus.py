"""Every case of the JAX shape corpus gets its true answer from tileproof.shapes.

The corpus (``tests/data/jax_shape_cases.json``, its provenance in its own
``about`` field) comes from JAX's own symbolic-shape tests
(``tests/shape_poly_test.py`` and ``docs/export/shape_poly.md`` of jax-ml/jax).  JAX's dimension variables are always ``>= 1``, while
tileproof lets an assumption ``m >= 0`` declare ``m``'s domain; so a case
that states such a literal lower bound is run with the ``m >= 1`` JAX implies
(:func:`jax_semantics`).  That changes the answer of 8 cases (143-145,
192-196), whose corpus truth assumes ``m >= 1``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tileproof import shapes
from tileproof.shapes._context import lower_bound_decl

CORPUS = Path(__file__).resolve().parent / "data" / "jax_shape_cases.json"

# Cases tileproof answers "unknown" (allowed by the issue, listed explicitly).  None today.
KNOWN_GAPS: set[int] = set()

WANT = {
    "always": "proved",
    "never": "refuted",
    "depends": "refuted",
    "inconsistent": "inconsistent",
}


def _load() -> list[dict]:
    if not CORPUS.exists():
        raise FileNotFoundError(
            f"the shape corpus is missing: {CORPUS} (it ships in the repository's tests/data)"
        )
    return json.loads(CORPUS.read_text())["cases"]


CASES = _load()


def jax_semantics(case: dict) -> list[str]:
    """The assumptions, plus ``NAME >= 1`` for each name given a literal lower bound."""
    declared = {
        d[0]
        for a in case["assume"]
        if (d := lower_bound_decl(shapes.coerce_formula(a))) is not None
    }
    return [*case["assume"], *(f"{s} >= 1" for s in sorted(declared))]


def test_corpus_is_whole():
    assert len(CASES) == 250
    assert {c["kind"] for c in CASES} == {"eval", "prove", "bounds"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['id']}-{c['kind']}")
def test_case(case):
    assume = jax_semantics(case)
    if case["kind"] == "eval":
        assert shapes.parse_expr(case["query"]).evaluate(case["env"]) == case["truth"]
        return
    if case["kind"] == "bounds":
        assert list(shapes.bounds(case["query"], assume)) == case["truth"]
        return
    d = shapes.prove(case["query"], assume)
    if case["id"] in KNOWN_GAPS:
        assert d.verdict == "unknown"
        return
    assert d.verdict == WANT[case["truth"]], d
    if d.verdict == "refuted":
        env = d.counterexample
        assert all(shapes.coerce_formula(a).evaluate(env) for a in case["assume"])
        if d.reason.startswith("division by zero"):
            with pytest.raises(ZeroDivisionError):
                shapes.coerce_formula(case["query"]).evaluate(env)
        else:
            assert not shapes.coerce_formula(case["query"]).evaluate(env)
    else:
        assert d.counterexample is None
