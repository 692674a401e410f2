"""What the store's methods see of the database driver that runs their queries.

A method of the store (:mod:`~shipcaptain.store.releases`, :mod:`~shipcaptain.store.gates`,
...) opens a transaction, hands its connection back to the store's ``_run``, ``_one`` and
``_all`` with a query's name and parameters, and reads at most a result's ``rowcount``. It
never calls the driver itself, so the same methods run on SQLAlchemy
(:class:`~shipcaptain.store.pooled.PooledStore`) and on the standard library's ``sqlite3``
(:class:`~shipcaptain.store.sqlite_read.SQLiteReader`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

#: a connection in a transaction, as the store's ``_transaction`` yields it: opaque to the
#: store's methods (SQLAlchemy's ``Connection``, a ``sqlite3.Connection``, psycopg's)
Connection: TypeAlias = Any


class QueryResult(Protocol):
    """What a method reads of a query it ran: how many rows it changed."""

    @property
    def rowcount(self) -> int: ...


def column_names(cursor: Any) -> list[str]:
    """The names of a result's columns. psycopg's ``description`` builds a ``Column`` (its
    type looked up) for each column at every look, ~20 us for a dozen columns, ~5 results
    a step: its result's names alone are read (as psycopg's ``dict_row`` reads them), ~1
    us. Any other DB-API cursor: its ``description``."""
    result = getattr(cursor, "pgresult", None)
    if result is not None:
        return [result.fname(i).decode() for i in range(result.nfields)]
    return [column[0] for column in cursor.description]


class CursorRows:
    """``_one`` and ``_all`` of a store whose ``_run`` returns the driver's own cursor
    (``PooledStore``, ``PostgresReader``): rows as dicts by column name, the cursor closed."""

    if TYPE_CHECKING:

        def _run(self, conn: Connection, query: str, **params: Any) -> Any: ...

    def _one(self, conn: Connection, query: str, **params: Any) -> dict[str, Any] | None:
        cursor = self._run(conn, query, **params)
        try:
            row = cursor.fetchone()
            return None if row is None else dict(zip(column_names(cursor), row, strict=True))
        finally:
            cursor.close()

    def _all(self, conn: Connection, query: str, **params: Any) -> list[dict[str, Any]]:
        cursor = self._run(conn, query, **params)
        try:
            rows = cursor.fetchall()
            names = column_names(cursor) if rows else []
            return [dict(zip(names, row, strict=True)) for row in rows]
        finally:
            cursor.close()
