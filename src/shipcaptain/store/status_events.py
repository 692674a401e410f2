"""Events that record a change of status, appended with the status they change.

A mixin of :class:`~shipcaptain.store.base.Store`: the store methods that write a status
(releases, step runs, gates, takeovers) append the event given to them in the same
transaction, with ``before`` and ``after`` read there.
"""

from __future__ import annotations

from typing import Any

from shipcaptain import events
from shipcaptain.records import EventRecord
from shipcaptain.store.core import StoreCore
from shipcaptain.store.driver import Connection

#: An event that records a change of status: (its kind in the event catalogue, actor,
#: message, data). The store appends it in the transaction that writes the status, with
#: ``before`` and ``after`` (the status read there) added to its data: they cannot drift
#: from what was written.
StatusEvent = tuple[type[events.StatusChange], str, str, dict[str, Any]]


class StatusEvents(StoreCore):
    """Appends a :data:`StatusEvent` with the status it changes."""

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
        """Append a :data:`StatusEvent` with ``before`` and ``after`` in its data
        (``locked``, ``head``: see ``_append_event``)."""
        change, actor, message, data = event
        data = {**data, **change(before=before, after=after).status_data()}
        return self._append_event(
            conn, release_id, step_id, change.kind, actor, message, data, locked=locked, head=head
        )
