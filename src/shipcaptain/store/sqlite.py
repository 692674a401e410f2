"""The SQLite backend: the embedded default, one file, no server.

The file may be shared with the durable engine's own tables and with other processes, so
every connection turns on WAL (readers do not block the writer) and waits up to
``BUSY_TIMEOUT_S`` for a lock instead of failing at once. pysqlite's own transaction
handling is switched off so that the store says how each transaction begins: writes with
``BEGIN IMMEDIATE``, which takes the write lock at once and so serialises migrations and
appends to the audit chain across threads and processes; reads with a plain ``BEGIN``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from shipcaptain.errors import StoreError
from shipcaptain.store.base import Store
from shipcaptain.store.urls import sqlite_path

BUSY_TIMEOUT_S = 30.0
_WRITE_OPTION = "shipcaptain_write"


def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    connection: sqlite3.Connection = dbapi_connection
    connection.isolation_level = None  # the store emits BEGIN itself (see _on_begin)
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class SQLiteStore(Store):
    """The store in one SQLite file."""

    backend = "sqlite"

    def _create_engine(self, url: str) -> Engine:
        path = sqlite_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of the state database {path}: {exc}"
            ) from exc
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)
        return engine

    def _writer(self, engine: Engine) -> Engine:
        return engine.execution_options(**{_WRITE_OPTION: True})
