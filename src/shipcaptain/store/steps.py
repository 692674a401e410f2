"""The step runs in the store: each try of a step, and each step's result in a run.

A mixin of :class:`~shipcaptain.store.base.Store` (see :mod:`shipcaptain.store.releases`).
"""

from __future__ import annotations

from typing import Any

from shipcaptain.errors import NotFound
from shipcaptain.records import (
    StepRunRecord,
    StepStart,
    utcnow,
)
from shipcaptain.store import rows
from shipcaptain.store.audit import GENESIS_HASH
from shipcaptain.store.core import StoreCore
from shipcaptain.store.driver import Connection
from shipcaptain.store.status_events import StatusEvent


def _newest_tries(tries: list[StepRunRecord]) -> dict[str, StepRunRecord]:
    latest: dict[str, StepRunRecord] = {}
    for step in tries:
        known = latest.get(step.step_id)
        if known is None or (step.run, step.attempt) > (known.run, known.attempt):
            latest[step.step_id] = step
    return latest


#: A try's status that is also its step's (a try that ended may be followed by another).
_UNFINISHED_TRY = frozenset({"pending", "running", "waiting", "cancelled"})


def _status_of_step(row: dict[str, Any] | None) -> str:
    """A step's status in a run from its ``step_status_in_run`` row: its recorded result;
    else its newest try's status, where a try that ended without the step's result yet
    (another try may follow) counts as ``running``; ``pending`` before any try."""
    if row is not None and row["result"] is not None:
        return str(row["result"])
    if row is None or row["try_status"] is None:
        return "pending"
    status = str(row["try_status"])
    return status if status in _UNFINISHED_TRY else "running"


def _head(row: dict[str, Any] | None) -> tuple[int, str]:
    """The audit chain's head as ``upsert_step_run_head`` and ``record_result_head`` read
    it: ``(seq, hash)``, ``(0, GENESIS_HASH)`` for an empty log."""
    if row is None or row["seq"] is None:
        return 0, GENESIS_HASH
    return int(row["seq"]), str(row["hash"])


