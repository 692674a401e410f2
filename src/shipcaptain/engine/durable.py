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

from shipcaptain.engine import dbos_private
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
    sleep_until(clock() + seconds)


def sleep_until(wake_at: float) -> None:
    """Sleep until the (epoch) time ``wake_at``, leaving when the process stops."""
    while True:
        remaining = wake_at - time.time()
        if remaining <= 0:
            return
        if runtime().stopping.wait(min(remaining, SLICE)):
            raise EngineStopping()


# seconds between two looks for a result recorded by another process: the first soon,
# then less and less often (thousands of waiting steps must not poll the store hard)
RESULT_POLL_FIRST = 0.5
RESULT_POLL_MAX = SLICE


def wait_step_results(
    release_id: str,
    run: int,
    step_ids: list[str],
    *,
    first_poll: float = RESULT_POLL_FIRST,
    recorded: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Wait until each of ``step_ids`` has recorded its final result in this run.

    Results are written once (the first write wins) and never change, so reading them
    outside a checkpoint replays the same. The step that records a result in this process
    wakes its waiters at once and hands them the result as stored; a result recorded by
    another process is seen at the next poll (after ``first_poll`` seconds, 0.5 s unless
    the caller knows that the steps run in this process, then less and less often, at most
    every 5 s). The results recorded already are read once, in one read.

    ``recorded``: the results recorded already, as the caller read them, instead of that
    read; only when the signal of every other step of ``step_ids`` was made
    (``rt.result_signal``) before its result could be recorded (``workflows.InlineSteps``
    makes a step's signal before it starts the step's thread), so no result falls between
    the caller's read and the wait.
    """
    if not step_ids:
        return {}
    rt = runtime()
    _check_stopping()
    # every wait's signal before the look: a result recorded after it still wakes the wait
    signals = {sid: rt.result_signal(release_id, run, sid) for sid in step_ids}
    if recorded is not None:
        pass
    elif len(step_ids) == 1:
        one = rt.store.step_result(release_id, run, step_ids[0])
        recorded = {} if one is None else {step_ids[0]: one}
    else:
        recorded = rt.store.step_results(release_id, run)
    found = {sid: recorded[sid] for sid in step_ids if sid in recorded}
    for step_id, result in found.items():
        # found in the store, not by a wake-up: its wake-up entry goes (it would stay for
        # the life of the process), and whoever else here waits on it gets the result
        rt.result_recorded(release_id, run, step_id, result)
    for step_id in step_ids:
        poll = first_poll
        while step_id not in found:
            _check_stopping()
            signal = signals[step_id]
            if signal.wait(poll) and signal.result is not None:
                found[step_id] = dict(signal.result)  # as stored: no need to read it back
                break
            _check_stopping()  # a stop sets every signal, with no result
            polled = rt.store.step_result(release_id, run, step_id)  # another process's
            if polled is not None:
                found[step_id] = polled
                rt.result_recorded(release_id, run, step_id, polled)  # as above
            poll = min(poll * 2, RESULT_POLL_MAX)
    return {sid: found[sid] for sid in step_ids}


#: Seconds a wait for a message (a gate's decision) lasts before it looks again whether the
#: process is stopping, in a process whose stop wakes it (``dbos_private.wake_receivers``):
#: a safety net only, as a decision wakes it (and DBOS looks at the database now and then
#: for one whose notification was lost). Each look records three checkpoints (the
#: ``DBOS.recv`` with its timer, and the clock): with the 1 s and 5 s slices of a process
#: that cannot wake it, a gate waiting a day recorded 259,200 and 51,840 checkpoints that
#: a takeover replays one by one (benchmarks/gate_wait.py).
WOKEN_SLICE = 3600.0


def receive(topic: str, deadline: float) -> dict[str, Any] | None:
    """The next message on ``topic``, or None once the (epoch) deadline has passed."""
    if dbos_private.can_wake_receivers():
        slice_ = WOKEN_SLICE
    else:  # a stop is seen at the end of a slice: a CLI's 1 s, a worker's 5 s
        slice_ = min(SLICE, runtime().message_slice)
    while True:
        _check_stopping()
        message = DBOS.recv(topic, timeout_seconds=max(0.05, min(slice_, deadline - time.time())))
        if message is not None:
            return dict(message)
        if clock() >= deadline:
            return None
