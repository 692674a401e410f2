"""The stores of the commands that only read (``release list``, ``release show``,
``workers``, ``incident list``, ``audit verify``, ``token list``): the same
:class:`~shipcaptain.store.base.Store` (its named queries, row decoders and records) on one
connection of the driver alone, without SQLAlchemy, which costs such a command ~0.2 s to
import, more than its own work (issue 27).

- SQLite: :class:`~shipcaptain.store.sqlite_read.SQLiteReader` (the standard library's
  ``sqlite3``, the file opened read-only);
- PostgreSQL: :class:`~shipcaptain.store.postgres_read.PostgresReader` (psycopg, a
  read-only session).

:func:`open_reader` takes one only when it reads exactly what the ordinary store would: a
plain URL, a database that can be reached, whose schema has every migration this
shipcaptain knows. Anything else gets None and the caller opens the store the ordinary way,
which creates, migrates or reports as every command always did. A database migrated by a
newer shipcaptain is refused with the same error as migrating it gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipcaptain.store.urls import plain_postgres_url, plain_sqlite_file

if TYPE_CHECKING:
    from shipcaptain.store.read_only import ReadOnlyStore


def open_reader(url: str) -> ReadOnlyStore | None:
    """The state database at ``url`` for a command that only reads it, without SQLAlchemy
    (see the module's docstring), or None when the store must be opened the ordinary way."""
    if (path := plain_sqlite_file(url)) is not None:
        from shipcaptain.store.sqlite_read import open_sqlite_reader

        return open_sqlite_reader(url, path)
    if (conninfo := plain_postgres_url(url)) is not None:
        from shipcaptain.store.postgres_read import open_postgres_reader

        return open_postgres_reader(url, conninfo)
    return None
