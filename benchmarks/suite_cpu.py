"""Where the test suite's CPU goes: a pytest plugin that records, per test, its wall time,
the CPU of the pytest process and the CPU of the processes it started and waited for
(``resource.getrusage`` RUSAGE_SELF / RUSAGE_CHILDREN deltas), and a report by file.

Record (one JSON line per test, a file per pytest process)::

    PYTHONPATH=benchmarks SUITE_CPU_OUT=/tmp/suite-cpu .venv/bin/python -m pytest -p suite_cpu

Report (top files and tests by CPU)::

    python benchmarks/suite_cpu.py /tmp/suite-cpu [--top 15]

A server a module-scoped fixture starts is counted in the test that ends the module; the
shared PostgreSQL server (not a child) is not counted at all. The report ends with the whole
machine's CPU over the run (``/proc/stat``): busy, idle, and the time the host gave other
guests (steal), which makes the same code's figures differ between runs and machines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections import defaultdict
from pathlib import Path
from typing import IO, Any

_out: IO[str] | None = None


def _now() -> tuple[float, float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        time.monotonic(),
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
    )


def _machine() -> dict[str, float] | None:
    """The whole machine's CPU time so far (``/proc/stat``), in seconds: busy, idle and
    stolen (what the hypervisor gave other guests: a run with much of it ran slower)."""
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) / tick for v in line.split()[1:9]
    )
    return {
        "wall": time.monotonic(),
        "busy": user + nice + system + irq + softirq,
        "idle": idle + iowait,
        "steal": steal,
    }


_machine_at_start: dict[str, float] | None = None


def _write(record: dict[str, Any]) -> None:
    global _out  # noqa: PLW0603 - one file per pytest process
    if _out is None:
        folder = Path(os.environ.get("SUITE_CPU_OUT", "suite-cpu"))
        folder.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _out = (folder / f"{worker}-{os.getpid()}.jsonl").open("a", buffering=1)
    _out.write(json.dumps(record) + "\n")


try:
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        at = time.time()
        before = _now()
        yield
        after = _now()
        wall, own, children = (a - b for a, b in zip(after, before, strict=True))
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        record = {"id": item.nodeid, "wall": wall, "self": own, "child": children}
        _write({**record, "at": at, "worker": worker})

    def pytest_sessionstart(session: pytest.Session) -> None:
        global _machine_at_start  # noqa: PLW0603 - the run's start, in the main process
        if "PYTEST_XDIST_WORKER" not in os.environ:
            _machine_at_start = _machine()

    def pytest_sessionfinish(session: pytest.Session) -> None:
        if _machine_at_start is not None and (end := _machine()) is not None:  # main process
            spent = {k: end[k] - _machine_at_start[k] for k in end}
            _write({"machine": spent, "cores": os.cpu_count()})
        if _out is not None:
            _out.close()

except ImportError:  # the report needs no pytest
    pass


def report(folder: Path, top: int) -> None:
    tests = [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if '"id"' in line
    ]
    own = sum(t["self"] for t in tests)
    children = sum(t["child"] for t in tests)
    print(f"{len(tests)} tests: CPU {own + children:.0f} s", end=" ")
    print(f"(pytest {own:.0f} s, children {children:.0f} s)")
    files: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0])
    for t in tests:
        f = files[t["id"].split("::")[0]]
        f[0] += 1
        f[1] += t["self"]
        f[2] += t["child"]
        f[3] += t["wall"]
        f[4] = max(f[4], t["wall"])
    print(f"\n{'file':58} {'tests':>5} {'cpu s':>6} {'own':>6} {'child':>6} {'longest':>7}")
    for name, (n, o, c, _wall, longest) in sorted(
        files.items(), key=lambda kv: -(kv[1][1] + kv[1][2])
    )[:top]:
        print(f"{name:58} {int(n):5} {o + c:6.1f} {o:6.1f} {c:6.1f} {longest:7.1f}")
    timeline(tests)
    machine(folder)
    print(f"\n{'test (longest wall)':90} {'wall':>6} {'cpu':>6}")
    for t in sorted(tests, key=lambda t: -t["wall"])[:top]:
        print(f"{t['id'][:90]:90} {t['wall']:6.1f} {t['self'] + t['child']:6.1f}")


def machine(folder: Path) -> None:
    """The machine's CPU over the whole run, from the main process's record: the same
    code runs slower on a busier or slower machine, and steal says how much the host took."""
    for path in sorted(folder.glob("main-*.jsonl")):
        for line in path.read_text().splitlines():
            if '"machine"' not in line:
                continue
            record = json.loads(line)
            spent, cores = record["machine"], record["cores"]
            print(
                f"\nthe machine over the run: {cores} cores x {spent['wall']:.0f} s;"
                f" busy {spent['busy']:.0f} s, idle {spent['idle']:.0f} s,"
                f" stolen by the host {spent['steal']:.0f} s"
            )


def timeline(tests: list[dict[str, Any]]) -> None:
    """When each pytest process ran its first and last test: a process that finished long
    before the last one idled (the run's tail), and the test that ended it."""
    timed = [t for t in tests if "at" in t]
    if not timed:
        return
    zero = min(t["at"] for t in timed)
    ends: dict[str, dict[str, Any]] = {}
    for t in timed:
        last = ends.get(t["worker"])
        if last is None or t["at"] + t["wall"] > last["at"] + last["wall"]:
            ends[t["worker"]] = t
    finish = max(t["at"] + t["wall"] for t in timed) - zero
    print(f"\nthe run's tests took {finish:.0f} s; each process's last test:")
    for worker, t in sorted(ends.items()):
        end = t["at"] + t["wall"] - zero
        print(f"  {worker:6} ended at {end:6.0f} s (idle {finish - end:4.0f} s): {t['id'][:80]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    report(args.folder, args.top)
