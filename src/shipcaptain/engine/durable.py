"""The thin durable layer the workflows use: sleep, wait for another step's result, wait
for a message. Built on DBOS, but interruptible: DBOS's own sleep is a plain
``time.sleep`` and would keep a stopping process alive for as long as a release waits.

Waits are cut into slices; between slices the process checks whether it is stopping and
then raises ``EngineStopping`` (a BaseException, so no ``except Exception`` catches it).
DBOS leaves such a workflow PENDING, and the next process recovers it from its last
checkpoint. Every decision that depends on the clock goes through a checkpointed step, so
replay takes the same path.
"""

from __future__ import annotations

import time
from typing import Any

from dbos import DBOS

from shipcaptain.engine.runtime import runtime

SLICE = 5.0  # seconds: the longest a stopping process waits for a release's thread


class EngineStopping(BaseException):
    """Raised inside a workflow when this process shuts down; the workflow stays PENDING."""


def _check_stopping() -> None:
    if runtime().stopping.is_set():
        raise EngineStopping()


@DBOS.step(name="shipcaptain.clock")
def clock() -> float:
    """The wall clock, checkpointed: replay sees the time the original run saw."""
    return time.time()


def sleep(seconds: float) -> None:
    """Durable sleep: after a restart only the rest of the time is waited."""
    if seconds <= 0:
        return
    wake_at = clock() + seconds
    while True:
        remaining = wake_at - time.time()
        if remaining <= 0:
            return
        if runtime().stopping.wait(min(remaining, SLICE)):
            raise EngineStopping()


def wait_result(workflow_id: str, key: str) -> dict[str, Any]:
    """Wait until workflow ``workflow_id`` publishes ``key``."""
    while True:
        _check_stopping()
        value = DBOS.get_event(workflow_id, key, timeout_seconds=SLICE)
        if value is not None:
            return dict(value)


def receive(topic: str, deadline: float) -> dict[str, Any] | None:
    """The next message on ``topic``, or None once the (epoch) deadline has passed."""
    while True:
        _check_stopping()
        message = DBOS.recv(topic, timeout_seconds=max(0.05, min(SLICE, deadline - time.time())))
        if message is not None:
            return dict(message)
        if clock() >= deadline:
            return None
