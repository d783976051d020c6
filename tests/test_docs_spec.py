"""Every example of ``docs/spec.md`` runs as written and its verdicts hold.

Each fenced ``python`` block is executed in a fresh namespace from a module
file of its own (tileproof reads source lines for its locations), so a doc
example that stops verifying, or no longer runs, fails here.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_one_example_per_construct():
    text = "\n".join(BLOCKS)
    for name in (
        "tp.kernel",
        "tp.Input",
        "tp.Output",
        "tp.Scratch",
        "tp.ds",
        "tp.load",
        "tp.store",
        "mask=",
        "values=",
        "distinct=True",
        "enumerates=",
        "tp.barrier",
        "tp.Launch",
        "tp.when",
        "tp.lanes",
        "tp.lane_part",
        "tp.Ranks",
        "tp.sendrecv",
        "tp.fold",
        "updated=True",
        "index_bits=",
        "numeric=",
        "reduced=",
        "writes=",
    ):
        assert name in text, f"docs/spec.md has no runnable example using {name}"


@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_example_runs_and_verifies(k, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the proof cache of the examples stays out of the checkout
    path = tmp_path / f"doc_example_{k}.py"
    path.write_text(BLOCKS[k])
    runpy.run_path(str(path), run_name=f"doc_example_{k}")
