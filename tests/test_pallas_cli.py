"""`tileproof check` discovers tp.pallas specs like native ones: text, JSON, exit codes, lines."""

from __future__ import annotations

import json
import os
import textwrap

from tileproof import cli

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = '''\
"""A spec module naming an unmodified Pallas function."""
import functools
import sys

sys.path.insert(0, {specs!r})
import pallas_small as ps  # noqa: E402

import tileproof as tp  # noqa: E402

scale = tp.pallas(functools.partial(ps.scale, grid={grid!r}), args=[tp.Arg(("N",))],
                  assume=["N <= 2**20"], reference=lambda x: 2 * x, name="scale")
'''


def _write(tmp_path, grid):
    p = tmp_path / f"spec_{grid}.py"
    p.write_text(textwrap.dedent(SPEC.format(specs=os.path.join(HERE, "specs"), grid=grid)))
    return str(p)


def test_check_json_reports_the_kernels_line(tmp_path, capsys):
    rc = cli.main(["check", _write(tmp_path, "floor"), "--static", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    (k,) = out["kernels"]
    assert k["name"] == "scale"
    (cov,) = [o for o in k["obligations"] if o["kind"] == "coverage" and o["status"] == "violated"]
    assert "pallas_small.py" in cov["location"] and cov["counterexample"]["N"] < 128


def test_check_passes_the_correct_twin(tmp_path, capsys):
    rc = cli.main(["check", _write(tmp_path, "cdiv"), "--static"])
    assert rc == 0, capsys.readouterr().out


def test_lower_prints_the_schedule(tmp_path, capsys):
    rc = cli.main(["lower", _write(tmp_path, "cdiv") + ":scale"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "load  x_ref[ds(128*pid0, 128)]  mask _c0 + 128*pid0 < N" in text
