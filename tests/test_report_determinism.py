"""A kernel's report is a function of the kernel alone.

z3 numbers the terms of a context in creation order and orders its rewriting and search
by those numbers, and the decision caches keep what earlier questions left behind: so a
counterexample used to depend on what the process had verified before (the catalog's
``decode_split_k_floor_pages`` gave ``MAXLEN=65, M=2`` alone and ``MAXLEN=70, M=64``
after ``paged_attention``).  The verifier now starts every kernel from a fresh z3 context
and empty decision caches (``shapes._decide.forget_history``).

Checked here: the text and JSON of a report are identical alone, after other kernels, and
in two processes with different ``PYTHONHASHSEED`` (set and dict orders of strings), for
the static report and for a numeric run (its condition points come from the solver).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tileproof.catalog import bugs
from tileproof.catalog.paged_attention import paged_attention
from tileproof.report import Report, to_text
from tileproof.verify import verify_kernel

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {v.name: v for v in bugs.VARIANTS}


def _stable(report: Report) -> tuple[str, str]:
    """Text and JSON with the one thing that may differ run to run (times) normalised."""
    text = re.sub(r" +\d+\.\d+s ", " <time> ", to_text(report))

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("timings", "seconds")}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return text, json.dumps(strip(report.to_json()), sort_keys=True)


_SCRIPT = """
import json, re, sys
sys.path.insert(0, {root!r})
from tests.test_report_determinism import _stable, _kernel
from tileproof.report import Report
from tileproof.verify import verify_kernel

*before, name, numeric = sys.argv[1:]
for b in before:
    verify_kernel(_kernel(b))
text, js = _stable(Report([verify_kernel(_kernel(name), numeric=numeric == "numeric")]))
json.dump([text, js], sys.stdout)
"""


def _kernel(name: str):
    return paged_attention if name == "paged_attention" else VARIANTS[name]


def _fresh(args: list[str], seed: int) -> tuple[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONHASHSEED": str(seed),
        "TILEPROOF_DEBUG": "",
    }
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(root=str(ROOT)), *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text, js = json.loads(done.stdout)
    return text, js


def test_a_counterexample_is_the_same_alone_and_after_another_kernel_in_this_process():
    v = VARIANTS["decode_split_k_floor_pages"]
    first = _stable(Report([verify_kernel(v)]))
    verify_kernel(paged_attention)  # left terms and decisions behind that changed the model
    again = _stable(Report([verify_kernel(v)]))
    assert first == again
    assert "violated" in first[1]


@pytest.mark.parametrize(
    "name, numeric",
    [("decode_split_k_floor_pages", "static"), ("decode_zero_splits", "numeric")],
)
def test_a_report_is_the_same_alone_after_others_and_under_another_hash_seed(name, numeric):
    alone = _fresh([name, numeric], seed=1)
    after = _fresh(["paged_attention", "decode_offsets_int32", name, numeric], seed=2)
    assert alone[0] == after[0], "the text differs"
    assert alone[1] == after[1], "the JSON differs"
    if numeric == "static":  # and this process, whatever the suite ran before, agrees
        assert _stable(Report([verify_kernel(VARIANTS[name])])) == alone
    report = json.loads(alone[1])["kernels"][0]
    assert any(o["status"] == "violated" for o in report["obligations"])
    if numeric == "numeric":
        assert report["numeric"]["conditions"], "a numeric run lists its conditions"
