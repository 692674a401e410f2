"""The log of a running try, kept where the pages can read it while the step runs.

An action reports each line of its output through ``ctx.progress``; the engine keeps the
last lines (as many as the shell action keeps for the finished step, and as many
characters) and writes them, with the newest line as the summary, into the running try's
record at most every ``THROTTLE`` seconds. A line that arrives sooner is written at the end
of that interval (by the process's one timer thread: a timer thread of each try's own cost
its start and end, ~0.13 ms of CPU, on every step whose first line came within the
interval, i.e. nearly all), so the last lines before a quiet spell are not held back until
the next line comes. The try's final write (its result) replaces both.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log_ = logging.getLogger("shipcaptain.engine")

#: at most one write of a running try per this many seconds
THROTTLE = 0.5
#: the lines kept of a running try (the shell action keeps as many of a finished one)
KEEP_LINES = 200
KEEP_CHARS = 16 * 1024
SUMMARY_CHARS = 300


class _Timer:
    """The one thread that writes every try's held-back lines when their interval ends,
    started when first needed (and again if it ever ended)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, LiveLog]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, log: LiveLog) -> None:
        """Flush ``log`` at the monotonic time ``when``."""
        with self._wake:
            heapq.heappush(self._due, (when, next(self._order), log))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="livelog", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while True:
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    if wait is not None and wait <= 0:
                        break
                    self._wake.wait(wait)
                log = heapq.heappop(self._due)[2]
            try:
                log._flush()
            except Exception:  # a failed write of live output: the try's result follows
                log_.warning("writing a running try's output failed", exc_info=True)


_TIMER = _Timer()


class LiveLog:
    """The kept lines of one running try and when they were last written.

    ``write(summary, detail)`` stores them; it is called from the action's thread or from
    the timer's, never from both at once."""

    def __init__(self, write: Callable[[str, str], None], redact: Callable[[str], str]) -> None:
        self._write = write
        self._redact = redact
        self._lines: deque[str] = deque(maxlen=KEEP_LINES)
        self._lock = threading.Lock()
        self._written_at = time.monotonic()
        self._pending = False
        self._timed = False  # a flush is due on the timer
        self._closed = False

    def add(self, line: str) -> None:
        """One line of output (the action redacted it; known secrets are masked again)."""
        with self._lock:
            if self._closed:
                return
            self._lines.append(self._redact(line))
            wait = self._written_at + THROTTLE - time.monotonic()
            if wait > 0:
                self._pending = True
                if not self._timed:
                    self._timed = True
                    _TIMER.at(time.monotonic() + wait, self)
                return
            self._write_locked()

    def detail(self) -> str:
        with self._lock:
            return self._text()

    def close(self) -> None:
        """The try ended: nothing more is written (its result is)."""
        with self._lock:
            self._closed = True  # a flush still due writes nothing

    def _flush(self) -> None:
        with self._lock:
            self._timed = False
            if self._pending and not self._closed:
                self._write_locked()

    def _text(self) -> str:
        lines = list(self._lines)
        text = "\n".join(lines)
        while len(text) > KEEP_CHARS and len(lines) > 1:
            lines.pop(0)
            text = "\n".join(lines)
        return text[-KEEP_CHARS:]

    def _write_locked(self) -> None:
        self._pending = False
        self._written_at = time.monotonic()
        summary = self._lines[-1][:SUMMARY_CHARS] if self._lines else ""
        self._write(summary, self._text())
