"""What every part of the store shares, declared once.

The store is one class (:class:`~shipcaptain.store.base.Store`) made of mixins, one per
concept (releases, steps, gates, people, workers, audit log, incidents, access). Each mixin
uses the plumbing of ``Store`` (transactions, named queries, locks) and a few methods of
the others (appending an event, reading a release). :class:`StoreCore` declares those, with
their types, so that a mixin is checked against the real signatures; the class that
defines one overrides the declaration (mypy checks the two agree).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from shipcaptain.store.driver import Connection, QueryResult

if TYPE_CHECKING:
    from shipcaptain.records import EventRecord, ReleaseRecord, StepRunRecord
    from shipcaptain.store.status_events import StatusEvent


class StoreCore:
    """The base of every store mixin: what they use of each other and of ``Store``."""

    # -- the plumbing (Store) ----------------------------------------------------------

    def _transaction(
        self, doing: str, *, write: bool = False, synced: bool = True
    ) -> AbstractContextManager[Connection]:
        """A connection in a transaction; driver errors become StoreError."""
        raise NotImplementedError

    def _moment(self, doing: str) -> AbstractContextManager[Any]:
        """Held around ``Store.at_one_moment``'s reads: one snapshot they all read from
        (here, a snapshot whose connection nested store calls share: the readers')."""
        return self._snapshot(doing)

    def _snapshot(self, doing: str) -> AbstractContextManager[Connection]:
        """A connection in a read transaction whose statements all see one snapshot of the
        database (a read transaction, where each one does: SQLite's)."""
        return self._transaction(doing)

    def _run(self, conn: Connection, query: str, **params: Any) -> QueryResult:
        """Run the named query."""
        raise NotImplementedError

    def _one(self, conn: Connection, query: str, **params: Any) -> dict[str, Any] | None:
        """The named query's first row, or None."""
        raise NotImplementedError

    def _all(self, conn: Connection, query: str, **params: Any) -> list[dict[str, Any]]:
        """The named query's rows."""
        raise NotImplementedError

    def _lock(self, conn: Connection, name: str) -> None:
        """Hold a lock named ``name`` across processes until the transaction ends."""
        raise NotImplementedError

    def _audit_lock_params(self) -> dict[str, Any]:
        """The parameters with which the named queries ``try_start`` and ``result_start``
        also take the audit chain's lock (PostgreSQL's do: a round trip fewer); empty when
        they do not, and the chain's lock is taken where the event is appended."""
        return {}

    def _try_start_params(self, synced: bool) -> dict[str, Any]:
        """The parameters with which the named query ``try_start`` sets how its
        transaction commits, where the query does that itself (PostgreSQL's: whether the
        commit waits for the WAL's flush); empty where the transaction does."""
        return {}

    # -- what the mixins provide each other --------------------------------------------

    def _append_event(
        self,
        conn: Connection,
        release_id: str | None,
        step_id: str | None,
        kind: str,
        actor: str,
        message: str,
        data: dict[str, Any] | None,
        *,
        locked: bool = False,
        head: tuple[int, str] | None = None,
    ) -> EventRecord:
        """Append an event to the audit log (AuditLogStore)."""
        raise NotImplementedError

    def _status_event(
        self,
        conn: Connection,
        release_id: str | None,
        step_id: str | None,
        event: StatusEvent,
        before: str | None,
        after: str | None,
        *,
        locked: bool = False,
        head: tuple[int, str] | None = None,
    ) -> EventRecord:
        """Append a status change's event (StatusEvents)."""
        raise NotImplementedError

    def _get_release(self, conn: Connection, release_id: str) -> ReleaseRecord:
        """A release, or NotFound (ReleaseStore)."""
        raise NotImplementedError

    def _put_step_run(
        self, conn: Connection, step: StepRunRecord, event: StatusEvent | None
    ) -> None:
        """Write one try of a step and its status event, in ``conn``'s transaction
        (StepStore; see its ``upsert_step_run``)."""
        raise NotImplementedError

    def end_token_sessions(self, conn: Connection, token_id: str, actor: str) -> int:
        """End the dashboard sessions opened with a token (AccessStore)."""
        raise NotImplementedError
