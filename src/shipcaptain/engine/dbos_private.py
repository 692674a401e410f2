"""Every private part of DBOS that shipcaptain relies on, and only here.

DBOS's public API does not cover these things the engine needs:

- **the registry of durable functions** (``dbos._dbos._get_or_create_dbos_registry()``
  and its ``workflow_info_map``; a step that runs on its own is registered as a workflow
  named ``<temp>.<step name>``): what a worker says it can run on start, and what
  ``tests/acceptance/test_topology.py`` checks against the source;
- **DBOS's own recovery hand-over** (``DBOSClient._sys_db.reenqueue_for_recovery``): it
  puts a workflow that is still PENDING on a gone process back on its queue, and does
  nothing when a live process has taken it meanwhile, so an SLA clock of a dead worker
  runs once even when several workers notice at once (``resume_workflow`` would move it
  however it stands);
- **the workflows running in this process** (``dbos._dbos._dbos_global_instance.
  _active_workflows_set.activeList()``): a stopping engine waits for them itself, because
  DBOS's own wait sleeps a whole second before its first look;
- **the ``DBOS.recv`` calls waiting in this process** (the system database's
  ``notifications_map``): a stopping engine wakes them, so a release waiting at a gate
  leaves at once instead of at the end of its slice (up to 5 s in a worker), and a gate's
  wait need not end every few seconds to look (each end records checkpoints:
  ``durable.WOKEN_SLICE``). A woken ``recv`` returns as at its timeout (no message,
  recorded as such), which the gate's wait already handles: it looks whether the process
  is stopping and leaves;
- **DBOS.migrate's work on an engine of shipcaptain's** (``SystemDatabase.create`` with
  ``engine`` and its ``run_migrations``): ``DBOS.migrate`` makes an engine of its own,
  and with it looks into the server's ``postgres`` database, which a hardened server's
  role may not connect to (see :mod:`shipcaptain.engine.system_database`);
- **the threads ``DBOS.destroy`` joins** (``_dbos_global_instance._background_threads``,
  and which of them runs the SQLite system database's ``run_notification_listener`` or the
  PostgreSQL one's ``run_notifier``): a stopping engine takes them off
  (:func:`leave_polling_listener`), as each sleeps a whole interval between two looks
  (the notifier: ``NOTIFY_COALESCE``) and ends on its own.

:func:`missing` lists what the installed DBOS lacks of these; :func:`check` turns that into
one clear error, which every engine process raises before it launches
(``tests/unit/test_dbos_private.py`` runs it against the installed version). The last
three are optional: without them a stopping engine lets DBOS wait its own way, a gate's
wait looks every slice (1-5 s) and leaves at its next one, and DBOS.destroy joins the
listener as it always did.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from typing import Any

from shipcaptain.errors import ShipError

#: how DBOS names the workflow it wraps a step in when the step runs on its own
TEMP_PREFIX = "<temp>."

#: the parameters of ``SystemDatabase.reenqueue_for_recovery`` this module passes
_REENQUEUE_PARAMS = ("workflow_id", "executor_ids", "recovery_queue_name")


def dbos_version() -> str:
    try:
        return metadata.version("dbos")
    except metadata.PackageNotFoundError:  # pragma: no cover - shipcaptain needs it
        return "unknown"


def registered_names() -> list[str]:
    """The names of every workflow registered in this process (steps as ``<temp>.name``)."""
    from dbos._dbos import _get_or_create_dbos_registry

    return list(_get_or_create_dbos_registry().workflow_info_map)


def reenqueue_for_recovery(
    client: Any, workflow_id: str, gone_executor: str, queue_name: str
) -> bool:
    """Put ``workflow_id`` back on ``queue_name`` if it is still PENDING on
    ``gone_executor`` (a ``DBOSClient``'s system database does it); whether it moved."""
    moved: bool = client._sys_db.reenqueue_for_recovery(workflow_id, [gone_executor], queue_name)
    return moved


def active_workflows() -> list[str] | None:
    """The ids of the workflows running in this process; None when this DBOS version does
    not tell (or DBOS is not launched)."""
    from dbos import _dbos

    dbos = getattr(_dbos, "_dbos_global_instance", None)
    active = getattr(dbos, "_active_workflows_set", None)
    if active is None or not hasattr(active, "activeList"):
        return None
    found: list[str] = active.activeList()
    return found


def _receivers() -> Any:
    """The system database's waiters of ``DBOS.recv`` in this process, or None."""
    from dbos import _dbos

    dbos = getattr(_dbos, "_dbos_global_instance", None)
    sys_db = getattr(dbos, "_sys_db_field", None)
    waiters = getattr(sys_db, "notifications_map", None)
    return waiters if hasattr(waiters, "snapshot") else None


def can_wake_receivers() -> bool:
    """Whether :func:`wake_receivers` reaches the ``DBOS.recv`` calls of this process (the
    installed DBOS keeps them where this module looks, and DBOS is launched)."""
    return _receivers() is not None


def receivers_waiting() -> int:
    """How many topics ``DBOS.recv`` calls of this process wait on (0 when unknown)."""
    waiters = _receivers()
    return 0 if waiters is None else len(waiters.snapshot())


def wake_receivers() -> int:
    """Wake every ``DBOS.recv`` waiting in this process (each returns as at its timeout,
    with no message, unless one has arrived); how many keys were woken (0 when this DBOS
    version does not tell, or DBOS is not launched)."""
    waiters = _receivers()
    if waiters is None:
        return 0
    found = waiters.snapshot()
    for _key, _components, signal in found:
        signal.set()
    return len(found)


#: Seconds between two flushes of DBOS's coalesced notifications on PostgreSQL (its
#: ``run_notifier`` thread; DBOS's default is 0.01 s). They carry only workflow events and
#: streams, which shipcaptain does not use (a gate's messages are notified by the system
#: database's own trigger), so the flush has nothing to send; it only woke a thread a
#: hundred times a second in every engine process (~4 ms of CPU a second, idle or not).
NOTIFY_COALESCE = 1.0


def _sqlite(sys_db: Any) -> bool:
    try:
        from dbos._sys_db_sqlite import SQLiteSystemDatabase
    except ImportError:
        return False
    return isinstance(sys_db, SQLiteSystemDatabase)


def _sleeping_threads() -> tuple[Any, list[Any]] | None:
    """DBOS's launched instance and those of its background threads that sleep an interval
    between two looks, nothing waking them: the notification listener of a SQLite system
    database, and the notifier of a PostgreSQL one (its listener ends when its connection
    is closed); None when DBOS is not launched or does not tell."""
    from dbos import _dbos

    dbos = getattr(_dbos, "_dbos_global_instance", None)
    sys_db = getattr(dbos, "_sys_db_field", None)
    threads = getattr(dbos, "_background_threads", None)
    if sys_db is None or not isinstance(threads, list):
        return None
    targets = [getattr(sys_db, "run_notifier", None)]
    if _sqlite(sys_db):
        targets.append(getattr(sys_db, "run_notification_listener", None))
    # the thread's target while it runs (threading keeps it until run() returns)
    found = [
        t
        for t in threads
        if any(f is not None and getattr(t, "_target", None) == f for f in targets)
    ]
    return dbos, found


def _polling_listener() -> tuple[Any, Any] | None:
    """DBOS's launched instance and its notification listener thread, when that thread
    polls a SQLite system database (between two looks it sleeps, and nothing wakes it);
    None otherwise (PostgreSQL's listener ends when its connection is closed)."""
    found = _sleeping_threads()
    if found is None:
        return None
    dbos, threads = found
    listen = getattr(getattr(dbos, "_sys_db_field", None), "run_notification_listener", None)
    for thread in threads:
        if getattr(thread, "_target", None) == listen:
            return dbos, thread
    return None


def leave_polling_listener() -> int:
    """Take DBOS's threads that sleep an interval (:func:`_sleeping_threads`) off the
    threads ``DBOS.destroy`` joins: the SQLite listener sleeps its polling interval between
    two looks (0.1 s in a CLI's engine, 0.5 s in a worker), the PostgreSQL notifier
    ``NOTIFY_COALESCE``, and nothing wakes them, so every engine shutdown waited half an
    interval on average for them. They are daemons: once DBOS is destroyed each ends at
    its next look (the system database's ``_run_background_processes`` is False; the
    notifier's last flush has nothing to send), and an error in a last look then is not
    even logged. How many were taken off (0: not launched, or a DBOS that does not tell:
    destroy joins them as before)."""
    found = _sleeping_threads()
    if found is None:
        return 0
    dbos, threads = found
    for thread in threads:
        dbos._background_threads.remove(thread)
    return len(threads)


#: the parameters of ``SystemDatabase.create`` this module passes
_CREATE_PARAMS = (
    "system_database_url",
    "engine_kwargs",
    "engine",
    "schema",
    "serializer",
    "executor_id",
)


def migrate(url: str, engine: Any) -> None:
    """What ``DBOS.migrate(url)`` does (the system database's schema made or brought up to
    date), on ``engine``, a SQLAlchemy engine of shipcaptain's for ``url``: DBOS neither
    makes an engine of its own nor looks into the server's ``postgres`` database."""
    from dbos._serialization import DefaultSerializer
    from dbos._sys_db import SystemDatabase

    system_db = SystemDatabase.create(
        system_database_url=url,
        engine_kwargs={},
        engine=engine,
        schema="dbos",  # DBOS.migrate's
        serializer=DefaultSerializer(),
        executor_id=None,
    )
    try:
        system_db.run_migrations()
    finally:
        system_db.destroy()  # not the engine: DBOS leaves one it was given


def missing(client: Any = None) -> list[str]:
    """What the installed DBOS lacks of the private parts above, one line each (empty:
    nothing). ``client``: a ``DBOSClient`` to look at as well."""
    gaps: list[str] = []
    try:
        from dbos._dbos import _get_or_create_dbos_registry

        registry = _get_or_create_dbos_registry()
        if not isinstance(getattr(registry, "workflow_info_map", None), dict):
            gaps.append("dbos._dbos registry: no dict workflow_info_map")
    except ImportError:
        gaps.append("dbos._dbos._get_or_create_dbos_registry: not there")
    try:
        from dbos._sys_db import SystemDatabase

        method = getattr(SystemDatabase, "reenqueue_for_recovery", None)
        if method is None:
            gaps.append("dbos._sys_db.SystemDatabase.reenqueue_for_recovery: not there")
        else:
            params = tuple(inspect.signature(method).parameters)[1:]
            if params != _REENQUEUE_PARAMS:
                gaps.append(
                    "dbos._sys_db.SystemDatabase.reenqueue_for_recovery: takes "
                    f"({', '.join(params)}), not ({', '.join(_REENQUEUE_PARAMS)})"
                )
        create = getattr(SystemDatabase, "create", None)
        params = () if create is None else tuple(inspect.signature(create).parameters)
        if not set(_CREATE_PARAMS) <= set(params):
            gaps.append(
                f"dbos._sys_db.SystemDatabase.create: takes ({', '.join(params)}), not "
                f"({', '.join(_CREATE_PARAMS)})"
            )
        if not hasattr(SystemDatabase, "run_migrations"):
            gaps.append("dbos._sys_db.SystemDatabase.run_migrations: not there")
    except ImportError:
        gaps.append("dbos._sys_db.SystemDatabase: not there")
    try:
        from dbos._serialization import DefaultSerializer  # noqa: F401
    except ImportError:
        gaps.append("dbos._serialization.DefaultSerializer: not there")
    if client is not None and not hasattr(client, "_sys_db"):
        gaps.append("DBOSClient._sys_db: not there")
    from dbos import _dbos

    if not hasattr(_dbos, "_dbos_global_instance"):
        gaps.append("dbos._dbos._dbos_global_instance: not there (optional)")
    try:
        from dbos._sys_db import KeySignal, ThreadSafeEventDict

        if not (hasattr(ThreadSafeEventDict, "snapshot") and hasattr(KeySignal, "set")):
            gaps.append("dbos._sys_db.ThreadSafeEventDict.snapshot: not there (optional)")
    except ImportError:
        gaps.append("dbos._sys_db.ThreadSafeEventDict: not there (optional)")
    return gaps


def check(client: Any = None) -> None:
    """Raise a clear error if the installed DBOS lacks a private part the engine needs
    (the optional one only logs through :func:`missing`)."""
    gaps = [g for g in missing(client) if not g.endswith("(optional)")]
    if gaps:
        raise ShipError(
            f"the installed DBOS {dbos_version()} lacks what shipcaptain's engine relies on "
            f"(see shipcaptain/engine/dbos_private.py): {'; '.join(gaps)}. Install the DBOS "
            "version of requirements.lock, or adapt that module to this one."
        )
