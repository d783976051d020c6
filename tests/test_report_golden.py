"""Golden files for the catalog's diagnostics: the text of ``tileproof check --static`` on
each defect variant of ``tileproof.catalog.bugs``, under ``tests/golden/<variant>.txt``.

A change to any message, counterexample, code or hint of the catalog shows here as a
diff.  Refresh on purpose with ``pytest tests/test_report_golden.py --update-golden`` (or
``TILEPROOF_UPDATE_GOLDEN=1``) and review ``git diff tests/golden``.  The table's time
column is the one thing normalised (``<time>``); locations print relative to the
repository root.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tileproof.catalog import bugs

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"

# The texts come from one fresh process that verifies the variants in their catalog order.
# Each kernel's report no longer depends on what the process verified before (a fresh z3
# context and empty decision caches per kernel, tests/test_report_determinism.py); the
# subprocess keeps the suite's own imports and settings out of the texts.
_SCRIPT = """
import json, re, sys
from tileproof.catalog import bugs
from tileproof.report import Report, to_text
from tileproof.verify import verify_kernel

out = {}
for v in bugs.VARIANTS:
    text = to_text(Report([verify_kernel(v)]))  # as `check --static`, no proof cache
    out[v.name] = re.sub(r"(?m) +\\d+\\.\\d\\ds  (ok|FAIL|error)$", r"  <time>  \\1", text) + "\\n"
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TILEPROOF_DEBUG": ""}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("variant", bugs.VARIANTS, ids=lambda k: k.name)
def test_variant_diagnostics_match_the_golden_file(variant, texts, update_golden):
    got = texts[variant.name]
    path = GOLDEN / f"{variant.name}.txt"
    if update_golden:
        path.write_text(got)
    assert path.exists(), f"no golden file {path.name}: run with --update-golden"
    assert got == path.read_text(), f"{path.name} differs: rerun with --update-golden and review"


def test_every_golden_file_belongs_to_a_variant():
    assert {p.stem for p in GOLDEN.glob("*.txt")} == {v.name for v in bugs.VARIANTS}


def test_the_golden_files_carry_codes_and_kernel_names():
    text = (GOLDEN / "decode_zero_splits.txt").read_text()
    first = text.splitlines()[0]
    assert re.search(r"\(in kernel decode_zero_splits\)  \[TP101\]$", first), first
    # a zero divisor reported once, its other sites as duplicates (not "skipped")
    assert "shape: duplicate (13 obligations): the same zero divisor NS" in text
