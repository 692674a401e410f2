"""What the workflow functions of this process use: the store, the action registry and
a cache of parsed runbooks. Set once by ``Engine.launch``; workflows look it up here
because DBOS calls them by name, with JSON arguments only."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipcaptain.actions.registry import Registry
from shipcaptain.engine import dbos_private
from shipcaptain.errors import ShipError
from shipcaptain.runbook.model import Runbook
from shipcaptain.store import Store


def utcnow() -> datetime:
    return datetime.now(UTC)


class ResultSignal(threading.Event):
    """Set when this process has recorded a step's result; carries the result as stored
    (results are written once, so it is what the store holds from then on)."""

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None


@dataclass
class Runtime:
    store: Store
    registry: Registry
    executor_id: str
    workdir: Path
    secrets: list[str] = field(default_factory=list)
    settings: Any = None  # the engine's Settings (notifiers)
    stopping: threading.Event = field(default_factory=threading.Event)
    #: makes the unfinished step workflows of a run that a gone process left behind
    #: runnable again (the engine's ``adopt_children``); None: nothing to adopt with
    adopt: Any = None
    #: where a stop cannot wake a wait for a message (a gate's decision; see
    #: ``durable.receive``), the longest it sleeps before it looks whether the process is
    #: stopping: a CLI's engine, which hands a release waiting at a gate to the workers,
    #: shorter (its shutdown waits for it); a worker the longer slice
    message_slice: float = 5.0
    _active: int = 0
    _idle: threading.Condition = field(default_factory=threading.Condition)
    _runbooks: dict[str, Runbook] = field(default_factory=dict)
    #: a lock per digest being parsed: one parse at a time per runbook
    _parsing: dict[str, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _result_signals: dict[tuple[str, int, str], ResultSignal] = field(default_factory=dict)

    def result_signal(self, release_id: str, run: int, step_id: str) -> ResultSignal:
        """The event set when this process records the result of that step in that run."""
        with self._lock:
            return self._result_signals.setdefault((release_id, run, step_id), ResultSignal())

    def result_recorded(
        self, release_id: str, run: int, step_id: str, result: dict[str, Any] | None = None
    ) -> None:
        """Wake the steps of this process that wait for this result (and forget the key);
        ``result``: the result as stored, handed to them so they need not read it back."""
        with self._lock:
            signal = self._result_signals.pop((release_id, run, step_id), None)
        if signal is not None:
            signal.result = result
            signal.set()

    def stop(self) -> None:
        """Tell the workflows of this process to leave: ``stopping`` set, and every wait
        for a step's result woken (it then finds ``stopping`` set and leaves) instead of
        sleeping out its poll; and every gate's wait for a message (``DBOS.recv``), which
        returns as at its timeout and then finds ``stopping`` set, instead of waiting out
        its slice (up to 5 s in a worker)."""
        self.stopping.set()
        with self._lock:
            waiting = list(self._result_signals.values())
        for signal in waiting:
            signal.set()
        dbos_private.wake_receivers()

    def cached_runbook(self, digest: str) -> Runbook | None:
        with self._lock:
            return self._runbooks.get(digest)

    def keep_runbook(self, digest: str, parsed: Runbook) -> None:
        """Keep a runbook the caller parsed from the text of ``digest`` (``release start``
        parsed it to create the release): the engine need not parse it again."""
        with self._lock:
            self._runbooks.setdefault(digest, parsed)

    def runbook(self, text: str, digest: str) -> Runbook:
        """The parsed runbook of a release (validated when the release was created).

        Parsed once per digest in this process: releases of the same runbook that a worker
        starts at once (a queue's worth) wait for the first one's parse instead of each
        parsing it (~0.1 s of CPU for 20 steps)."""
        with self._lock:
            cached = self._runbooks.get(digest)
            if cached is not None:
                return cached
            parsing = self._parsing.setdefault(digest, threading.Lock())
        with parsing:
            with self._lock:
                cached = self._runbooks.get(digest)
            if cached is not None:
                return cached
            from shipcaptain.runbook.loader import parse_runbook

            parsed = parse_runbook(text, f"<runbook {digest[:12]}>", registry=self.registry)
            with self._lock:
                self._runbooks[digest] = parsed
                self._parsing.pop(digest, None)
        return parsed

    @contextmanager
    def working(self) -> Iterator[None]:
        """Count a workflow body running in this process (see ``wait_idle``)."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no workflow body runs here (after ``stopping`` is set, each leaves at
        its next slice). False if some are still running after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout=timeout)

    def event(
        self,
        release_id: str,
        step_id: str | None,
        kind: str,
        message: str,
        actor: str = "engine",
        **data: Any,
    ) -> None:
        self.store.append_event(release_id, step_id, kind, actor, message, data=data)


_current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current  # noqa: PLW0603 - one runtime per process, set at launch
    _current = runtime


def runtime() -> Runtime:
    if _current is None:
        raise ShipError("the engine is not running in this process (Engine.launch was not called)")
    return _current
