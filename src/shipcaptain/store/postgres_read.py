"""Reading a PostgreSQL state database with psycopg alone: the commands that only read.

Importing SQLAlchemy and making its engine cost such a command ~0.2 s of its ~0.45 s (issue
27; psycopg, which both ways import, ~0.07 s). :class:`PostgresReader` is the same
:class:`~shipcaptain.store.base.Store` (the same named queries, row decoders and records)
whose queries run on one psycopg connection in a read-only session
(``default_transaction_read_only``): the server itself refuses a write. It reads in
autocommit, as :class:`~shipcaptain.store.postgresql.PostgresStore` reads (see its
docstring), and connects as it does (``application_name`` shipcaptain, a 10 s connect
timeout, unless the URL says otherwise).

A named query's ``:name`` parameters become psycopg's ``%(name)s`` as SQLAlchemy's
``text()`` compiles them for psycopg (the same pattern, ``%`` doubled, ``\\:`` a colon);
``tests/integration/test_store_reader.py`` compares the two for every query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg

from shipcaptain.errors import StoreError
from shipcaptain.store.base import ConnectionLost
from shipcaptain.store.driver import CursorRows
from shipcaptain.store.read_only import ReadOnlyStore
from shipcaptain.store.sqlfiles import Statements

#: as PostgresStore connects (shipcaptain.store.postgresql), unless the URL says otherwise
CONNECT_DEFAULTS: dict[str, Any] = {"connect_timeout": 10, "application_name": "shipcaptain"}
#: SQLAlchemy's bind parameter of ``text()`` (``TextClause._bind_params_regex``)
_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)", re.UNICODE)


def pyformat(sql: str) -> str:
    """A named query with ``:name`` parameters in psycopg's ``%(name)s`` style."""
    escaped = sql.replace("%", "%%")
    return _BIND.sub(r"%(\1)s", escaped).replace("\\:", ":")


@cache
def _statements() -> Statements[str]:
    """The named queries as psycopg runs them, each written when first run."""
    return Statements(PostgresReader.named_queries(), pyformat)


class PostgresReader(CursorRows, ReadOnlyStore):
    """The store in a PostgreSQL database, read on one psycopg connection."""

    _conn: psycopg.Connection[Any] | None

    backend = "postgresql"

    def __init__(self, url: str, conninfo: str) -> None:
        super().__init__(url)
        self._conninfo = conninfo
        given = {key for key, _ in parse_qsl(urlsplit(conninfo).query)}
        self._defaults: dict[str, Any] = {
            k: v for k, v in CONNECT_DEFAULTS.items() if k not in given
        }
        self._sql = _statements()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self._conninfo, autocommit=True, **self._defaults)
            conn.execute("SET default_transaction_read_only = on")
            # what a transaction block begins with (only _snapshot opens one): one snapshot
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(
        self, doing: str, *, write: bool = False, synced: bool = True
    ) -> Iterator[psycopg.Connection[Any]]:
        """The connection, each statement its own read (autocommit, as the store reads);
        a nested call shares it. ``write`` is refused: a reader never writes."""
        if write:
            raise self._refuse_write(doing)
        with self._guard:
            try:
                yield self._connection()
            except psycopg.Error as exc:
                raise self._failed(doing, exc) from exc

    @contextmanager
    def _snapshot(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        """The connection in one transaction (REPEATABLE READ): its statements see one
        snapshot."""
        with self._transaction(doing) as conn, conn.transaction():
            yield conn

    def _failed(self, doing: str, exc: psycopg.Error) -> StoreError:
        """A driver's error as the store says it. A lost connection (or one that could not
        be made again) is dropped, and the store call runs again (``ConnectionLost``: a
        read may always run again, as the store on SQLAlchemy retries it)."""
        message = f"state database {self.url} failed while {doing}: {self._reason(exc)}"
        if isinstance(exc, psycopg.OperationalError):
            self.close()
            return ConnectionLost(message, retryable=True)
        return StoreError(message)

    def _run(self, conn: psycopg.Connection[Any], query: str, **params: Any) -> Any:
        return conn.execute(self._sql[query], params)


def open_postgres_reader(url: str, conninfo: str) -> PostgresReader | None:
    """A :class:`PostgresReader` of ``url`` (``conninfo``: it as libpq reads it) when the
    database can be reached and its schema is current; None for the ordinary way (it
    cannot be reached: the ordinary way tries again and says why; migrations pending). A
    database migrated by a newer shipcaptain: :class:`StoreError`, as when migrating."""
    reader = PostgresReader(url, conninfo)
    return reader.current_or_none(psycopg.Error)
