"""Reading a SQLite state database with the standard library alone: the commands that only
read (``release list``, ``release show``, ``workers``, ``incident list``, ``audit verify``).

Importing SQLAlchemy costs such a command ~0.2 s, more than all of its own work (issue 27).
:class:`SQLiteReader` is the same :class:`~shipcaptain.store.base.Store` (the same named
queries, the same row decoders, the same records) whose queries run on one ``sqlite3``
connection that opens the file read-only (``mode=ro``) and refuses to write
(``PRAGMA query_only``): a reader never creates, migrates or changes the database.

:func:`~shipcaptain.store.reader.open_reader` takes this way only when it reads exactly what
the ordinary store would: a plain ``sqlite:///`` URL of a file that exists, whose schema has
every migration this shipcaptain knows (see :mod:`shipcaptain.store.reader`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shipcaptain.errors import StoreError
from shipcaptain.store.read_only import ReadOnlyStore

#: how long a connection waits for a lock held by another process (seconds)
BUSY_TIMEOUT_S = 30.0


class SQLiteReader(ReadOnlyStore):
    """The store in one SQLite file, opened for reading only, on ``sqlite3``."""

    _conn: sqlite3.Connection | None

    backend = "sqlite"

    def __init__(self, url: str, path: Path) -> None:
        super().__init__(url)
        self._path = path
        self._queries = self.named_queries()
        self._depth = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                f"{self._path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # the reader says when a transaction begins
                check_same_thread=False,  # one connection, guarded by self._guard
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA query_only = ON")
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(
        self, doing: str, *, write: bool = False, synced: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """The connection in a read transaction (one snapshot of the database); a nested
        call shares it. ``write`` is refused: a reader never writes."""
        if write:
            raise self._refuse_write(doing)
        with self._guard:
            try:
                conn = self._connection()
                if self._depth == 0:
                    conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise self._failed(doing, exc) from exc
            self._depth += 1
            try:
                yield conn
            except sqlite3.Error as exc:
                raise self._failed(doing, exc) from exc
            finally:
                self._depth -= 1
                if self._depth == 0 and conn.in_transaction:
                    conn.execute("ROLLBACK")  # nothing to keep: it only read

    def _failed(self, doing: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"state database {self.url} failed while {doing}: {self._reason(exc)}")

    def _run(self, conn: sqlite3.Connection, query: str, **params: Any) -> sqlite3.Cursor:
        return conn.execute(self._queries[query], params)

    def _one(self, conn: sqlite3.Connection, query: str, **params: Any) -> dict[str, Any] | None:
        row = self._run(conn, query, **params).fetchone()
        return None if row is None else dict(row)

    def _all(self, conn: sqlite3.Connection, query: str, **params: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in self._run(conn, query, **params).fetchall()]


def open_sqlite_reader(url: str, path: Path) -> SQLiteReader | None:
    """A :class:`SQLiteReader` of the plain ``sqlite:///`` URL ``url`` (its file ``path``)
    when the file exists and its schema is current; None for the ordinary way (no file
    yet, migrations pending, a file ``sqlite3`` cannot open read-only). A database migrated
    by a newer shipcaptain: :class:`StoreError`, as when migrating."""
    if not path.is_file():
        return None
    reader = SQLiteReader(url, path)
    return reader.current_or_none(sqlite3.Error)
