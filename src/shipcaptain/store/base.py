"""The state store: one interface over SQLite and PostgreSQL.

``Store`` holds everything both backends share: the named queries, the records, the audit
chain and the translation of driver errors into :class:`StoreError`. A backend
(``SQLiteStore``, ``PostgresStore``) only says how to make its engine, how a writing
transaction starts and how to lock a critical section across processes.

Every method is synchronous and thread-safe (each call takes a connection from the pool),
and every write is idempotent where a replay after a crash could repeat it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

from sqlalchemy import Connection, CursorResult, Engine, TextClause, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from shipcaptain.errors import InvalidState, NotFound, StoreError
from shipcaptain.store import rows
from shipcaptain.store.access import AccessStore
from shipcaptain.store.audit_log import AuditLogStore
from shipcaptain.store.incidents import IncidentStore
from shipcaptain.store.records import (
    CLOSED_GATE_STATUSES,
    RELEASE_STATUSES,
    DecisionRecord,
    EventRecord,
    GateRecord,
    GateStatus,
    Person,
    ReleaseRecord,
    ReleaseStatus,
    StepRunRecord,
    StepStart,
    TokenRecord,
    WorkerRecord,
    utcnow,
)
from shipcaptain.store.sqlfiles import load_migrations, load_queries
from shipcaptain.store.urls import Backend, mask_url, normalize_url, password_of

#: An event that records a change of status: (kind, actor, message, data). The store
#: appends it in the transaction that writes the status, with ``before`` and ``after``
#: (the status read there) added to its data: they cannot drift from what was written.
StatusEvent = tuple[str, str, str, dict[str, Any]]


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


def _team_changes(before: dict[str, Person], people: list[Person]) -> dict[str, list[str]]:
    """Who a team change adds, removes, or gives other roles, surfaces or admin rights."""
    active = {name for name, p in before.items() if p.active}
    names = {p.name for p in people}

    def held(p: Person) -> tuple[object, ...]:
        return (sorted((e, sorted(r)) for e, r in p.roles.items()), sorted(p.surfaces), p.admin)

    return {
        "added": sorted(names - active),
        "removed": sorted(active - names),
        "changed": sorted(
            p.name for p in people if p.name in active and held(before[p.name]) != held(p)
        ),
    }


log = logging.getLogger("shipcaptain.store")

_MISSING_TABLE_HINTS = ("no such table: sc_", 'relation "sc_')


class Store(AuditLogStore, IncidentStore, AccessStore, ABC):
    """shipcaptain's own state: releases, step runs, gates, decisions, audit events, workers."""

    backend: ClassVar[Backend]

    def __init__(self, url: str) -> None:
        self.url = mask_url(url)
        """The database URL with its password masked: safe to show."""
        self._password = password_of(url)
        sql = load_queries("queries.sql") | load_queries(f"{self.backend}.sql")
        self._sql: dict[str, TextClause] = {name: text(query) for name, query in sql.items()}
        self._engine = self._create_engine(normalize_url(url))
        self._write_engine = self._writer(self._engine)
        self.reconnect_for = 0.0
        """Seconds to keep trying to connect while the database cannot be reached (an
        engine process waits out a short outage; a command reports it at once)."""

    # -- what a backend provides ------------------------------------------------------

    @abstractmethod
    def _create_engine(self, url: str) -> Engine:
        """The SQLAlchemy engine for the normalised URL."""

    def _writer(self, engine: Engine) -> Engine:
        """The engine whose transactions may write (SQLite starts them IMMEDIATE)."""
        return engine

    def _lock(self, conn: Connection, name: str) -> None:
        """Hold a lock named ``name`` across processes until the transaction ends."""

    def queue_all_transactions(self) -> Callable[[], None]:
        """Make every transaction of this process on this database, whichever library
        opened it (the durable engine's own), wait its turn where the backend needs it
        (SQLite: one writer at a time); returns the undo. A no-op by default."""
        return lambda: None

    def _writers_queue(self) -> AbstractContextManager[Any]:
        """Held around each write transaction of this process (none by default)."""
        return nullcontext()

    # -- plumbing ---------------------------------------------------------------------

    def _reason(self, exc: BaseException) -> str:
        origin = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(origin).strip().splitlines() if line.strip()]
        reason = " ".join(lines) or type(origin).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        if any(hint in reason for hint in _MISSING_TABLE_HINTS):
            reason += " (the state database has no shipcaptain tables yet: run the migrations)"
        return reason

    @contextmanager
    def _transaction(self, doing: str, *, write: bool = False) -> Iterator[Connection]:
        """A connection in a transaction; driver errors become :class:`StoreError`."""
        engine = self._write_engine if write else self._engine
        with self._writers_queue() if write else nullcontext():
            conn = self._connect(engine)
            with conn:
                try:
                    with conn.begin():
                        yield conn
                except SQLAlchemyError as exc:
                    message = f"state database {self.url} failed while {doing}: {self._reason(exc)}"
                    raise StoreError(message) from exc

    def _connect(self, engine: Engine) -> Connection:
        """A connection; while the database cannot be reached, tried again (0.25 s, then
        twice as long each time, at most 5 s apart) for ``reconnect_for`` seconds. Only
        the connection is tried again: nothing has run on it yet."""
        give_up = time.monotonic() + self.reconnect_for
        pause = 0.25
        while True:
            try:
                return engine.connect()
            except SQLAlchemyError as exc:
                reason = self._reason(exc)
                if time.monotonic() + pause > give_up:
                    message = f"cannot connect to the state database {self.url}: {reason}"
                    raise StoreError(message) from exc
                log.warning(
                    "state database %s unreachable (%s): again in %gs", self.url, reason, pause
                )
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _run(self, conn: Connection, query: str, **params: Any) -> CursorResult[Any]:
        return conn.execute(self._sql[query], params)

    def _one(self, conn: Connection, query: str, **params: Any) -> dict[str, Any] | None:
        row = self._run(conn, query, **params).mappings().first()
        return None if row is None else dict(row)

    def _all(self, conn: Connection, query: str, **params: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in self._run(conn, query, **params).mappings()]

    def close(self) -> None:
        """Close every pooled connection. The store can still be used: it reconnects."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- schema -----------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet, in one transaction; the versions applied.

        Idempotent, and safe when several processes call it at once: they take turns.
        """
        migrations = load_migrations(self.backend)
        applied_now: list[int] = []
        with self._transaction("applying schema migrations", write=True) as conn:
            self._lock(conn, "migrations")
            self._run(conn, "create_schema_version_table")
            applied = {row["version"] for row in self._all(conn, "list_schema_versions")}
            known = max((m.version for m in migrations), default=0)
            if max(applied, default=0) > known:
                raise StoreError(
                    f"the state database {self.url} has schema version {max(applied)}, newer than "
                    f"this shipcaptain knows ({known}): upgrade shipcaptain"
                )
            for migration in migrations:
                if migration.version in applied:
                    continue
                for statement in migration.statements:
                    conn.exec_driver_sql(statement)
                self._run(
                    conn,
                    "insert_schema_version",
                    version=migration.version,
                    name=migration.name,
                    applied_at=rows.time_param(utcnow()),
                )
                applied_now.append(migration.version)
        return applied_now

    def schema_version(self) -> int:
        """The newest migration applied (0 for an empty database)."""
        with self._transaction("reading the schema version") as conn:
            if not inspect(conn).has_table("sc_schema_version"):
                return 0
            versions = [row["version"] for row in self._all(conn, "list_schema_versions")]
        return max(versions, default=0)

    # -- releases ---------------------------------------------------------------------

    def create_release(
        self, release: ReleaseRecord, *, event: StatusEvent | None = None
    ) -> ReleaseRecord:
        """Store a new release; creating the same id again returns the stored one unchanged.
        ``event`` is appended in the same transaction (before: None; after: its status)
        when this call created it."""
        with self._transaction("creating a release", write=True) as conn:
            existed = self._one(conn, "get_release", id=release.id) is not None
            self._run(conn, "insert_release", **rows.release_params(release))
            stored = self._get_release(conn, release.id)
            if event is not None and not existed:
                self._status_event(conn, release.id, None, event, None, stored.status)
            return stored

    def _get_release(self, conn: Connection, release_id: str) -> ReleaseRecord:
        row = self._one(conn, "get_release", id=release_id)
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        return rows.release_from_row(row)

    def get_release(self, release_id: str) -> ReleaseRecord:
        """The release ``release_id``; :class:`NotFound` if there is none."""
        with self._transaction("reading a release") as conn:
            return self._get_release(conn, release_id)

    def list_releases(
        self,
        status: ReleaseStatus | None = None,
        environment: str | None = None,
        limit: int = 100,
        *,
        runbook: str | None = None,
        started_by: str | None = None,
        offset: int = 0,
    ) -> list[ReleaseRecord]:
        """Releases, newest first, optionally of one status, environment, runbook (its
        name) and/or person who started them; ``offset`` skips the newest (paging)."""
        with self._transaction("listing releases") as conn:
            found = self._all(
                conn,
                "list_releases",
                status=status,
                environment=environment,
                runbook=runbook,
                started_by=started_by,
                limit=limit,
                offset=offset,
            )
        return [rows.release_from_row(row) for row in found]

    def update_release(
        self,
        release_id: str,
        *,
        status: ReleaseStatus | None = None,
        run: int | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        reason: str | None = None,
        executor_id: str | None = None,
        event: StatusEvent | None = None,
        only_from: Collection[str] | None = None,
    ) -> ReleaseRecord:
        """Change the given fields of a release (None leaves a field as it is).

        ``event`` is appended in the same transaction with the release's status ``before``
        and ``after`` the change. With ``only_from``, nothing happens (no change, no event)
        unless the release's status is one of those; the release as it is is returned.
        """
        if status is not None and status not in RELEASE_STATUSES:
            raise ValueError(f"unknown release status {status!r}")
        with self._transaction("updating a release", write=True) as conn:
            before = self._get_release(conn, release_id)
            if only_from is not None and before.status not in only_from:
                return before
            self._run(
                conn,
                "update_release",
                id=release_id,
                status=status,
                run=run,
                started_at=rows.time_param(started_at),
                ended_at=rows.time_param(ended_at),
                reason=reason,
                executor_id=executor_id,
            )
            after = self._get_release(conn, release_id)
            if event is not None:
                self._status_event(conn, release_id, None, event, before.status, after.status)
            return after

    def begin_run(
        self,
        release_id: str,
        run: int,
        *,
        status: ReleaseStatus | None = None,
        reason: str | None = None,
        event: StatusEvent | None = None,
    ) -> ReleaseRecord:
        """Start run ``run`` of a release (resume): pending (or ``status``), with end and
        reason cleared (or ``reason``); an environment lock the release held or asked for is
        given back (the new run asks again, from the back of the queue). ``event`` is
        appended in the same transaction, with the status before and after."""
        with self._transaction("starting a new run", write=True) as conn:
            before = self._get_release(conn, release_id)
            self._run(conn, "begin_run", id=release_id, run=run)
            if status is not None or reason is not None:
                self._run(
                    conn, "update_release", id=release_id, status=status, run=None,
                    started_at=None, ended_at=None, reason=reason, executor_id=None,
                )  # fmt: skip
            self._run(conn, "drop_env_locks_of", release_id=release_id)
            after = self._get_release(conn, release_id)
            if event is not None:
                self._status_event(conn, release_id, None, event, before.status, after.status)
            return after

    # -- step runs --------------------------------------------------------------------

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
            before = None if event is None else self._step_status(conn, step)
            self._run(conn, "upsert_step_run", **rows.step_run_params(step))
            if event is not None:
                after = self._step_status(conn, step)
                self._status_event(conn, step.release_id, step.step_id, event, before, after)
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

    def begin_try(
        self, step: StepRunRecord, *, event: StatusEvent | None = None
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
        with self._transaction("recording a step run", write=True) as conn:
            prev = self._one(conn, "get_step_run", **key)
            self._get_release(conn, step.release_id)
            first = event is not None and prev is None
            before = self._step_status(conn, step) if first else None
            self._run(conn, "upsert_step_run", **rows.step_run_params(step))
            if first and event is not None:
                after = self._step_status(conn, step)
                self._status_event(conn, step.release_id, step.step_id, event, before, after)
        return None if prev is None else rows.step_run_from_row(prev)

    def _step_status(self, conn: Connection, step: StepRunRecord) -> str:
        """What the step of ``step`` (a try) is in its run, for the ``before`` and ``after``
        of its events (see :func:`_status_of_step`)."""
        key = {"release_id": step.release_id, "step_id": step.step_id, "run": step.run}
        return _status_of_step(self._one(conn, "step_status_in_run", **key))

    def _status_event(
        self,
        conn: Connection,
        release_id: str | None,
        step_id: str | None,
        event: StatusEvent,
        before: str | None,
        after: str | None,
    ) -> EventRecord:
        """Append a :data:`StatusEvent` with ``before`` and ``after`` in its data."""
        kind, actor, message, data = event
        data = {**data, "before": before, "after": after}
        return self._append_event(conn, release_id, step_id, kind, actor, message, data)

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
        with self._transaction("recording a step result", write=True) as conn:
            key = {"release_id": release_id, "step_id": step_id, "run": run}
            now = self._one(conn, "step_status_in_run", **key)
            recorded = now is not None and now["result"] is not None
            before = _status_of_step(now)
            if step_run is not None:
                self._run(conn, "upsert_step_run", **rows.step_run_params(step_run))
            self._run(
                conn,
                "insert_step_result",
                release_id=release_id,
                run=run,
                step_id=step_id,
                status=str(result["status"]),
                result=rows.json_param(result),
                recorded_at=rows.time_param(utcnow()),
            )
            row = self._one(
                conn, "get_step_result", release_id=release_id, run=run, step_id=step_id
            )
            assert row is not None
            stored = dict(rows.decode_json(row["result"]))
            if event is not None and not recorded:
                # a replayed write (the result was recorded already) adds no event
                after = str(stored["status"])
                self._status_event(conn, release_id, step_id, event, before, after)
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

    def step_start(self, release_id: str, step_id: str) -> StepStart:
        """The release, the step's newest successful try and every step's newest try, read
        in one transaction (what the engine checks before a step starts)."""
        with self._transaction("reading a release before a step") as conn:
            release = self._get_release(conn, release_id)
            found = self._one(conn, "succeeded_step_run", release_id=release_id, step_id=step_id)
            tries = self._all(conn, "list_step_runs", release_id=release_id)
        return StepStart(
            release=release,
            succeeded=None if found is None else rows.step_run_from_row(found),
            latest=_newest_tries([rows.step_run_from_row(row) for row in tries]),
        )

    def succeeded_step_run(self, release_id: str, step_id: str) -> StepRunRecord | None:
        """The newest try of a step that succeeded, in any run of the release, or None."""
        with self._transaction("reading a step run") as conn:
            row = self._one(conn, "succeeded_step_run", release_id=release_id, step_id=step_id)
        return None if row is None else rows.step_run_from_row(row)

    # -- gates and decisions ----------------------------------------------------------

    def open_gate(self, gate: GateRecord) -> GateRecord:
        """Open a gate keyed by (release, step, run); opening it again returns the stored one.

        A running release becomes ``waiting`` in the same transaction, so nobody ever
        sees an open gate on a release that still says ``running``.
        """
        with self._transaction("opening a gate", write=True) as conn:
            self._get_release(conn, gate.release_id)
            self._run(conn, "insert_gate", **rows.gate_params(gate))
            if self._run(conn, "release_waits_for_gate", id=gate.release_id).rowcount:
                waits: StatusEvent = ("release.waiting", "engine", f"waiting at {gate.step_id}", {})
                self._status_event(conn, gate.release_id, None, waits, "running", "waiting")
            return self._get_gate(conn, gate.release_id, gate.step_id, gate.run)

    def _get_gate(
        self, conn: Connection, release_id: str, step_id: str, run: int | None
    ) -> GateRecord:
        if run is None:
            row = self._one(conn, "get_newest_gate", release_id=release_id, step_id=step_id)
        else:
            row = self._one(conn, "get_gate", release_id=release_id, step_id=step_id, run=run)
        if row is None:
            which = "" if run is None else f" in run {run}"
            raise NotFound(f"no gate at step {step_id!r} of release {release_id!r}{which}")
        return rows.gate_from_row(row)

    def get_gate(self, release_id: str, step_id: str, run: int | None = None) -> GateRecord:
        """The gate of a step in run ``run`` (None: the newest run); :class:`NotFound` if none."""
        with self._transaction("reading a gate") as conn:
            return self._get_gate(conn, release_id, step_id, run)

    def list_gates(
        self, status: GateStatus | None = None, release_id: str | None = None
    ) -> list[GateRecord]:
        """Gates, oldest first, optionally of one status and/or release."""
        with self._transaction("listing gates") as conn:
            found = self._all(conn, "list_gates", status=status, release_id=release_id)
        return [rows.gate_from_row(row) for row in found]

    def close_gate(
        self,
        release_id: str,
        step_id: str,
        run: int,
        status: GateStatus,
        *,
        event: StatusEvent | None = None,
    ) -> GateRecord:
        """Close a waiting gate as approved, rejected, timed_out or cancelled.

        Closing it again with the same status returns it unchanged (a replay); a gate
        already closed another way raises :class:`InvalidState` (who came first won).
        A waiting release with no other open gate is ``running`` again in the same
        transaction. ``event`` is appended there too, with the gate's status before and
        after, when this call closed it.
        """
        if status not in CLOSED_GATE_STATUSES:
            raise ValueError(f"a gate closes as one of {', '.join(CLOSED_GATE_STATUSES)}")
        with self._transaction("closing a gate", write=True) as conn:
            before = self._get_gate(conn, release_id, step_id, run).status
            self._run(
                conn,
                "close_gate",
                release_id=release_id,
                step_id=step_id,
                run=run,
                status=status,
                closed_at=rows.time_param(utcnow()),
            )
            runs = self._run(conn, "release_runs_after_gates", id=release_id).rowcount
            gate = self._get_gate(conn, release_id, step_id, run)
            if event is not None and before == "waiting" and gate.status == status:
                self._status_event(conn, release_id, step_id, event, before, gate.status)
            if runs:
                again: StatusEvent = (
                    "release.running",
                    "engine",
                    "no gate open: running again",
                    {},
                )
                self._status_event(conn, release_id, None, again, "waiting", "running")
        if gate.status != status:
            raise InvalidState(
                f"the gate at step {step_id!r} of release {release_id!r} is already {gate.status}"
            )
        return gate

    def add_decision(
        self, decision: DecisionRecord, *, kind: str = "", message: str = ""
    ) -> DecisionRecord:
        """Record a person's decision at a gate; a second one by the same person is ignored.

        Returns the stored decision (the first one). The gate must exist. With ``kind``,
        the decision is also an audit event in the same transaction (only when this call
        recorded it), holding everything the decisions table holds: the evidence bundle
        is made from the events, never from that table.
        """
        with self._transaction("recording a decision", write=True) as conn:
            self._get_gate(conn, decision.release_id, decision.step_id, decision.run)
            params = rows.decision_params(decision)
            added = self._run(conn, "insert_decision", **params).rowcount
            if kind and added:
                data = {
                    "run": decision.run,
                    "decision": decision.decision,
                    "role": decision.role,
                    "comment": decision.comment,
                    "at": rows.time_param(decision.at),
                    "evidence": decision.evidence,
                    "before": "waiting",
                }
                self._append_event(
                    conn,
                    decision.release_id,
                    decision.step_id,
                    kind,
                    decision.user,
                    message,
                    data,
                )
            row = self._one(
                conn,
                "get_decision",
                release_id=decision.release_id,
                step_id=decision.step_id,
                run=decision.run,
                user_name=decision.user,
            )
        assert row is not None
        return rows.decision_from_row(row)

    def list_decisions(self, release_id: str, step_id: str | None = None) -> list[DecisionRecord]:
        """Decisions taken in a release, optionally at one step, in the order taken."""
        with self._transaction("listing decisions") as conn:
            found = self._all(conn, "list_decisions", release_id=release_id, step_id=step_id)
        return [rows.decision_from_row(row) for row in found]

    # -- people and tokens ------------------------------------------------------------

    def put_team(
        self,
        people: list[Person],
        *,
        actor: str,
        message: str,
        data: dict[str, Any],
        permissions: dict[str, Any] | None = None,
        environments: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Make ``people`` the team (and ``permissions`` its permissions, ``environments``
        its environments, when permissions are given): each person is added or replaced,
        anyone else known becomes inactive; one audit event records the change, in the
        same transaction."""
        now = rows.time_param(utcnow())
        names = {person.name for person in people}
        with self._transaction("storing the team", write=True) as conn:
            if permissions is not None:
                self._run(
                    conn,
                    "put_team_policy",
                    permissions=rows.json_param(permissions),
                    environments=rows.json_param(environments or {}),
                    updated_at=now,
                )
            before = {p.name: p for p in map(rows.person_from_row, self._all(conn, "list_people"))}
            for name in before:
                if name not in names:
                    self._run(conn, "deactivate_person", name=name, updated_at=now)
            for person in people:
                self._run(conn, "upsert_person", **rows.person_params(person), updated_at=now)
            changes = _team_changes(before, people)
            data = {**data, "changes": changes}
            return self._append_event(conn, None, None, "team.applied", actor, message, data)

    def get_person(self, name: str) -> Person:
        """The person ``name`` (active or not); :class:`NotFound` if unknown."""
        with self._transaction("reading a person") as conn:
            row = self._one(conn, "get_person", name=name)
        if row is None:
            raise NotFound(f"no person {name!r} in the team")
        return rows.person_from_row(row)

    def team_permissions(self) -> dict[str, Any] | None:
        """The permissions the team file set, or None (the defaults apply)."""
        with self._transaction("reading the team's permissions") as conn:
            row = self._one(conn, "get_team_policy")
        return None if row is None else dict(rows.decode_json(row["permissions"]))

    def list_people(self) -> list[Person]:
        """Everyone known (inactive people included), by name."""
        with self._transaction("listing people") as conn:
            return [rows.person_from_row(row) for row in self._all(conn, "list_people")]

    def add_token(self, token: TokenRecord, *, actor: str, message: str) -> TokenRecord:
        """Store a new token (its hash) and record it in the audit log, atomically."""
        with self._transaction("creating a token", write=True) as conn:
            self._run(conn, "insert_token", **rows.token_params(token))
            data = {
                "token": token.id,
                "person": token.person,
                "label": token.label,
                "expires_at": rows.time_param(token.expires_at),
            }
            self._append_event(conn, None, None, "token.created", actor, message, data)
            row = self._one(conn, "get_token", id=token.id)
        assert row is not None
        return rows.token_from_row(row)

    def find_token(self, secret_hash: str) -> TokenRecord | None:
        """The token whose secret has this hash, if any."""
        with self._transaction("looking up a token") as conn:
            row = self._one(conn, "get_token_by_hash", secret_hash=secret_hash)
        return None if row is None else rows.token_from_row(row)

    def get_token(self, token_id: str) -> TokenRecord:
        """The token ``token_id``; :class:`NotFound` if there is none."""
        with self._transaction("reading a token") as conn:
            row = self._one(conn, "get_token", id=token_id)
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return rows.token_from_row(row)

    def list_tokens(self, person: str | None = None) -> list[TokenRecord]:
        """Tokens (never their secrets), optionally of one person, oldest first."""
        with self._transaction("listing tokens") as conn:
            found = self._all(conn, "list_tokens", person=person)
        return [rows.token_from_row(row) for row in found]

    def revoke_token(self, token_id: str, *, actor: str) -> TokenRecord:
        """Revoke a token (again: no change) and record it in the audit log."""
        with self._transaction("revoking a token", write=True) as conn:
            row = self._one(conn, "get_token", id=token_id)
            if row is None:
                raise NotFound(f"no token {token_id!r}")
            done = self._run(
                conn,
                "revoke_token",
                id=token_id,
                revoked_at=rows.time_param(utcnow()),
                revoked_by=actor,
            )
            if done.rowcount:
                ended = self.end_token_sessions(conn, token_id, actor)
                data = {"token": token_id, "person": row["person"], "sessions_ended": ended}
                message = f"{actor} revoked token {token_id} of {row['person']}"
                self._append_event(conn, None, None, "token.revoked", actor, message, data)
            row = self._one(conn, "get_token", id=token_id)
        assert row is not None
        return rows.token_from_row(row)

    def live_admin_tokens(self) -> int:
        """How many unrevoked, unexpired tokens active admins hold."""
        with self._transaction("counting admin tokens") as conn:
            row = self._one(conn, "count_live_admin_tokens", now=rows.time_param(utcnow()))
        return int(row["n"]) if row else 0

    # -- workers ----------------------------------------------------------------------

    def heartbeat(self, executor_id: str, pid: int, hostname: str, kind: str) -> WorkerRecord:
        """Say that a process is alive; a new pid or host under the same id is a restart."""
        with self._transaction("recording a heartbeat", write=True) as conn:
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

    def list_workers(self) -> list[WorkerRecord]:
        """Every process known to the store, by executor id."""
        with self._transaction("listing workers") as conn:
            found = self._all(conn, "list_workers")
        return [rows.worker_from_row(row) for row in found]
