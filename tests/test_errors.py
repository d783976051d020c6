"""One root error type, each error where it belongs, and numeric= as typed options.

- ``TileproofError`` is the root of every error tileproof raises on purpose; a setting
  error and what the executor cannot run are no longer ``SpecError``s, and the CLI's
  exit code stays 2 for each.
- ``numeric=`` is a frozen ``NumericOptions``: a dict is converted; a misspelt key, which
  used to pass silently, is a spec error naming the file:line and the valid keys.
"""

from __future__ import annotations

import dataclasses

import pytest
from test_cli import run, write

import tileproof
import tileproof.spec as tp
from tileproof import shapes
from tileproof.project import ConfigError
from tileproof.spec import NumericOptions
from tileproof.verify import _api
from tileproof.verify.numeric import NumericUnsupported


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_deliberate_error_derives_from_the_root():
    for cls in (tp.SpecError, ConfigError, NumericUnsupported, shapes.ShapeError):
        assert issubclass(cls, tileproof.TileproofError), cls
    assert issubclass(shapes.ShapeError, ValueError)  # as it always was
    # a setting or an executor limit is no error in the spec
    assert not issubclass(ConfigError, tp.SpecError)
    assert not issubclass(NumericUnsupported, tp.SpecError)
    assert str(NumericUnsupported("a grid barrier in a loop")) == "error: a grid barrier in a loop"


def test_a_numeric_run_the_executor_cannot_do_is_a_numeric_error_not_an_internal_one():
    def check_numeric(kernel, **kw):
        raise NumericUnsupported("a lanes() region closed in another scope")

    res = _api._run_numeric(_kernel(), check_numeric, {})
    assert res.status == "error" and "lanes() region" in res.message
    assert "internal error" not in res.message


def test_a_setting_error_still_exits_2_with_its_line(repo, capsys):
    write(repo / "pyproject.toml", "[tool.tileproof]\nindex-bits = 48\n")
    write(repo / "ok_spec.py", _SPEC.format(numeric=""))
    rc, out, err = run(capsys, "check", "--static", "ok_spec.py")
    assert rc == 2 and out == "" and "pyproject.toml:2: error:" in err, err


# ------------------------------------------------------------------------- numeric=

_SPEC = """\
import tileproof.spec as tp


@tp.kernel(grid={{"p": "N"}}, assume=["N <= 8"], reference=lambda x: {{"y": x}},
           tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))){numeric})
def copy(x, y):
    p = tp.program_id(0)
    tp.store(y, (p,), tp.load(x, (p,)))
"""


def _kernel(**numeric):
    @tp.kernel(
        grid={"p": "N"},
        assume=["N <= 8"],
        reference=lambda x: {"y": x},
        tensors=dict(x=tp.Input(("N",)), y=tp.Output(("N",))),
        numeric=numeric,
    )
    def copy(x, y):
        p = tp.program_id(0)
        tp.store(y, (p,), tp.load(x, (p,)))

    return copy


def test_a_misspelt_numeric_key_is_a_spec_error_at_its_line(repo, capsys):
    write(repo / "typo_spec.py", _SPEC.format(numeric=',\n           numeric={"gradient": False}'))
    rc, out, err = run(capsys, "check", "--static", "typo_spec.py")
    assert rc == 2 and out == ""
    assert "typo_spec.py:4: error: numeric= has no setting 'gradient'" in err, err
    assert "did you mean 'gradients'?" in err
    assert "Valid keys: sizes, budget, gradients, tolerances, derive, skip." in err


def test_the_correctly_spelt_twin_is_accepted_and_typed(repo, capsys):
    write(repo / "ok_spec.py", _SPEC.format(numeric=',\n           numeric={"gradients": False}'))
    rc, out, err = run(capsys, "check", "--static", "ok_spec.py")
    assert rc == 0, out + err
    k = _kernel(gradients=False, budget=1)
    assert isinstance(k.numeric, NumericOptions)
    assert k.numeric.gradients is False and k.numeric.budget == 1 and k.numeric.skip is None
    # read as the dict it replaces, over the settings given
    assert dict(k.numeric) == {"budget": 1, "gradients": False}
    assert k.numeric.get("derive") is None and "budget" in k.numeric and "sizes" not in k.numeric
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.numeric.budget = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "numeric, fragment",
    [
        ({"budget": "2"}, "must be an int >= 0"),
        ({"gradients": "no"}, "must be True or False"),
        ({"sizes": 3}, "a {size: value} dict or a list of them"),
        ({"derive": 1}, "a function derive(inputs, sizes)"),
        ({"skip": True}, "a string saying why"),
        ({"tolerances": [1e-3]}, "a dict of dtype name"),
    ],
)
def test_numeric_values_of_the_wrong_type_are_spec_errors(numeric, fragment):
    with pytest.raises(tp.SpecError) as e:
        _kernel(**numeric)
    assert fragment in str(e.value) and "test_errors.py:" in str(e.value)


def test_options_object_and_front_ends_that_pass_a_dict():
    opts = NumericOptions(sizes=[{"N": 2}], budget=0)
    assert _kernel(**dict(opts)).numeric.sizes == [{"N": 2}]
    assert opts.replace(budget=2).budget == 2 and opts.budget == 0
    k = dataclasses.replace(_kernel(), numeric={"skip": "why"})  # a dict: converted
    assert isinstance(k.numeric, NumericOptions) and k.numeric.skip == "why"
    with pytest.raises(tp.SpecError, match="no setting 'skipp'"):
        dataclasses.replace(_kernel(), numeric={"skipp": "why"})
