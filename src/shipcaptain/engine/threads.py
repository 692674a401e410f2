"""Threads an engine process keeps for the next piece of work: each step run inside its
release's workflow and each try of an action runs in a thread of its own, and starting and
joining a new one for each cost about 0.13 ms of CPU (two a step, issue 27). A thread that
finished its work waits up to ``IDLE_EXIT`` seconds for the next one, then ends.

Like the threads they replace, they are daemons (a process ends without waiting for an
action that overran its timeout), and each piece of work runs in a fresh ``contextvars``
context (nothing of one step's context reaches the next), under the name it is given.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

#: seconds a thread with nothing to do waits for more before it ends: enough to carry it
#: from one step of the releases running to the next. Kept for 30 s, the threads of a
#: worker's earlier releases raised its peak memory (98 against 93 MB in ``scale.py``'s
#: scaling run); kept for 1 s, by 2 to 3 MB
IDLE_EXIT = 1.0


class Work:
    """One piece of work handed to a kept thread: joined like a thread."""

    def __init__(self, name: str, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.name = name
        self._target = target
        self._args = args
        self._done = threading.Event()

    def run(self) -> None:
        try:
            contextvars.Context().run(self._target, *self._args)
        finally:
            self._done.set()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()


class Kept:
    """The kept threads: each idle one waits on an inbox of its own, listed in ``_idle``
    (the newest last, so the threads used are the few last busy ones and the others end);
    a piece of work goes to an inbox taken off that list, so none is left waiting while a
    thread ends.

    An inbox each, not one queue they all wait on: under load, an idle thread waited in
    CPython 3.11's ``SimpleQueue.get(timeout=0.001)`` on such a shared queue for more than
    5 s with nothing on it, and so never ended (``tests/unit/test_threads.py`` failed; a
    stress of its test stuck a thread in its first round of 300). Most likely the C loop of
    ``get``: woken by a put whose work another thread took, it waits again for the time
    left, which is negative once the deadline passed: no timeout at all. An inbox has one
    reader, so nothing else takes what woke it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Work]] = []

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> Work:
        work = Work(name, target, args)
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put(work)
        else:
            threading.Thread(target=self._loop, args=(work,), name=name, daemon=True).start()
        return work

    def _loop(self, work: Work) -> None:
        me = threading.current_thread()
        inbox: queue.SimpleQueue[Work] = queue.SimpleQueue()
        while True:
            me.name = work.name
            work.run()
            del work
            with self._lock:
                self._idle.append(inbox)
            try:
                work = inbox.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # not promised any work: this thread may go
                        self._idle.remove(inbox)
                        return
                work = inbox.get()  # promised work a moment ago: it is on its way


_KEPT = Kept()


def start(name: str, target: Callable[..., Any], *args: Any) -> Work:
    """Run ``target(*args)`` in a kept daemon thread named ``name`` (a fresh context)."""
    return _KEPT.start(name, target, *args)