class StepStore(StoreCore):
    """The step run methods of the store."""

    def upsert_step_run(
        self, step: StepRunRecord, *, event: StatusEvent | None = None
    ) -> StepRunRecord:
        """Write one try of a step, keyed by (release, step, run, attempt); the stored record.

        Writing the same record again is harmless, and a finished try is never moved back
        to pending, running or waiting by a late or replayed write. ``event`` is appended
        in the same transaction, with the step's status before and after
        (:meth:`_step_status`).
        """
        with self._transaction("recording a step run", write=True) as conn:
            self._get_release(conn, step.release_id)
            self._put_step_run(conn, step, event)
            row = self._one(
                conn,
                "get_step_run",
                release_id=step.release_id,
                step_id=step.step_id,
                run=step.run,
                attempt=step.attempt,
            )
        assert row is not None
        return rows.step_run_from_row(row)

    def _put_step_run(
        self, conn: Connection, step: StepRunRecord, event: StatusEvent | None
    ) -> None:
        before = None if event is None else self._step_status(conn, step)
        self._run(conn, "upsert_step_run", **rows.step_run_params(step))
        if event is not None:
            after = self._step_status(conn, step)
            self._status_event(conn, step.release_id, step.step_id, event, before, after)

    def begin_try(
        self, step: StepRunRecord, *, event: StatusEvent | None = None, synced: bool = False
    ) -> StepRunRecord | None:
        """Write a try as it starts, as :meth:`upsert_step_run` does; the same try as it was
        stored before (None if this is its first start), read in the same transaction.
        ``event`` is appended with the step's status before and after, on the try's first
        start only (a replayed start adds nothing)."""
        key = {
            "release_id": step.release_id,
            "step_id": step.step_id,
            "run": step.run,
            "attempt": step.attempt,
        }
        lock = self._audit_lock_params()
        # not synced (unless ``synced``: an action that looks for its earlier tries' work):
        # lost in a power cut, the try is one that never started, and it runs as one
        # interrupted by a crash would (its action's "already done" check first)
        with self._transaction("recording a step run", write=True, synced=synced) as conn:
            # one statement: the release's existence, the step's status, the try as stored
            start = self._one(conn, "try_start", **key, **lock, **self._try_start_params(synced))
            assert start is not None  # one row, always
            if start["release_found"] is None:
                raise NotFound(f"no release {step.release_id!r}")
            prev = None if start["release_id"] is None else rows.step_run_from_row(start)
            head = None
            if lock and event is not None and prev is None:
                # the chain's head in the same round trip (try_start took its lock)
                written = self._one(conn, "upsert_step_run_head", **rows.step_run_params(step))
                head = _head(written)
            else:
                self._run(conn, "upsert_step_run", **rows.step_run_params(step))
            if event is not None and prev is None:  # the try's first start: its event
                before = _status_of_step(start)
                newest = start["newest_attempt"]
                # the try was inserted: it is the step's newest unless a later one exists
                mine = newest is None or step.attempt >= int(newest)
                status = step.status if mine else start["try_status"]
                after = _status_of_step({"result": start["result"], "try_status": status})
                self._status_event(
                    conn,
                    step.release_id,
                    step.step_id,
                    event,
                    before,
                    after,
                    locked=bool(lock),
                    head=head,
                )
        return prev

    def _step_status(self, conn: Connection, step: StepRunRecord) -> str:
        """What the step of ``step`` (a try) is in its run, for the ``before`` and ``after``
        of its events (see :func:`_status_of_step`)."""
        key = {"release_id": step.release_id, "step_id": step.step_id, "run": step.run}
        return _status_of_step(self._one(conn, "step_status_in_run", **key))

    def get_step_run(
        self, release_id: str, step_id: str, run: int, attempt: int
    ) -> StepRunRecord | None:
        with self._transaction("reading a step run") as conn:
            row = self._one(
                conn,
                "get_step_run",
                release_id=release_id,
                step_id=step_id,
                run=run,
                attempt=attempt,
            )
        return None if row is None else rows.step_run_from_row(row)

    def record_step_result(
        self,
        release_id: str,
        run: int,
        step_id: str,
        result: dict[str, Any],
        *,
        step_run: StepRunRecord | None = None,
        event: StatusEvent | None = None,
    ) -> dict[str, Any]:
        """Record the final result of a step in a run; the stored one.

        The first write wins: a replayed write returns the result recorded first, so every
        reader of a step's result sees the same one. ``result`` must be JSON with a
        ``status``. In the same transaction, ``step_run`` is written as by
        :meth:`upsert_step_run` and ``event`` appended to the audit log with the step's
        status before and after (only by the first write).
        """
        lock = self._audit_lock_params()
        with self._transaction("recording a step result", write=True) as conn:
            key = {"release_id": release_id, "step_id": step_id, "run": run}
            now = self._one(conn, "result_start", **key, **lock)
            recorded = now is not None and now["result"] is not None
            before = _status_of_step(now)
            written = {
                "result": rows.json_param(result),
                "recorded_at": rows.time_param(utcnow()),
            }
            row, head = None, None
            if lock and step_run is not None and not recorded and event is not None:
                # the try, the result and the chain's head (result_start took its lock) in
                # one round trip; the result as written, None when another write came first
                assert (step_run.release_id, step_run.run, step_run.step_id) == (
                    release_id,
                    run,
                    step_id,
                )
                both = self._one(
                    conn,
                    "record_result_head",
                    **rows.step_run_params(step_run),
                    result_status=str(result["status"]),
                    **written,
                )
                head = _head(both)
                row = None if both is None or both["result"] is None else both
            else:
                if step_run is not None:
                    self._run(conn, "upsert_step_run", **rows.step_run_params(step_run))
                if not recorded:  # the result as written (no row: another write came first)
                    row = self._one(
                        conn,
                        "insert_step_result",
                        release_id=release_id,
                        run=run,
                        step_id=step_id,
                        status=str(result["status"]),
                        **written,
                    )
            wrote = row is not None
            if row is None:
                row = self._one(
                    conn, "get_step_result", release_id=release_id, run=run, step_id=step_id
                )
            assert row is not None
            stored = dict(rows.decode_json(row["result"]))
            if event is not None and wrote:
                # a replayed write (the result was recorded already) adds no event
                after = str(stored["status"])
                self._status_event(
                    conn, release_id, step_id, event, before, after, locked=bool(lock), head=head
                )
        return stored

    def step_result(self, release_id: str, run: int, step_id: str) -> dict[str, Any] | None:
        """The final result of one step in a run, or None while it has not ended."""
        with self._transaction("reading a step result") as conn:
            row = self._one(
                conn, "get_step_result", release_id=release_id, run=run, step_id=step_id
            )
        return None if row is None else dict(rows.decode_json(row["result"]))

    def step_results(self, release_id: str, run: int) -> dict[str, dict[str, Any]]:
        """The final results of the steps of a run that have ended, by step id."""
        with self._transaction("reading step results") as conn:
            found = self._all(conn, "list_step_results", release_id=release_id, run=run)
        return {row["step_id"]: dict(rows.decode_json(row["result"])) for row in found}

    def list_step_runs(self, release_id: str) -> list[StepRunRecord]:
        """Every try of every step of a release, by run, then in the order they started."""
        with self._transaction("listing step runs") as conn:
            found = self._all(conn, "list_step_runs", release_id=release_id)
        return [rows.step_run_from_row(row) for row in found]

    def latest_step_runs(self, release_id: str) -> dict[str, StepRunRecord]:
        """For each step of a release, its newest try (highest run, then attempt)."""
        return _newest_tries(self.list_step_runs(release_id))

    def step_start(self, release_id: str, step_id: str, *, every_step: bool = True) -> StepStart:
        """The release, the step's newest successful try and every step's newest try, read
        in one transaction (what the engine checks before a step starts); the tries without
        their times and live output (``detail``: the engine does not use them, and every
        step reading every try's would read a release's output once per step).

        ``every_step`` False: only this step's tries are read (``latest`` is None), for a
        step that needs no other step's outputs: its read then does not grow with the
        release (see :meth:`newest_tries`)."""
        query, args = "step_start_tries", {"release_id": release_id}
        if not every_step:
            query, args = "step_start_own_tries", {**args, "step_id": step_id}
        with self._transaction("reading a release before a step") as conn:
            release = self._get_release(conn, release_id)
            tries = [rows.step_run_from_row(row) for row in self._all(conn, query, **args)]
        # the step's newest successful try is among every try (succeeded_step_run's pick:
        # the highest run, then attempt), not a statement of its own
        succeeded = [t for t in tries if t.step_id == step_id and t.status == "succeeded"]
        return StepStart(
            release=release,
            succeeded=max(succeeded, key=lambda t: (t.run, t.attempt), default=None),
            latest=_newest_tries(tries) if every_step else None,
        )

    def newest_tries(
        self, release_id: str, leave_out: tuple[str, int] | None = None
    ) -> dict[str, StepRunRecord]:
        """Each step's newest try, as :meth:`step_start` reads it (without times and
        ``detail``): the other steps' outputs, read when a step's start needs them.
        ``leave_out``: (step, run) whose tries are not counted (a step's own tries in its
        run, begun after its start's read)."""
        with self._transaction("reading the steps' outputs") as conn:
            found = self._all(conn, "step_start_tries", release_id=release_id)
        tries = [rows.step_run_from_row(row) for row in found]
        if leave_out is not None:
            tries = [t for t in tries if (t.step_id, t.run) != leave_out]
        return _newest_tries(tries)

    def succeeded_step_run(self, release_id: str, step_id: str) -> StepRunRecord | None:
        """The newest try of a step that succeeded, in any run of the release, or None."""
        with self._transaction("reading a step run") as conn:
            row = self._one(conn, "succeeded_step_run", release_id=release_id, step_id=step_id)
        return None if row is None else rows.step_run_from_row(row)
