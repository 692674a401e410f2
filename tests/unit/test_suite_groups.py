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
from typing import Any

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


class _Item:
    """What :func:`conftest.spread_out` reads of a test."""

    def __init__(self, nodeid: str, group: bool = False) -> None:
        self.nodeid = nodeid
        self.group = group

    def get_closest_marker(self, name: str) -> object | None:
        return object() if self.group and name == "xdist_group" else None


def test_each_files_tests_are_spread_over_the_run_and_groups_stay_first() -> None:
    from helpers.suite_order import spread_out

    unit = [_Item(f"tests/unit/test_a.py::t{n}") for n in range(8)]
    slow = [_Item(f"tests/acceptance/test_b.py::t{n}") for n in range(4)]
    group = [_Item(f"tests/web/test_c.py::t{n}", group=True) for n in range(3)]
    items: list[Any] = [*group, *slow, *unit]
    order = spread_out(items, lambda item: item.nodeid.startswith("tests/acceptance/"))
    assert sorted(i.nodeid for i in order) == sorted(i.nodeid for i in items)  # each once
    assert order[:3] == group
    rest = [i.nodeid.split("::")[0].split("/")[1] for i in order[3:]]
    # the acceptance tests among the unit tests, not together; none after 80 % of the run
    assert rest == ["unit", "acceptance", "unit", "acceptance", "unit", "unit", "acceptance",
                    "unit", "unit", "acceptance", "unit", "unit"]  # fmt: skip
    assert [i.nodeid for i in order if i in slow] == [i.nodeid for i in slow]  # their order
