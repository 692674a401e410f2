"""The PostgreSQL backend: for teams and several workers.

Critical sections (migrations, appends to the audit chain) take a transaction-level
advisory lock, so processes on different machines take turns; the lock goes away with the
transaction, also when a process dies.

Every statement, ``BEGIN``, ``COMMIT`` and ping is a round trip to the server, which is
most of what a store call costs here (issue 27), so:

- a transaction that only reads runs in autocommit (no ``BEGIN`` or ``COMMIT``): at the
  isolation level the store runs at, PostgreSQL's default ``READ COMMITTED``, every
  statement of a transaction sees its own snapshot anyway, so a read transaction of
  several statements was no more consistent than these statements run one by one;
- a pooled connection is pinged before use only when it sat unused for longer than
  ``PING_AFTER_S`` (``pool_pre_ping`` pinged before every transaction): one used a moment
  ago that the server dropped since fails at its first statement, before any commit, and
  the store call runs again (``store.base._retried``); within a store call that committed
  a write already (it cannot run again) every check-out is pinged.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from shipcaptain.store.base import _call
from shipcaptain.store.pooled import PooledStore
from shipcaptain.store.postgres_read import CONNECT_DEFAULTS

#: seconds a pooled connection may sit unused before it is pinged at its next check-out
PING_AFTER_S = 1.0
_LAST_USED = "shipcaptain_last_used"


def _returned(_dbapi: Any, record: ConnectionPoolEntry) -> None:
    record.info[_LAST_USED] = time.monotonic()


def _ping_if_idle(dbapi: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
    """Ping a connection that sat unused for more than ``PING_AFTER_S`` (a new one was
    just made), or any connection checked out by a store call that committed a write
    already: that call cannot run again, so its next transaction must not meet a dropped
    connection at its first statement. One the server dropped is replaced
    (``DisconnectionError``: the pool makes a new connection and checks out again)."""
    last = record.info.get(_LAST_USED)
    if last is None or (time.monotonic() - last <= PING_AFTER_S and not _call.wrote):
        return
    try:
        cursor = dbapi.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi.rollback()  # the ping's transaction: the connection is handed out idle
    except Exception as error:
        raise exc.DisconnectionError(f"the pooled connection is gone: {error}") from error


def lock_key(name: str) -> int:
    """A stable 64-bit advisory lock key for ``name`` (the same in every process)."""
    digest = hashlib.sha256(f"shipcaptain.store.{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_AUDIT_LOCK = lock_key("audit")


class PostgresStore(PooledStore):
    """The store in a PostgreSQL database."""

    backend = "postgresql"

    def _create_engine(self, url: str) -> Engine:
        query = make_url(url).query
        # as the commands that only read connect (store.postgres_read), unless the URL says
        connect_args = {k: v for k, v in CONNECT_DEFAULTS.items() if k not in query}
        engine = create_engine(url, connect_args=connect_args)
        event.listen(engine, "checkin", _returned)
        event.listen(engine, "checkout", _ping_if_idle)
        return engine

    def _reader(self, engine: Engine) -> Engine:
        return engine.execution_options(isolation_level="AUTOCOMMIT")

    def _snapshotter(self, engine: Engine) -> Engine:
        # a read whose statements must agree (the team of a permission check): one
        # snapshot for the transaction, not one a statement
        return engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)

    def _audit_lock_params(self) -> dict[str, Any]:
        return {"audit_key": _AUDIT_LOCK}

    def _try_start_params(self, synced: bool) -> dict[str, Any]:
        return {"synchronous_commit": "on" if synced else "off"}

    def _lock(self, conn: Connection, name: str) -> None:
        self._run(conn, "advisory_xact_lock", key=lock_key(name))
