"""Sizes, grid axes and the rank name are one namespace: clashes and reserved names are
spec errors (one paragraph naming the file and line and what to rename), never a vacuous
or confused proof.  Distinct, ordinary names stay accepted."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from _helpers import line_of

import tileproof.spec as tp
from tileproof.lowering import lower
from tileproof.verify.static import check_static


def _copy(grid, sizes=("N",), **kw):
    def deco():
        @tp.kernel(  # MARK-decl: a spec error names the decorator's line
            grid=grid,
            assume=[f"{s} <= 64" for s in sizes],
            tensors=dict(x=tp.Input((sizes[0],)), y=tp.Output((sizes[0],))),
            **kw,
        )
        def copy(x, y):
            i = tp.program_id(0)
            tp.store(y, (tp.ds(i, 1),), tp.load(x, (tp.ds(i, 1),)))

        return copy

    return deco


@pytest.mark.parametrize(
    "grid, sizes, what",
    [
        ({"N": "N"}, ("N",), "grid axis 'N' has the name of a size"),
        ({"M": "N"}, ("N", "M"), "grid axis 'M' has the name of a size"),
        ({"i": "_c0"}, ("_c0",), "size '_c0' is a reserved name"),
        ({"_c0": "N"}, ("N",), "grid axis '_c0' is a reserved name"),
        ({"i": "N__2"}, ("N__2",), "size 'N__2' is a reserved name"),
        (("N",), ("pid0",), "grid axis 'pid0' has the name of a size"),
    ],
)
def test_clashing_or_reserved_names_are_spec_errors(grid, sizes, what):
    with pytest.raises(tp.SpecError) as e:
        _copy(grid, sizes)()
    msg = str(e.value)
    assert what in msg and f"test_spec_names.py:{line_of(__file__, 'MARK-decl')}" in msg
    assert "Rename" in msg and "\n" not in msg


def test_distinct_names_are_accepted_and_proved():
    k = _copy({"i": "N"})()
    assert all(o.status == "proved" for o in check_static(lower(k)))


def test_rank_name_clashing_with_a_size():
    with pytest.raises(tp.SpecError) as e:
        _copy({"i": "n"}, ("n", "r"), ranks=tp.Ranks(size="n", name="r"))()
    assert "rank name 'r' is also a size" in str(e.value)


def test_rank_axis_must_have_the_rank_count_as_extent():
    with pytest.raises(tp.SpecError) as e:
        _copy({"r": "N"}, ("N", "n"), ranks=tp.Ranks(size="n", name="r"))()
    assert "differs from the rank count" in str(e.value)
    _copy({"r": "n"}, ("n",), ranks=tp.Ranks(size="n", name="r"))()  # the rank axis itself


def test_size_named_v_next_to_a_value_range():
    with pytest.raises(tp.SpecError) as e:

        @tp.kernel(
            grid={"i": 1},
            assume=["v <= 8"],
            tensors=dict(t=tp.Input(("v",), "int32", values="0 <= v < 4")),
        )
        def k(t):
            tp.load(t, (0,))

    assert "'v' stands for an element of t" in str(e.value)


def test_tensor_names_with_underscores_give_ordinary_data_symbols():
    """A table named `_tab__x` is read into a data symbol the verifier does not mistake for
    a coordinate or a second program's name (the read stays bounded by its range)."""

    @tp.kernel(
        grid={"b": "B"},
        assume=["B <= 64", "P <= 64"],
        tensors=dict(
            _tab__x=tp.Input(("B",), "int32", values="0 <= v < P"),
            pages=tp.Input(("P*4",)),
            o=tp.Output(("B*4",)),
        ),
    )
    def k(_tab__x, pages, o):
        b = tp.program_id(0)
        page = tp.load(_tab__x, (b,))
        tp.store(o, (tp.ds(b * 4, 4),), tp.load(pages, (tp.ds(page * 4, 4),)))

    m = lower(k)
    (d,) = m.data
    assert not d.startswith("_") and "__" not in d
    assert all(o.status == "proved" for o in check_static(m)), m.listing()


def test_cli_reports_a_name_clash_with_exit_2(tmp_path):
    spec = tmp_path / "clash_spec.py"
    spec.write_text(
        textwrap.dedent("""
        import tileproof.spec as tp

        @tp.kernel(grid={"N": "N"}, tensors=dict(o=tp.Output(("N",))))
        def k(o):
            tp.store(o, (tp.program_id(0),), 1.0)
    """)
    )
    r = subprocess.run(
        [sys.executable, "-m", "tileproof.cli", "check", "--static", str(spec)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "clash_spec.py:4" in r.stderr and "grid axis 'N'" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr
