"""The state store: one interface over SQLite and PostgreSQL.

``Store`` holds everything both backends share: the named queries, the records, the audit
chain and the translation of driver errors into :class:`StoreError`. A backend
(``SQLiteStore``, ``PostgresStore``) only says how to make its engine, how a writing
transaction starts and how to lock a critical section across processes.

Every method is synchronous and thread-safe (each call takes a connection from the pool),
and every write is idempotent where a replay after a crash could repeat it.

A public method whose transaction loses its connection before the commit was sent (the
database went away under it) runs again, a few times, when nothing of that call had
committed yet; never once a commit may have happened (:func:`_retried`).
"""

from __future__ import annotations

import functools
import inspect as pyinspect
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import TracebackType
from typing import Any, ClassVar, Self

from sqlalchemy import Connection, CursorResult, Engine, TextClause, inspect, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from shipcaptain.errors import StoreError
from shipcaptain.records import utcnow
from shipcaptain.store import rows
from shipcaptain.store.access import AccessStore
from shipcaptain.store.audit_log import AuditLogStore
from shipcaptain.store.gates import GateStore
from shipcaptain.store.incidents import IncidentStore
from shipcaptain.store.people import PeopleStore
from shipcaptain.store.releases import ReleaseStore
from shipcaptain.store.sqlfiles import load_migrations, load_queries
from shipcaptain.store.status_events import StatusEvents
from shipcaptain.store.steps import StepStore
from shipcaptain.store.urls import Backend, normalize_url
from shipcaptain.store.workers import WorkerStore
from shipcaptain.urls import mask_url, password_of

log = logging.getLogger("shipcaptain.store")

_MISSING_TABLE_HINTS = ("no such table: sc_", 'relation "sc_')

#: tries of a store call whose transaction lost its connection before its commit (the
#: connection itself is tried again for ``Store.reconnect_for`` seconds on each)
CALL_TRIES = 4


class ConnectionLost(StoreError):
    """The state database's connection broke while a transaction ran, before its commit
    was sent: nothing of it was committed (the server rolls back a transaction whose
    connection went away). ``retryable``: no write of the same store call had committed
    before it either, so the whole call may run again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Call(threading.local):
    """The store call this thread is in: how deep (a call may call others), and whether
    one of its write transactions committed (then it is never run again)."""

    depth = 0
    wrote = False


_call = _Call()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionLost) and exc.retryable


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` run again (bounded: ``CALL_TRIES`` in all, 0.25 s apart, then twice as
    long each time) when its transaction lost the connection before any commit of the
    call; never after a commit may have happened. The first try runs without tenacity (a
    store call is cheap; most never fail)."""

    def once(*args: Any, **kwargs: Any) -> Any:
        _call.depth, _call.wrote = 1, False
        try:
            return method(*args, **kwargs)
        finally:
            _call.depth, _call.wrote = 0, False

    def again_in(seconds: float) -> None:
        log.warning(
            "%s: the state database connection was lost before the commit; "
            "the call runs again in %.2g s",
            method.__qualname__,
            seconds,
        )

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        if _call.depth:  # the outermost call decides
            return method(*args, **kwargs)
        try:
            return once(*args, **kwargs)
        except ConnectionLost as lost:
            if not lost.retryable:
                raise
        again_in(0.25)
        time.sleep(0.25)
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(CALL_TRIES - 1),
            wait=wait_exponential(multiplier=0.5, max=2.0),  # 0.5 s, 1 s, ...
            before_sleep=lambda state: again_in(state.upcoming_sleep),
            reraise=True,
        )
        return retrying(once, *args, **kwargs)

    return call


def _lost_connection(exc: SQLAlchemyError) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Store(
    ReleaseStore,
    StepStore,
    GateStore,
    PeopleStore,
    WorkerStore,
    StatusEvents,
    AuditLogStore,
    IncidentStore,
    AccessStore,
    ABC,
):
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
        """A connection in a transaction; driver errors become :class:`StoreError`, a
        connection lost before the commit was sent :class:`ConnectionLost` (the store call
        runs again if nothing of it was committed: see :func:`_retried`)."""
        engine = self._write_engine if write else self._engine
        with self._writers_queue() if write else nullcontext():
            conn = self._connect(engine)
            with conn:
                committing = False
                try:
                    with conn.begin():
                        yield conn
                        committing = True
                except SQLAlchemyError as exc:
                    message = f"state database {self.url} failed while {doing}: {self._reason(exc)}"
                    if not committing and _lost_connection(exc):
                        raise ConnectionLost(message, retryable=not _call.wrote) from exc
                    raise StoreError(message) from exc
                finally:
                    if write and committing:  # committed, or perhaps (the commit failed)
                        _call.wrote = True

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


#: not store calls: they run no transaction of their own
_NOT_RETRIED = {"close", "queue_all_transactions", "use_audit_key"}


def _retry_store_calls(cls: type) -> None:
    """Every public method of the store (its mixins') becomes a :func:`_retried` call."""
    for name in dir(cls):
        if name.startswith("_") or name in _NOT_RETRIED:
            continue
        member = pyinspect.getattr_static(cls, name)
        if not pyinspect.isfunction(member) or pyinspect.isgeneratorfunction(member):
            continue
        setattr(cls, name, _retried(member))


_retry_store_calls(Store)
