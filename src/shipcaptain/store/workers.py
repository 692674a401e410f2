"""Engine processes in the store: heartbeats, ids, takeovers and environment locks.

A mixin of :class:`~shipcaptain.store.base.Store` (see :mod:`shipcaptain.store.releases`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shipcaptain.records import (
    EventRecord,
    ReleaseRecord,
    WorkerRecord,
    utcnow,
)
from shipcaptain.store import rows
from shipcaptain.store.core import StoreCore
from shipcaptain.store.driver import Connection
from shipcaptain.store.status_events import StatusEvent


class WorkerStore(StoreCore):
    """The worker, takeover and environment lock methods of the store."""

    def heartbeat(self, executor_id: str, pid: int, hostname: str, kind: str) -> WorkerRecord:
        """Say that a process is alive; a new pid or host under the same id is a restart.

        Not synced (SQLite: see ``Store._transaction``): a heartbeat lost in a power cut
        went with the process that wrote it, and with every later write of the database
        (the next synced commit makes it durable with itself), so the record reads as if
        that process had stopped a beat earlier. A process's first heartbeat is on the way
        of every ``release start`` to its first step (a wait for the disk, ~3-10 ms here),
        and a worker writes one every ``heartbeat_interval``."""
        with self._transaction("recording a heartbeat", write=True, synced=False) as conn:
            self._upsert_worker(conn, executor_id, pid, hostname, kind)
            row = self._one(conn, "get_worker", executor_id=executor_id)
        assert row is not None
        return rows.worker_from_row(row)

    def _upsert_worker(
        self, conn: Connection, executor_id: str, pid: int, hostname: str, kind: str
    ) -> None:
        self._run(
            conn,
            "upsert_worker",
            executor_id=executor_id,
            pid=pid,
            hostname=hostname,
            kind=kind,
            now=rows.time_param(utcnow()),
        )

    def claim_worker_id(
        self,
        executor_id: str,
        pid: int,
        hostname: str,
        kind: str,
        alive: Callable[[WorkerRecord], bool],
    ) -> WorkerRecord | None:
        """Take the id ``executor_id`` for this process (a first heartbeat), unless another
        process holds it and is ``alive``: then that process's record, and nothing is
        written. Atomic: of two processes claiming one id at once, one gets it."""
        with self._transaction("claiming a worker id", write=True) as conn:
            self._lock(conn, f"worker:{executor_id}")
            row = self._one(conn, "get_worker", executor_id=executor_id)
            if row is not None:
                holder = rows.worker_from_row(row)
                if (holder.pid, holder.hostname) != (pid, hostname) and alive(holder):
                    return holder
            self._upsert_worker(conn, executor_id, pid, hostname, kind)
        return None

    def claim_takeover(
        self,
        release_id: str,
        gone: WorkerRecord,
        to_executor: str,
        *,
        event: StatusEvent | None = None,
    ) -> bool:
        """Claim the takeover of a release from the process ``gone`` (as it was in its
        last incarnation: its executor id and start time). True for the one claimer that
        won, False for everyone else; the winner is recorded as the release's executor,
        and ``event`` appended (its status before and after: a takeover changes none)."""
        with self._transaction("claiming a release", write=True) as conn:
            done = self._run(
                conn,
                "insert_takeover",
                release_id=release_id,
                from_executor=gone.executor_id,
                from_started_at=rows.time_param(gone.started_at),
                to_executor=to_executor,
                at=rows.time_param(utcnow()),
            )
            if done.rowcount != 1:
                return False
            self._run(
                conn,
                "update_release",
                id=release_id,
                executor_id=to_executor,
                status=None,
                run=None,
                started_at=None,
                ended_at=None,
                reason=None,
            )
            if event is not None:
                status = self._get_release(conn, release_id).status
                self._status_event(conn, release_id, None, event, status, status)
            return True

    def awaiting_pickup(self, release_id: str) -> EventRecord | None:
        """The ``release.taken_over`` event of a release a worker took over that still
        waits on the release queue for a worker with room (no ``release.picked_up`` after
        it), or None."""
        with self._transaction("reading a release's takeover") as conn:
            row = self._one(conn, "last_worker_takeover_or_pickup", release_id=release_id)
        if row is None:
            return None
        event = rows.event_from_row(row)
        return event if event.kind == "release.taken_over" else None

    def releases_run_by(self, executor_id: str) -> list[ReleaseRecord]:
        """The unfinished releases that the process ``executor_id`` runs."""
        with self._transaction("listing a worker's releases") as conn:
            found = self._all(conn, "releases_run_by", executor_id=executor_id)
        return [rows.release_from_row(row) for row in found]

    def take_env_lock(
        self, service: str, environment: str, release_id: str, since: datetime | None = None
    ) -> list[str]:
        """Ask for the lock of ``service`` (a runbook name) in ``environment`` for a
        release, and take it if it is the release's turn. Returns the releases ahead of it
        (empty: it holds the lock). Every unfinished release of the service to the
        environment has a place: the holder first, then in the order of ``since`` (when
        each asked or was started; the first request's value is kept), and a release that
        has not asked yet by its creation time. Finished releases drop out."""
        key = {"service": service, "environment": environment}
        now = rows.time_param(utcnow())
        asked = rows.time_param(since) if since is not None else now
        with self._transaction("taking an environment lock", write=True) as conn:
            self._lock(conn, f"env-lock:{service}:{environment}")
            self._run(conn, "request_env_lock", **key, release_id=release_id, asked=asked)
            queue = [row["release_id"] for row in self._all(conn, "env_lock_queue", **key)]
            ahead = queue[: queue.index(release_id)] if release_id in queue else queue
            if not ahead:
                self._run(conn, "acquire_env_lock", **key, release_id=release_id, now=now)
        return ahead

    def drop_env_lock(self, service: str, environment: str, release_id: str) -> None:
        """Give back a release's lock, or its place in the queue for it."""
        with self._transaction("giving back an environment lock", write=True) as conn:
            self._run(
                conn,
                "drop_env_lock",
                service=service,
                environment=environment,
                release_id=release_id,
            )

    def forget_worker(self, executor_id: str) -> None:
        """Drop a process that stopped and handed its releases over: it is no longer
        listed, so nobody waits for it to be alive again (the step workflows it left are
        adopted by the worker that runs their release next)."""
        with self._transaction("forgetting a process", write=True) as conn:
            self._run(conn, "forget_worker", executor_id=executor_id)

    def list_workers(self) -> list[WorkerRecord]:
        """Every process known to the store, by executor id."""
        with self._transaction("listing workers") as conn:
            found = self._all(conn, "list_workers")
        return [rows.worker_from_row(row) for row in found]
