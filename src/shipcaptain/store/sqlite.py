"""The SQLite backend: the embedded default, one file, no server.

SQLite has one writer at a time. A writer that finds the file locked sleeps in SQLite's
busy handler (1, 2, 5, 10 ms...) even when the lock is free again a few microseconds
later; with many steps ending at once that was most of a step's cost. So the write
transactions of one process queue first on a Python lock per database file
(``WriterQueue``; a hand-over costs microseconds) and only wait in SQLite for other
processes. The engine also queues the transactions of the durable-execution library on
the same file there (``queue_all_transactions``).

The file may be shared with the durable engine's own tables and with other processes, so
every connection turns on WAL (readers do not block the writer) and waits up to
``BUSY_TIMEOUT_S`` for a lock instead of failing at once. pysqlite's own transaction
handling is switched off so that the store says how each transaction begins: writes with
``BEGIN IMMEDIATE``, which takes the write lock at once and so serialises migrations and
appends to the audit chain across threads and processes; reads with a plain ``BEGIN``.

A write's commit waits until the WAL is on disk (``synchronous = FULL``, as DBOS's own
connections): with ``NORMAL`` a power cut (not a crash of the process: the WAL is in the
operating system's cache then) loses the last commits, and since a plain step records its
result only in the store (docs/explanation/durable-engine.md), a finished step would run
again. The exceptions are writes whose loss in a power cut is harmless
(``Store._transaction(synced=False)``: a try's start, whose loss makes the try one that
never started, which runs as a try interrupted by a crash would; a heartbeat, whose loss
makes its process look stopped a beat earlier than it did): they commit with ``NORMAL``,
and the next synced commit makes them durable with itself (the WAL is written in order).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry, Pool

from shipcaptain.errors import StoreError
from shipcaptain.store.pooled import PooledStore
from shipcaptain.store.sqlite_read import BUSY_TIMEOUT_S
from shipcaptain.store.urls import sqlite_path

_WRITE_OPTION = "shipcaptain_write"
_QUEUED = "shipcaptain_queued"
_STORE_OPTION = "shipcaptain_store"
_SYNCED_OPTION = "shipcaptain_synced"
_SYNCHRONOUS = "shipcaptain_synchronous"


class WriterQueue:
    """The queue of one process's transactions on one SQLite file.

    Re-entrant for the thread that holds it (a store write's own BEGIN, nested calls);
    released by whoever ends the transaction that took it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0

    def enter(self) -> None:
        me = threading.get_ident()
        if self._owner == me:
            self._depth += 1
            return
        self._lock.acquire()
        self._owner, self._depth = me, 1

    def exit(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.exit()


_QUEUES: dict[str, WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


def writer_queue(path: str) -> WriterQueue:
    """The process's queue for the SQLite file at ``path``."""
    real = os.path.realpath(path)
    with _QUEUES_LOCK:
        return _QUEUES.setdefault(real, WriterQueue())


def queue_all_transactions(path: str) -> Callable[[], None]:
    """Queue every transaction of this process on the SQLite file at ``path`` (whichever
    library opened the connection) on that file's ``WriterQueue``; returns the undo.

    The queue is taken when a transaction begins, before any SQLite lock, and given back
    when it commits or rolls back. The store's own writes take it before they check out a
    connection (a thread waiting for its turn must not hold one of the pool's
    connections, which the thread whose turn it is may need); its reads do not take it.

    The undo stops new transactions from queuing; one that began before it still gives
    its turn back when it ends (the listeners that do so stay: ``_hand_back``). Removed
    with the undo, they left a turn taken for ever: a workflow thread DBOS left running
    as an engine stopped began a read just before the undo and ended it just after, and
    the next write of the process (a rehearsal's next release) waited for ever.
    """
    queue = writer_queue(path)
    real = os.path.realpath(path)
    files: dict[int, bool] = {}
    _hand_back()

    def ours(conn: Connection) -> bool:
        key = id(conn.engine)
        if key not in files:
            db = conn.engine.url.database
            files[key] = (
                conn.dialect.name == "sqlite" and bool(db) and os.path.realpath(str(db)) == real
            )
        return files[key]

    def on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_STORE_OPTION) and not options.get(_WRITE_OPTION):
            return  # the store's reads need no turn (WAL); its writes took it before connecting
        if ours(conn):
            queue.enter()
            conn.info.setdefault(_QUEUED, []).append(queue)

    event.listen(Engine, "begin", on_begin)

    def undo() -> None:  # once; again: nothing
        with _QUEUES_LOCK:
            if event.contains(Engine, "begin", on_begin):
                event.remove(Engine, "begin", on_begin)

    return undo


def _on_end(conn: Connection) -> None:
    """A transaction that took a turn (``queue_all_transactions``) ended: the turn back.
    Every connection of the process passes here, PostgreSQL's too: one that was lost is
    not asked for its ``info`` (that would try to reconnect it, and fail while its
    transaction is not rolled back); its turns went back when it was invalidated."""
    if conn.invalidated or conn.closed:
        return
    held: list[WriterQueue] | None = conn.info.get(_QUEUED)
    if held:
        held.pop().exit()


def _on_checkin(_dbapi: Any, record: ConnectionPoolEntry, *_exception: object) -> None:
    """A connection back in its pool whose transaction never ended (a BEGIN that failed),
    or one invalidated (lost, or closed by its pool) with its transaction open: its turns
    back."""
    for queue in reversed(record.info.pop(_QUEUED, None) or []):
        queue.exit()


def _hand_back() -> None:
    """The listeners that give turns back, for every connection of the process, from the
    first ``queue_all_transactions`` on and never removed."""
    with _QUEUES_LOCK:
        if event.contains(Engine, "commit", _on_end):
            return
        event.listen(Engine, "commit", _on_end)
        event.listen(Engine, "rollback", _on_end)
        event.listen(Pool, "checkin", _on_checkin)
        event.listen(Pool, "invalidate", _on_checkin)


# ---- unixepoch('subsec') on an older SQLite ---------------------------------------------------

#: SQLite understands ``unixepoch('subsec')`` from 3.42. The durable-execution library (DBOS)
#: writes it into the defaults of its SQLite tables on Python 3.12 and newer, taking for
#: granted the SQLite that python.org's builds bundle; a Python built against an older system
#: SQLite (Debian 12 has 3.40) gets NULL from it, and every workflow insert then fails with
#: "NOT NULL constraint failed: workflow_status.created_at". So on such a SQLite every
#: connection of the process gets a ``unixepoch`` that understands it (SQLite lets an
#: application-defined function overload a built-in one).
SUBSEC_BUILT_IN = sqlite3.sqlite_version_info >= (3, 42, 0)
_NOW = frozenset({"now"})
_SUBSEC = frozenset({"subsec", "subsecond"})


def unixepoch(*args: object) -> float | int:
    """SQLite's ``unixepoch`` for the current time: ``unixepoch()``, ``unixepoch('now')``,
    with ``'subsec'`` for milliseconds; any other time value is refused by name."""
    words = {str(a).lower() for a in args}
    if not words <= _NOW | _SUBSEC:
        raise ValueError(
            f"unixepoch{args!r}: only the current time is supported on SQLite "
            f"{sqlite3.sqlite_version}"
        )
    now = time.time()
    return now if words & _SUBSEC else int(now)


def _give_unixepoch(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("unixepoch", -1, unixepoch)


if not SUBSEC_BUILT_IN:
    # every pool of the process: the store's, and the engines DBOS and its client make
    event.listen(Pool, "connect", _give_unixepoch)


def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    connection: sqlite3.Connection = dbapi_connection
    connection.isolation_level = None  # the store emits BEGIN itself (see _on_begin)
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    options = conn.get_execution_options()
    immediate = options.get(_WRITE_OPTION, False)
    if immediate:
        # FULL: the commit waits for the WAL on disk; NORMAL (a write whose loss in a power
        # cut is harmless, see Store._transaction) does not; set between transactions
        level = "FULL" if options.get(_SYNCED_OPTION, True) else "NORMAL"
        if conn.info.get(_SYNCHRONOUS, "FULL") != level:
            conn.exec_driver_sql(f"PRAGMA synchronous = {level}")
            conn.info[_SYNCHRONOUS] = level
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class SQLiteStore(PooledStore):
    """The store in one SQLite file."""

    backend = "sqlite"

    def _create_engine(self, url: str) -> Engine:
        path = sqlite_path(url)
        self._path = path
        self._queue = writer_queue(str(path))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of the state database {path}: {exc}"
            ) from exc
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
            execution_options={_STORE_OPTION: True},
        )
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)
        return engine

    def _writers_queue(self) -> Any:
        return self._queue.held()

    def queue_all_transactions(self) -> Callable[[], None]:
        return queue_all_transactions(str(self._path))

    def _writer(self, engine: Engine, *, synced: bool = True) -> Engine:
        return engine.execution_options(**{_WRITE_OPTION: True, _SYNCED_OPTION: synced})
