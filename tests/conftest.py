"""Shared pytest options of the test suite.

``--update-golden`` (or ``TILEPROOF_UPDATE_GOLDEN=1``) rewrites the golden files under
``tests/golden/`` from the current output instead of comparing with them; review the
diff (``git diff tests/golden``) before committing it.
"""

import os

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/* from the current output (then review the diff)",
    )


@pytest.fixture
def update_golden(request) -> bool:
    return bool(
        request.config.getoption("--update-golden") or os.environ.get("TILEPROOF_UPDATE_GOLDEN")
    )
