"""Waiting in a process's main thread for the signal that stops it (SIGTERM, Ctrl-C).

A plain attribute set by the handler and polled by the main thread, never a
``threading.Event``: a handler runs in the main thread between two of its bytecodes, and
``Event.set`` takes the lock that ``Event.wait`` holds around its own wait, so a signal
landing there would wait for itself forever: the process never stops. A worker once did
not stop within 60 s of its SIGTERM under a loaded suite (this rules that cause out; it
was not shown to be it). The worker, the sandbox's servers and the demo's dashboard wait
this way.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType

#: seconds between two looks at the flag: how late a stop may be noticed
NAP = 0.1


class StopRequested:
    """Whether one of the signals it handles asked this process to stop."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def handle(self, *signals: signal.Signals) -> StopRequested:
        """Become the handler of ``signals`` (call it from the main thread)."""
        for signum in signals:
            signal.signal(signum, self)
        return self

    def wait(self, nap: float = NAP) -> None:
        """Return once a stop was requested (within ``nap`` seconds of it)."""
        while not self.requested:
            time.sleep(nap)


def wait_for_stop(ready: Callable[[], object] | None = None) -> None:
    """Handle SIGTERM and SIGINT (a process started in the background inherits an ignored
    SIGINT, and Python then never raises KeyboardInterrupt), call ``ready`` (a signal sent
    from then on is not missed), and return when one comes."""
    stop = StopRequested().handle(signal.SIGTERM, signal.SIGINT)
    if ready is not None:
        ready()
    stop.wait()
