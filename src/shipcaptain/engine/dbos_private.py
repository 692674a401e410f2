"""Every private part of DBOS that shipcaptain relies on, and only here.

DBOS's public API does not cover three things the engine needs:

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
  leaves at once instead of at the end of its slice (up to 5 s in a worker). A woken
  ``recv`` returns as at its timeout (no message, recorded as such), which the gate's wait
  already handles: it looks whether the process is stopping and leaves.

:func:`missing` lists what the installed DBOS lacks of these; :func:`check` turns that into
one clear error, which every engine process raises before it launches
(``tests/unit/test_dbos_private.py`` runs it against the installed version). The last
two are optional: without them a stopping engine lets DBOS wait its own way, and a gate's
wait leaves at its next slice.
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
    except ImportError:
        gaps.append("dbos._sys_db.SystemDatabase: not there")
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
