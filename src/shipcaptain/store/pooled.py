"""The store on SQLAlchemy's pooled engines: how every process that writes reaches the state
database (``SQLiteStore``, ``PostgresStore``).

A backend only says how to make its engine, how a writing transaction starts and how to
lock a critical section across processes; the queries are the store's named queries
(:func:`~shipcaptain.store.sqlfiles.load_queries`), compiled once by SQLAlchemy for the
backend's dialect and run on the driver's own cursor in SQLAlchemy's connection and
transaction (``PooledStore._run``).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, inspect, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from shipcaptain.errors import StoreError
from shipcaptain.records import utcnow
from shipcaptain.store import rows
from shipcaptain.store.base import (
    CommitUnknown,
    ConnectionLost,
    Store,
    _call,
    _retry_store_calls,
)
from shipcaptain.store.driver import CursorRows
from shipcaptain.store.sqlfiles import Statements, load_migrations
from shipcaptain.store.urls import normalize_url

log = logging.getLogger("shipcaptain.store")


def _lost_connection(exc: SQLAlchemyError) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@dataclass(frozen=True)
class _DriverQuery:
    """A named query as the driver runs it: SQLAlchemy's text compiled once for the
    backend's dialect (its parameter style, ``%`` escaped for psycopg), and the order of
    its parameters where the style is positional (SQLite's ``?``)."""

    text: str
    order: tuple[str, ...] | None

    @classmethod
    def of(cls, query: str, dialect: Dialect) -> _DriverQuery:
        compiled = text(query).compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        return cls(compiled.string, order)

    def arguments(self, params: dict[str, Any]) -> Any:
        if self.order is None:
            return params
        return tuple(params[name] for name in self.order)


_STATEMENTS: dict[tuple[type, str, str], Statements[_DriverQuery]] = {}


class PooledStore(CursorRows, Store):
    """The store on a SQLAlchemy engine (a pool of connections)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._engine = self._create_engine(normalize_url(url))
        dialect = self._engine.dialect
        key = (type(self), dialect.name, dialect.paramstyle)
        if key not in _STATEMENTS:
            _STATEMENTS[key] = Statements(
                self.named_queries(), lambda sql: _DriverQuery.of(sql, dialect)
            )
        self._sql = _STATEMENTS[key]
        self._write_engine = self._writer(self._engine)
        self._unsynced_write_engine = self._writer(self._engine, synced=False)
        self._read_engine = self._reader(self._engine)
        self._snapshot_engine = self._snapshotter(self._engine)
        #: this thread's connection of ``at_one_moment``, while its reads run
        self._moments = threading.local()

    # -- what a backend provides ------------------------------------------------------

    @abstractmethod
    def _create_engine(self, url: str) -> Engine:
        """The SQLAlchemy engine for the normalised URL."""

    def _writer(self, engine: Engine, *, synced: bool = True) -> Engine:
        """The engine whose transactions may write (SQLite starts them IMMEDIATE);
        ``synced=False``: see ``Store._transaction``."""
        return engine

    def _reader(self, engine: Engine) -> Engine:
        """The engine of the transactions that only read (the same by default)."""
        return engine

    def _snapshotter(self, engine: Engine) -> Engine:
        """The engine of the reads whose statements must see one snapshot (the same by
        default: a read transaction is one snapshot where the backend's reads are
        transactions)."""
        return engine

    def _writers_queue(self) -> AbstractContextManager[Any]:
        """Held around each write transaction of this process (none by default)."""
        return nullcontext()

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _transaction(
        self, doing: str, *, write: bool = False, synced: bool = True
    ) -> Iterator[Connection]:
        """A connection in a transaction; driver errors become :class:`StoreError`, a
        connection lost before a write's commit was sent (or at any point of a read)
        :class:`ConnectionLost` (the store call runs again if nothing of it was committed:
        see :func:`~shipcaptain.store.base._retried`)."""
        held = None if write else getattr(self._moments, "conn", None)
        if held is not None:  # a read of at_one_moment: its snapshot
            yield held
            return
        if write:
            engine = self._write_engine if synced else self._unsynced_write_engine
        else:
            engine = self._read_engine
        with (
            self._writers_queue() if write else nullcontext(),
            self._begun(engine, doing, write) as conn,
        ):
            yield conn

    @contextmanager
    def _snapshot(self, doing: str) -> Iterator[Connection]:
        held = getattr(self._moments, "conn", None)
        if held is not None:  # within at_one_moment: the same snapshot
            yield held
            return
        with self._begun(self._snapshot_engine, doing, False) as conn:
            yield conn

    @contextmanager
    def _moment(self, doing: str) -> Iterator[None]:
        if getattr(self._moments, "conn", None) is not None:  # nested: the outer one's
            yield
            return
        with self._snapshot(doing) as conn:
            self._moments.conn = conn
            try:
                yield
            finally:
                self._moments.conn = None

    @contextmanager
    def _begun(self, engine: Engine, doing: str, write: bool) -> Iterator[Connection]:
        """A connection of ``engine`` in a transaction (see ``_transaction``)."""
        conn = self._connect(engine)
        with conn:
            committing = False
            try:
                with conn.begin():
                    yield conn
                    committing = True
            except SQLAlchemyError as exc:
                message = f"state database {self.url} failed while {doing}: {self._reason(exc)}"
                # a read's commit ends a transaction that wrote nothing: whatever
                # became of it, the read may run again; a write's may have committed
                if not _lost_connection(exc):
                    raise StoreError(message) from exc
                if not committing or not write:
                    raise ConnectionLost(message, retryable=not _call.wrote) from exc
                # a write's commit, lost on its way
                raise CommitUnknown(f"{message} (committed or not: unknown)") from exc
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

    def _run(self, conn: Connection, query: str, **params: Any) -> Any:
        """Run the named query on the driver's own cursor, inside SQLAlchemy's connection
        and transaction (pool, BEGIN, COMMIT, events): SQLAlchemy's ``execute`` cost about
        80 us of CPU a statement beside the driver's 15-60 (its compiled cache, bind and
        result processing, none of which a named query needs: ``_DriverQuery``), ~9
        statements per step (issue 27). A driver error is handled as SQLAlchemy handles
        it (wrapped, the connection invalidated when it was lost); statement listeners
        (``before_cursor_execute``) still hear every statement."""
        sql = self._sql[query]
        args = sql.arguments(params)
        cursor = conn.connection.cursor()
        try:
            if conn._has_events or conn.engine._has_events:
                for listen in conn.dispatch.before_cursor_execute:
                    listen(conn, cursor, sql.text, args, None, False)
            cursor.execute(sql.text, args)
        except BaseException as exc:
            cursor.close()
            conn._handle_dbapi_exception(exc, sql.text, args, cursor, None)
        return cursor

    def close(self) -> None:
        """Close every pooled connection. The store can still be used: it reconnects."""
        self._engine.dispose()

    # -- schema -----------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet, in one transaction; the versions applied.

        Idempotent, and safe when several processes call it at once: they take turns.
        A database that has every migration applied already (nearly every call: each
        command that writes, each engine's launch) is told by one read of the versions,
        without the write lock the migrations take (SQLite: waiting for every other
        writer of the file; the engine's own launch asked again right after its client).
        """
        migrations = load_migrations(self.backend)
        if self._applied_versions() == {m.version for m in migrations}:
            return []
        applied_now: list[int] = []
        with self._transaction("applying schema migrations", write=True) as conn:
            self._lock(conn, "migrations")
            self._run(conn, "create_schema_version_table")
            applied = {row["version"] for row in self._all(conn, "list_schema_versions")}
            self._newer_schema(applied, max((m.version for m in migrations), default=0))
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

    def _applied_versions(self) -> set[int] | None:
        """The versions of the migrations applied; None when they cannot be read (no
        table of them yet: a new database; or any error, which migrating tells again)."""
        try:
            with self._transaction("reading the schema versions") as conn:
                return {row["version"] for row in self._all(conn, "list_schema_versions")}
        except StoreError:
            return None

    def schema_version(self) -> int:
        """The newest migration applied (0 for an empty database)."""
        with self._transaction("reading the schema version") as conn:
            if not inspect(conn).has_table("sc_schema_version"):
                return 0
            versions = [row["version"] for row in self._all(conn, "list_schema_versions")]
        return max(versions, default=0)


_retry_store_calls(PooledStore, own=True)  # migrate and schema_version, as every store call
