"""A process waiting in ``stop_signal`` stops on SIGTERM and on Ctrl-C, even when it was
started with SIGINT ignored (as from a background shell: Python then never raises
KeyboardInterrupt, and a wait without its own handler never ends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers.processes import STACKS_ON_ABORT, ended_or_stacks

WAITER = (
    "from shipcaptain.stop_signal import wait_for_stop\n"
    "wait_for_stop(ready=lambda: print('waiting', flush=True))\n"
    "print('stopped', flush=True)\n"
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_waiting_process_stops_on_its_signal(signum: signal.Signals) -> None:
    proc = subprocess.Popen(
        # SIGINT ignored, as by a background shell, then the waiter in its place
        ["sh", "-c", 'trap "" INT; exec "$0" -c "$1"', sys.executable, WAITER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **STACKS_ON_ABORT},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "waiting\n"
    proc.send_signal(signum)
    out, err = ended_or_stacks(proc, 10, f"a process waiting for its stop, after {signum.name}")
    assert (proc.returncode, out) == (0, "stopped\n"), err
