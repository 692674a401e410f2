"""The order in which the suite hands its tests to pytest-xdist's processes (see
``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: the part of the run the waiting tests are spread over (after it: quick tests only, so that
#: no long test starts last)
_SPREAD_OVER = 0.8


def spread_out(items: list[Any], waits: Callable[[Any], bool]) -> list[Any]:
    """The ungrouped tests of each file spread evenly over the run (the tests that mostly
    wait over its first part), groups first. In the files' order, a file's tests that wait
    the same way (the takeovers of ``test_topology.py``, the rehearsals) ran side by side in
    every process while the cores idled, and the unit tests came together at the end, five
    processes sharing two cores: the cores idled 95-110 s of a run in the files' order, 59-99 s
    spread (``benchmarks/suite_cpu.py``; see benchmarks/README.md)."""
    grouped = [i for i in items if i.get_closest_marker("xdist_group") is not None]
    rest = [i for i in items if i.get_closest_marker("xdist_group") is None]
    by_file: dict[str, list[Any]] = {}
    for item in rest:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    place: dict[str, float] = {}
    for tests in by_file.values():
        for rank, item in enumerate(tests):
            share = (rank + 0.5) / len(tests)
            place[item.nodeid] = share * _SPREAD_OVER if waits(item) else share
    return grouped + sorted(rest, key=lambda item: place[item.nodeid])
