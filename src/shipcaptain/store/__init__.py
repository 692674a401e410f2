"""shipcaptain's own state: releases, step runs, gates, decisions, audit events, workers.

One interface, :class:`Store`, with a SQLite backend (the embedded default) and a
PostgreSQL backend, picked from the URL by :func:`open_store`::

    store = open_store("sqlite:///.shipcaptain/state.db")
    store.migrate()

The durable engine keeps its own tables; these are the domain model for the CLI, the web
UI and the audit trail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipcaptain.records import (
    CLOSED_GATE_STATUSES,
    FINISHED_STEP_STATUSES,
    GATE_STATUSES,
    RELEASE_STATUSES,
    STEP_STATUSES,
    AuditCheck,
    DecisionRecord,
    EventRecord,
    GateRecord,
    GateStatus,
    ReleaseRecord,
    ReleaseStatus,
    StepRunRecord,
    StepStart,
    StepStatus,
    WorkerRecord,
    new_release_id,
    utcnow,
)
from shipcaptain.store.audit import GENESIS_HASH
from shipcaptain.store.base import Store
from shipcaptain.store.urls import backend_of, mask_url, normalize_url

if TYPE_CHECKING:
    from shipcaptain.store.postgresql import PostgresStore
    from shipcaptain.store.sqlite import SQLiteStore

__all__ = [
    "CLOSED_GATE_STATUSES",
    "FINISHED_STEP_STATUSES",
    "GATE_STATUSES",
    "GENESIS_HASH",
    "RELEASE_STATUSES",
    "STEP_STATUSES",
    "AuditCheck",
    "DecisionRecord",
    "EventRecord",
    "GateRecord",
    "GateStatus",
    "PostgresStore",
    "ReleaseRecord",
    "ReleaseStatus",
    "SQLiteStore",
    "StepRunRecord",
    "StepStart",
    "StepStatus",
    "Store",
    "WorkerRecord",
    "backend_of",
    "mask_url",
    "new_release_id",
    "normalize_url",
    "open_store",
    "utcnow",
]


def open_store(url: str) -> Store:
    """The store at ``url`` (``sqlite:///file.db`` or ``postgresql://...``).

    Nothing connects yet; the first call that needs the database does, and raises
    :class:`~shipcaptain.errors.StoreError` if it cannot. Call :meth:`Store.migrate` once
    before use (it is cheap when nothing is pending).
    """
    if backend_of(url) == "postgresql":
        from shipcaptain.store.postgresql import PostgresStore

        return PostgresStore(url)
    from shipcaptain.store.sqlite import SQLiteStore

    return SQLiteStore(url)


def __getattr__(name: str) -> Any:
    # the backends on SQLAlchemy load when asked for: a command that only reads a SQLite
    # file runs without SQLAlchemy (see shipcaptain.store.sqlite_read)
    if name == "PostgresStore":
        from shipcaptain.store.postgresql import PostgresStore

        return PostgresStore
    if name == "SQLiteStore":
        from shipcaptain.store.sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
