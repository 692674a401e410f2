"""DBOS's engine on PostgreSQL, made by shipcaptain and handed to DBOS.

See :class:`SystemDatabaseEngine`. The engine's processes (``release start``, workers, the
server's) and the client's DBOS client (a queued start, a decision sent to a release) use
it; on SQLite DBOS makes its own (it looks nowhere else there).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event, make_url

#: DBOS's pool on PostgreSQL: the connections it keeps open while idle, and the most it
#: opens at once (DBOS's own default). One opened beyond the first number is closed when it
#: is returned (docs/how-to/run-workers-on-postgresql.md, Notes, for what a process holds)
SYSTEM_DB_POOL_KEPT, SYSTEM_DB_POOL_MOST = 2, 20
#: a DBOS client's pool (a command that hands DBOS a release or a message): DBOSClient's own
#: default, kept as it is
CLIENT_POOL = 5

#: DBOS's idle-in-transaction timeout for its connections on PostgreSQL (its default: a
#: session left idle inside a transaction ends after a minute and gives its locks back)
SYSTEM_DB_IDLE_TRANSACTION_MS = 60_000


class SystemDatabaseEngine:
    """DBOS's engine on PostgreSQL, made here and handed to DBOS
    (``system_database_engine``), as DBOS makes its own: psycopg, ``application_name``
    ``dbos_transact``, a 10 s connect timeout unless the URL gives one, a ping before a
    connection is reused, the pool of :data:`SYSTEM_DB_POOL_KEPT` and
    :data:`SYSTEM_DB_POOL_MOST`, and ``idle_in_transaction_session_timeout`` of
    :data:`SYSTEM_DB_IDLE_TRANSACTION_MS` unless the URL's ``options`` set it (here in the
    connection's startup options: DBOS sends a ``SET`` and a ``COMMIT`` on each new one).

    What DBOS does with an engine of its own and not with this one: before it launches, it
    connects to the server's ``postgres`` database to see whether the state database exists
    (and creates it if not). A team whose shipcaptain role may not connect there (``REVOKE
    CONNECT ON DATABASE postgres FROM PUBLIC``, a ``pg_hba.conf`` that lists only the state
    database) got DBOS's warning on the terminal of every command that runs an engine and
    a ``FATAL: permission denied for database "postgres"`` in the server's log at every
    launch, the line a DBA's log alerts look for; so did ``DBOS.migrate``, which a command
    that hands DBOS a release or a message runs first
    (:func:`shipcaptain.engine.dbos_private.migrate` does its work on this engine). The
    state database exists: shipcaptain's migrations made its tables before DBOS launches.
    DBOS does not dispose of an engine it was given: :meth:`dispose`, after
    ``DBOS.destroy``, closes its connections, and one a straggling thread gives back later
    is closed then (as DBOS does for its own)."""

    def __init__(
        self,
        url: str,
        *,
        application_name: str = "dbos_transact",
        kept: int = SYSTEM_DB_POOL_KEPT,
        most: int = SYSTEM_DB_POOL_MOST,
    ) -> None:
        made = make_url(url).set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {"application_name": application_name}
        if "connect_timeout" not in made.query:
            connect_args["connect_timeout"] = 10
        given = made.query.get("options")
        given = given[-1] if isinstance(given, tuple) else given
        if "idle_in_transaction_session_timeout" not in (given or ""):
            timeout = f"-c idle_in_transaction_session_timeout={SYSTEM_DB_IDLE_TRANSACTION_MS}"
            connect_args["options"] = f"{given} {timeout}" if given else timeout
        self.engine = create_engine(
            made,
            connect_args=connect_args,
            pool_size=kept,
            max_overflow=most - kept,
            pool_timeout=30,
            pool_pre_ping=True,
        )
        self._disposed = False
        event.listen(self.engine, "checkin", self._close_if_disposed)

    def _close_if_disposed(self, dbapi_connection: Any, record: Any) -> None:
        if self._disposed:
            record.invalidate()

    def dispose(self) -> None:
        self._disposed = True
        self.engine.dispose()
