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
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

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
from shipcaptain.store.urls import Backend
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


class CommitUnknown(StoreError):
    """The state database's connection broke while a write's commit was on its way: the
    transaction may have committed or not, and the store cannot tell which. The store call
    is not run again (it could write twice); a caller whose write can be looked for (a gate
    opened, a result recorded) looks, and writes again only if it is not there
    (``engine.gates.open_gate``)."""


class _Call(threading.local):
    """The store call this thread is in: how deep (a call may call others), and whether
    one of its write transactions committed (then it is never run again)."""

    depth = 0
    wrote = False


_call = _Call()
_T = TypeVar("_T")


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
        from tenacity import (  # only once a call is tried again (~10 ms to import)
            Retrying,
            retry_if_exception,
            stop_after_attempt,
            wait_exponential,
        )

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(CALL_TRIES - 1),
            wait=wait_exponential(multiplier=0.5, max=2.0),  # 0.5 s, 1 s, ...
            before_sleep=lambda state: again_in(state.upcoming_sleep),
            reraise=True,
        )
        return retrying(once, *args, **kwargs)

    return call


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
        self, doing: str, *, write: bool = False, synced: bool = True
    ) -> AbstractContextManager[Connection]:
        """A connection in a transaction; driver errors become :class:`StoreError`.

        ``synced=False``: a write whose loss in a power cut (not a crash of the process) is
        harmless (a try's start, a heartbeat), committed without waiting for the disk where
        the backend can (SQLite: see ``store/sqlite.py``; PostgreSQL: a try's start turns
        ``synchronous_commit`` off in its first statement, ``try_start`` in
        ``postgresql.sql``; a heartbeat, one statement, commits as any other); the next
        synced commit makes it durable with itself."""

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

    def at_one_moment(self, read: Callable[[], _T]) -> _T:
        """``read()``, whose store calls that read all see one snapshot of the database: a
        view made of several reads (a release, its steps' tries, its gates) shows one
        moment, never half of a change committed between two of them (PostgreSQL's reads
        otherwise see a snapshot a statement). Run again as a whole when the connection is
        lost (its reads alone are not: they share the snapshot)."""
        with self._moment("reading at one moment"):
            return read()

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


#: not store calls: they run no transaction of their own
_NOT_RETRIED = {"close", "queue_all_transactions", "use_audit_key"}


def _retry_store_calls(cls: type, *, own: bool = False) -> None:
    """Every public method of the store (its mixins') becomes a :func:`_retried` call;
    ``own``: only those ``cls`` itself defines (a driver's ``migrate``, ...)."""
    for name in dir(cls):
        if name.startswith("_") or name in _NOT_RETRIED or (own and name not in vars(cls)):
            continue
        member = pyinspect.getattr_static(cls, name)
        if not pyinspect.isfunction(member) or pyinspect.isgeneratorfunction(member):
            continue
        setattr(cls, name, _retried(member))


_retry_store_calls(Store)
