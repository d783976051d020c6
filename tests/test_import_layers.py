"""The package's import graph: no cycles, and every layer imports only the layers below it.

Read from the source with ``ast`` (nothing is imported), counting every import, the
ones inside functions too: a lazy import still couples the two modules, and a lazy
upward import (the runner once reached ``catalog`` from inside ``verify``) is exactly
what this guards against.  The order is the one docs/architecture.md describes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tileproof"

# Bottom to top.  A layer may import the layers before it, never one after it; the
# rooms of one row are peers and import neither each other.  ``tileproof`` itself
# (``__init__.py``: the version and lazy attributes) is outside the order.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "_location"),  # the root error type; where a finding points (file, line)
    ("shapes",),  # symbolic shape arithmetic; imports no other layer
    ("spec",),  # the authoring API
    ("model",),  # the schedule model (and its interpreter): what the front ends produce
    ("lowering",),  # front end: a spec's traced body -> the model
    ("pallas",),  # front end: unmodified pallas_calls -> specs (lowered as above)
    ("report",),  # findings as data and their formats (the verifier fills them in)
    ("verify",),  # static obligations and numeric matching
    ("catalog", "fuzz", "show"),  # kernels from the field; random kernels; pictures
    ("project",),  # settings, caches, discovery, the runner and its workers
    ("cli", "pytest_plugin", "testing"),  # the front doors
]

# Upward imports that are known and owned elsewhere; each names where and why.  An
# entry that no longer matches an import must leave the list (the last test says so).
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    ("tileproof.pallas._numeric", "tileproof.verify.numeric"): (
        "the Pallas front end runs a whole function's pallas_calls through the numeric "
        "executor (function_runner, check_function: issue 12's Pallas work)"
    ),
}

# Import cycles that are known and owned elsewhere (each a set of modules); a cycle
# must lie within one of them.  Stale entries must leave the list too.
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    frozenset({"tileproof.shapes._expr", "tileproof.shapes._formula", "tileproof.shapes._parse"}): (
        "expressions and formulas parse strings through _parse, which builds them"
    ),
    # two lazy imports the production-size executor work brought in (to be moved apart)
    frozenset({"tileproof.verify.numeric._memory", "tileproof.verify.numeric._sparse"}): (
        "sorted-writes races scatter with _memory's scatter_set, which picks the sparse path"
    ),
    frozenset({"tileproof.verify.numeric._interp", "tileproof.verify.numeric._vecloop"}): (
        "batched loops word their findings with the interpreter's helpers, which run them"
    ),
}


def _modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's ``__init__``)."""
    mods = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return mods


def _imports(name: str, f: Path, is_pkg: bool, mods) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file.

    ``from X import y`` counts the submodule ``X.y`` when there is one, else ``X``
    (a name its ``__init__`` defines or re-exports).
    """
    here = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found = [
                f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names
            ]
        elif isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        else:
            continue
        out.update(m for m in found if m in mods and m != name)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, f, is_pkg, mods) for name, (f, is_pkg) in mods.items()}


def _room(module: str) -> str | None:
    """The top-level room of a module (``verify`` for ``tileproof.verify.static._race``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _rank() -> dict[str, int]:
    return {room: i for i, row in enumerate(LAYERS) for room in row}


def _upward(graph) -> list[tuple[str, str]]:
    rank = _rank()
    bad = []
    for a, targets in graph.items():
        for b in targets:
            ra, rb = _room(a), _room(b)
            if ra is None or rb is None or ra == rb:
                continue
            if rank[rb] >= rank[ra]:
                bad.append((a, b))
    return sorted(bad)


def _allowed_upward(a: str, b: str) -> bool:
    return any(a == x and (b == y or b.startswith(y + ".")) for x, y in ALLOWED_UPWARD)


def _cycles(graph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


# ------------------------------------------------------------------------------- tests


def test_every_room_has_a_place_in_the_order():
    rooms = {_room(m) for m in _graph()} - {None}
    placed = {room for row in LAYERS for room in row}
    assert rooms - placed == set(), "add the new room to LAYERS (and docs/architecture.md)"


def test_layers_import_only_downward():
    bad = [f"{a} imports {b}" for a, b in _upward(_graph()) if not _allowed_upward(a, b)]
    assert bad == []


def test_the_package_has_no_import_cycle():
    bad = [
        sorted(c) for c in _cycles(_graph()) if not any(c <= allowed for allowed in ALLOWED_CYCLES)
    ]
    assert bad == []


def test_the_lists_of_known_exceptions_are_not_stale():
    graph = _graph()
    up = _upward(graph)
    stale = [
        k for k in ALLOWED_UPWARD if not any(_allowed_upward(a, b) and a == k[0] for a, b in up)
    ]
    cycles = _cycles(graph)
    stale += [sorted(k) for k in ALLOWED_CYCLES if not any(c & k for c in cycles)]
    assert stale == [], "fixed: remove these entries from the test's lists"


# ------------------------------------------------------------- the checker on small graphs


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"a"}}, [{"a", "b"}]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [{"a", "b", "c"}]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": set()}, []),
    ],
)
def test_the_cycle_finder_finds_exactly_the_cycles(graph, expected):
    assert sorted(map(sorted, _cycles(graph))) == sorted(map(sorted, expected))


def test_an_upward_import_is_caught():
    graph = {
        "tileproof.verify._x": {"tileproof.catalog.k", "tileproof.spec._y"},
        "tileproof.catalog.k": set(),
        "tileproof.spec._y": set(),
    }
    assert _upward(graph) == [("tileproof.verify._x", "tileproof.catalog.k")]


def test_relative_and_lazy_imports_are_resolved(tmp_path):
    pkg = tmp_path / "tileproof"
    (pkg / "verify").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "verify" / "__init__.py").write_text("")
    (pkg / "verify" / "_a.py").write_text("def f():\n    from ..catalog import bugs\n")
    (pkg / "catalog" / "bugs").mkdir(parents=True)
    (pkg / "catalog" / "__init__.py").write_text("X = 1\n")
    (pkg / "catalog" / "bugs" / "__init__.py").write_text("from .. import X\n")
    mods = {
        "tileproof": (pkg / "__init__.py", True),
        "tileproof.verify": (pkg / "verify" / "__init__.py", True),
        "tileproof.verify._a": (pkg / "verify" / "_a.py", False),
        "tileproof.catalog": (pkg / "catalog" / "__init__.py", True),
        "tileproof.catalog.bugs": (pkg / "catalog" / "bugs" / "__init__.py", True),
    }
    assert _imports("tileproof.verify._a", *mods["tileproof.verify._a"], mods) == {
        "tileproof.catalog.bugs"
    }
    assert _imports("tileproof.catalog.bugs", *mods["tileproof.catalog.bugs"], mods) == {
        "tileproof.catalog"
    }
