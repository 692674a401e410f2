"""What the store's methods see of the database driver that runs their queries.

A method of the store (:mod:`~shipcaptain.store.releases`, :mod:`~shipcaptain.store.gates`,
...) opens a transaction, hands its connection back to the store's ``_run``, ``_one`` and
``_all`` with a query's name and parameters, and reads at most a result's ``rowcount``. It
never calls the driver itself, so the same methods run on SQLAlchemy
(:class:`~shipcaptain.store.pooled.PooledStore`) and on the standard library's ``sqlite3``
(:class:`~shipcaptain.store.sqlite_read.SQLiteReader`).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias

#: a connection in a transaction, as the store's ``_transaction`` yields it: opaque to the
#: store's methods (SQLAlchemy's ``Connection``, or a ``sqlite3.Connection``)
Connection: TypeAlias = Any


class QueryResult(Protocol):
    """What a method reads of a query it ran: how many rows it changed."""

    @property
    def rowcount(self) -> int: ...
