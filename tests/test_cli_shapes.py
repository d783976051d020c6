"""`tileproof shapes prove|bounds`: the shell contract of docs/contracts.md (JSON shape and exit codes)."""

import json

import pytest

from tileproof import shapes
from tileproof.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_prove_refuted_json_exit_1_with_a_valid_counterexample(capsys):
    code, out, _ = run(capsys, "shapes", "prove", "B*S // 64 * 64 == B*S", "--format", "json")
    assert code == 1
    d = json.loads(out)
    assert d["verdict"] == "refuted" and set(d) == {"verdict", "counterexample"}
    ce = d["counterexample"]
    assert (ce["B"] * ce["S"]) // 64 * 64 != ce["B"] * ce["S"]


def test_prove_proved_kernel_query_exit_0(capsys):
    assume = ["H % 16 == 0", "b <= B - 1", "q <= cdiv(H, 16) - 1", "b >= 0", "q >= 0"]
    args = ["shapes", "prove", "b*H + q*16 + 16 <= B*H"]
    for a in assume:
        args += ["--assume", a]
    code, out, _ = run(capsys, *args, "--format", "json")
    assert code == 0 and json.loads(out) == {"verdict": "proved", "counterexample": None}


def test_prove_inconsistent_exit_1(capsys):
    code, out, _ = run(
        capsys, "shapes", "prove", "a >= b", "--assume", "a <= 0", "--format", "json"
    )
    assert code == 1 and json.loads(out)["verdict"] == "inconsistent"


def test_bounds_json(capsys):
    code, out, _ = run(capsys, "shapes", "bounds", "max(15 - a, 0) // 3", "--format", "json")
    assert code == 0 and json.loads(out) == {"lower": 0, "upper": 4}
    code, out, _ = run(capsys, "shapes", "bounds", "--format", "json", "--", "-a")
    assert json.loads(out) == {"lower": None, "upper": -1}


def test_jax_constraint_spellings_paste_in(capsys):
    code, out, _ = run(capsys, "shapes", "prove", "b == 4 * (b // 4)", "--assume", "mod(b, 4) == 0")
    assert code == 0 and out.strip() == "proved"


@pytest.mark.parametrize("bad", ["a +* 2", "a / 2", "foo(a) == 1"])
def test_malformed_input_exit_2_names_the_column(capsys, bad):
    code, _, err = run(capsys, "shapes", "prove", bad)
    assert code == 2 and "column" in err and "Traceback" not in err


def test_text_output_matches_the_api(capsys):
    d = shapes.prove("a >= 2")
    code, out, _ = run(capsys, "shapes", "prove", "a >= 2")
    assert code == 1 and out.startswith("refuted: a=") and d.counterexample == {"a": 1}
