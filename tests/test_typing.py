"""mypy on the public API (issue 11): ``py.typed`` is shipped, so the types a user sees must hold.

The configuration is ``[tool.mypy]`` in pyproject.toml: the modules a user imports are
checked (with ``check_untyped_defs``: unannotated bodies too), the rest of the package is
followed silently.  The run is cold (a fresh cache directory), as CI's is, so a stale cache
cannot hide an error; it takes a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_clean_on_public_api(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mypy failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Success: no issues found" in proc.stdout, proc.stdout


def test_mypy_config_covers_the_public_api() -> None:
    """The checked files are the public API: a new public module must be added there."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert conf["python_version"] == "3.10"
    assert conf["follow_imports"] == "silent"
    for public in (
        "tileproof/__init__.py",
        "tileproof/errors.py",
        "tileproof/_location.py",
        "tileproof/testing.py",
        "tileproof/shapes",
        "tileproof/spec",
        "tileproof/model",
        "tileproof/report",
        "tileproof/project",
    ):
        assert public in conf["files"], public
        assert (ROOT / public).exists(), public
    # ... and the bodies of their unannotated functions are checked too
    strict = [o for o in conf["overrides"] if o.get("check_untyped_defs")]
    modules = {m for o in strict for m in o["module"]}
    for public in (
        "tileproof",
        "tileproof.errors",
        "tileproof._location",
        "tileproof.testing",
        "tileproof.shapes.*",
        "tileproof.spec.*",
        "tileproof.model.*",
        "tileproof.report.*",
        "tileproof.project.*",
    ):
        assert public in modules, public


# ------------------------------------------------------------ what the type check found


def test_status_does_not_need_strenum() -> None:
    """``enum.StrEnum`` is Python 3.11+; the package supports 3.10.  Import the status
    vocabulary with ``StrEnum`` removed, as on 3.10, and check it still reads as its word."""
    code = (
        "import enum, json\n"
        "del enum.StrEnum\n"
        "from tileproof.report._status import Status\n"
        "s = Status.PROVED\n"
        "assert s == 'proved' and str(s) == 'proved' and f'{s}' == 'proved', s\n"
        "assert f'{s:>8}' == '  proved' and json.dumps(s) == '\"proved\"'\n"
        "assert Status('unknown') is Status.UNKNOWN and isinstance(s, str)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_prove_with_assumptions_emptied_in_the_last_round() -> None:
    """Fact preparation runs at most 16 rounds; when the 16th emptied the facts (a chain
    of 16 equalities that closes into a contradiction) it crashed with a TypeError.  The
    same chain one link shorter or longer decides, so the twin checks stay as they were."""
    from tileproof import shapes

    def chain(n: int, close: int) -> list[shapes.Formula]:
        a = [shapes.sym(f"a{i}") for i in range(n + 1)]
        facts = [shapes.eq(a[i], 2 * a[i + 1] + 1) for i in range(n)]
        return [*facts, shapes.eq(a[n], close * a[0] + 5)]

    for n in (15, 16, 17):
        d = shapes.prove(shapes.lt(shapes.sym("a0"), 0), chain(n, 3))
        assert "inconsistent" in str(d), (n, d)
    # the consistent twin, the same chain left open: a0 >= 2**16 - 1 follows from the
    # default lower bound a16 >= 1 through every link (a0 = 2**16 * a16 + 2**16 - 1)
    a = [shapes.sym(f"a{i}") for i in range(17)]
    twin = [shapes.eq(a[i], 2 * a[i + 1] + 1) for i in range(16)]
    d = shapes.prove(shapes.ge(a[0], 2**17 - 1), twin)
    assert d.verdict == "proved" and "inconsistent" not in str(d), d
    d = shapes.prove(shapes.ge(a[0], 2**17), twin)
    assert d.verdict == "refuted" and d.counterexample["a0"] == 2**17 - 1, d


def test_parse_expr_and_formula_reject_the_other_kind() -> None:
    from tileproof import shapes
    from tileproof.shapes._parse import parse_expr, parse_formula

    assert str(parse_expr("n + 4")) == "n + 4"
    assert str(parse_formula("n < 4")) == "n < 4"
    for fn, text in ((parse_expr, "n < 4"), (parse_formula, "n + 4")):
        try:
            fn(text)
        except shapes.ShapeError:
            continue
        raise AssertionError(f"{fn.__name__}({text!r}) accepted the other kind")


def test_work_table_reads_must_be_a_mapping() -> None:
    """``reads=`` not a mapping was a bare TypeError from ``dict(...)``; it is a spec error
    naming the argument.  A dict, a list of pairs and a re-built declaration still work."""
    import dataclasses

    from tileproof.spec import Input, SpecError

    try:
        Input(("N",), "int32", values="0 <= v < 8", enumerates="v < 4", reads=5)
    except SpecError as e:
        assert "reads=" in str(e)
    else:
        raise AssertionError("reads=5 was accepted")
    for reads in ({"s": ("lens", 0)}, [("s", ("lens", 0))]):
        t = Input(("N",), "int32", values="0 <= v < 8", enumerates="v < s", reads=reads)
        assert t.read_map == {"s": ("lens", (shapes_const(0),))}
        assert dataclasses.replace(t, index_bits=64).read_map == t.read_map


def shapes_const(k: int):
    from tileproof import shapes

    return shapes.as_expr(k)
