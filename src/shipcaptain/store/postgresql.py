"""The PostgreSQL backend: for teams and several workers.

Critical sections (migrations, appends to the audit chain) take a transaction-level
advisory lock, so processes on different machines take turns; the lock goes away with the
transaction, also when a process dies.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import make_url

from shipcaptain.store.pooled import PooledStore

CONNECT_TIMEOUT_S = 10


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for ``name`` (the same in every process)."""
    digest = hashlib.sha256(f"shipcaptain.store.{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresStore(PooledStore):
    """The store in a PostgreSQL database."""

    backend = "postgresql"

    def _create_engine(self, url: str) -> Engine:
        query = make_url(url).query
        connect_args: dict[str, object] = {}
        if "connect_timeout" not in query:
            connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in query:
            connect_args["application_name"] = "shipcaptain"
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    def _lock(self, conn: Connection, name: str) -> None:
        self._run(conn, "advisory_xact_lock", key=lock_key(name))
