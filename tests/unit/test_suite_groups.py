"""The suite's own distribution: tests that share a slow fixture run in one pytest-xdist
process (``tests/conftest.py``). Without it a module's shared fixture (a PostgreSQL cluster,
a browser, a Prometheus) starts in every process that gets one of its tests; pytest 9.2
with pytest-xdist 3.8 silently ignored every group until the conftest named them itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
GROUPED = "tests/unit/test_workflow_dispatch_files.py"  # a module-scoped fixture


def test_a_modules_shared_fixture_keeps_its_tests_in_one_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-v", "-p", "no:cacheprovider", GROUPED],
        cwd=TESTS.parent,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    ran = re.findall(rf"\[(gw\d+)\] .*PASSED {re.escape(GROUPED)}::\S+@(\S+)", done.stdout)
    assert len(ran) >= 10, done.stdout[-3000:]
    assert {group for _, group in ran} == {GROUPED}
    assert len({process for process, _ in ran}) == 1, ran
