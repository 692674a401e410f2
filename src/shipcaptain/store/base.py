"""The state store: one interface over SQLite and PostgreSQL.

``Store`` holds everything the backends share: the named queries, the records, the audit
chain and the translation of driver errors into :class:`StoreError`. How a query runs is
the one thing it leaves to a subclass (four methods: ``_transaction``, ``_run``, ``_one``,
``_all``), so there are two ways to reach the same tables with the same queries and the
same row decoders:

- :class:`~shipcaptain.store.pooled.PooledStore` (SQLAlchemy's pooled engines) for every
  process that writes: ``SQLiteStore`` and ``PostgresStore``;
- :class:`~shipcaptain.store.sqlite_read.SQLiteReader` (the standard library's ``sqlite3``,
  the file opened read-only) for the commands that only read a SQLite state database:
  SQLAlchemy costs ~0.2 s to import, more than such a command's own work (issue 27).

This module imports no database driver.

Every method is synchronous and thread-safe (each call takes a connection from the pool),
and every write is idempotent where a replay after a crash could repeat it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, ClassVar, Self

from shipcaptain.errors import StoreError
from shipcaptain.store.access import AccessStore
from shipcaptain.store.audit_log import AuditLogStore
from shipcaptain.store.driver import Connection, QueryResult
from shipcaptain.store.gates import GateStore
from shipcaptain.store.incidents import IncidentStore
from shipcaptain.store.people import PeopleStore
from shipcaptain.store.releases import ReleaseStore
from shipcaptain.store.sqlfiles import load_queries
from shipcaptain.store.status_events import StatusEvents
from shipcaptain.store.steps import StepStore
from shipcaptain.store.urls import Backend, mask_url, password_of
from shipcaptain.store.workers import WorkerStore

_MISSING_TABLE_HINTS = ("no such table: sc_", 'relation "sc_')


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
        self.reconnect_for = 0.0
        """Seconds to keep trying to connect while the database cannot be reached (an
        engine process waits out a short outage; a command reports it at once)."""

    @classmethod
    def named_queries(cls) -> dict[str, str]:
        """The backend's named queries: ``queries.sql`` and ``<backend>.sql``."""
        return load_queries("queries.sql") | load_queries(f"{cls.backend}.sql")

    # -- how a query runs (a driver's part) ---------------------------------------------

    @abstractmethod
    def _transaction(
        self, doing: str, *, write: bool = False
    ) -> AbstractContextManager[Connection]:
        """A connection in a transaction; driver errors become :class:`StoreError`."""

    @abstractmethod
    def _run(self, conn: Connection, query: str, **params: Any) -> QueryResult:
        """Run the named query; the result tells its ``rowcount``."""

    @abstractmethod
    def _one(self, conn: Connection, query: str, **params: Any) -> dict[str, Any] | None:
        """The first row of the named query, or None."""

    @abstractmethod
    def _all(self, conn: Connection, query: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of the named query."""

    def _lock(self, conn: Connection, name: str) -> None:
        """Hold a lock named ``name`` across processes until the transaction ends."""

    def queue_all_transactions(self) -> Callable[[], None]:
        """Make every transaction of this process on this database, whichever library
        opened it (the durable engine's own), wait its turn where the backend needs it
        (SQLite: one writer at a time); returns the undo. A no-op by default."""
        return lambda: None

    @abstractmethod
    def close(self) -> None:
        """Close the connections. The store can still be used: it reconnects."""

    @abstractmethod
    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet, in one transaction; the versions applied."""

    @abstractmethod
    def schema_version(self) -> int:
        """The newest migration applied (0 for an empty database)."""

    # -- shared -----------------------------------------------------------------------

    def _reason(self, exc: BaseException) -> str:
        origin = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(origin).strip().splitlines() if line.strip()]
        reason = " ".join(lines) or type(origin).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        if any(hint in reason for hint in _MISSING_TABLE_HINTS):
            reason += " (the state database has no shipcaptain tables yet: run the migrations)"
        return reason

    def _newer_schema(self, applied: Iterable[int], known: int) -> None:
        """Refuse a database migrated by a newer shipcaptain (StoreError)."""
        newest = max(applied, default=0)
        if newest > known:
            raise StoreError(
                f"the state database {self.url} has schema version {newest}, newer than "
                f"this shipcaptain knows ({known}): upgrade shipcaptain"
            )

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
