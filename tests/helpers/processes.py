"""shipcaptain as separate processes (CLI commands, workers) that tests can kill."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: in a child's environment: a SIGABRT then prints every thread's stack (``ended_or_stacks``)
STACKS_ON_ABORT = {"PYTHONFAULTHANDLER": "1"}


def command_lines() -> list[str]:
    """The command line of every process of the machine, its arguments joined by spaces."""
    lines = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # the process exited
    return lines


def ended_or_stacks(proc: subprocess.Popen[Any], timeout: float, what: str) -> tuple[Any, Any]:
    """``proc.communicate(timeout=...)``; a process that has not ended by then is sent
    SIGABRT, and the test fails with what it printed: with ``STACKS_ON_ABORT`` in its
    environment, every thread's stack (what a command that did not stop was doing)."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"{what} did not end within {timeout:g} s:\n{out}\n{err}") from None


class Processes:
    """The processes a test started; whatever is still running is killed afterwards."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipcaptain", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


#: seconds between two looks at a condition: the first soon, then each half as long again as
#: the one before, up to the last. A condition met at once is seen at once; a wait of seconds
#: (a heartbeat, a takeover, a deadline) looks five times a second instead of twenty, each
#: look a query of the state database or more (the polls were most of the pytest process's
#: CPU in the topology tests, and the server's for them)
FIRST_POLL, LAST_POLL = 0.02, 0.2


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, *, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it holds (``FIRST_POLL`` spacing out to ``LAST_POLL``); fail
    the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = FIRST_POLL
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{what}: not met within {timeout}s")
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, LAST_POLL)
