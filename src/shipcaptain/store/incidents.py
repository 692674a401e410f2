"""Incidents, notifications and release threads in the store (migration 0005).

A mixin of :class:`~shipcaptain.store.base.Store`: the same named queries, transactions
and error translation as every other record. Writes are idempotent where a replay after a
crash could repeat them (an incident's id is chosen by the caller; the first
acknowledgement, mitigation and resolution count).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shipcaptain import events
from shipcaptain.errors import InvalidState, NotFound
from shipcaptain.records import (
    INCIDENT_STATUSES,
    IncidentRecord,
    NotificationRecord,
    opened_within,
    utcnow,
)
from shipcaptain.store import rows
from shipcaptain.store.core import StoreCore
from shipcaptain.store.rows import incident_from_row, json_param, notification_from_row, time_param

__all__ = ["INCIDENT_STATUSES", "IncidentRecord", "IncidentStore", "NotificationRecord"]


class IncidentStore(StoreCore):
    """The incident, notification and thread methods of the store."""

    def open_incident(self, incident: IncidentRecord) -> IncidentRecord:
        """Store a new incident (the same id again returns the stored one) and its event."""
        with self._transaction("opening an incident", write=True) as conn:
            created = self._run(
                conn,
                "insert_incident",
                id=incident.id,
                release_id=incident.release_id,
                severity=incident.severity,
                summary=incident.summary,
                owners=json_param(incident.owners),
                opened_by=incident.opened_by,
                opened_at=time_param(incident.opened_at),
                acknowledge_by=time_param(incident.acknowledge_by),
                mitigate_by=time_param(incident.mitigate_by),
            ).rowcount
            if created:
                self._append_event(
                    conn,
                    incident.release_id,
                    None,
                    events.IncidentOpened.kind,
                    incident.opened_by,
                    f"{incident.severity} incident {incident.id} opened: {incident.summary}",
                    {
                        "incident": incident.id,
                        **events.IncidentOpened(None, incident.status).status_data(),
                        "severity": incident.severity,
                        "acknowledge_by": time_param(incident.acknowledge_by),
                        "mitigate_by": time_param(incident.mitigate_by),
                    },
                )
            row = self._one(conn, "get_incident", id=incident.id)
        assert row is not None
        return incident_from_row(row)

    def get_incident(self, incident_id: str) -> IncidentRecord:
        with self._transaction("reading an incident") as conn:
            row = self._one(conn, "get_incident", id=incident_id)
        if row is None:
            raise NotFound(f"no incident {incident_id!r} (see `shipcaptain incident list`)")
        return incident_from_row(row)

    def list_incidents(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[IncidentRecord]:
        """Incidents opened in ``[since, until)`` (either end open), newest first."""
        with self._transaction("listing incidents") as conn:
            found = [incident_from_row(r) for r in self._all(conn, "list_incidents")]
        return opened_within(found, since, until)

    def open_incident_of(self, release_id: str) -> IncidentRecord | None:
        with self._transaction("reading a release's incident") as conn:
            row = self._one(conn, "open_incident_of_release", release_id=release_id)
        return None if row is None else incident_from_row(row)

    def unmitigated_incidents_of(self, release_id: str) -> list[IncidentRecord]:
        """A release's incidents that nobody has mitigated yet, oldest first."""
        with self._transaction("reading a release's incidents") as conn:
            rows = self._all(conn, "unmitigated_incidents_of_release", release_id=release_id)
        return [incident_from_row(r) for r in rows]

    def record_incident_action(
        self,
        incident_id: str,
        action: str,
        by: str,
        *,
        at: datetime | None = None,
        mitigation: str | None = None,
    ) -> IncidentRecord:
        """Acknowledge, mitigate or resolve (``action``), with who and when, and its event.

        Doing it a second time is refused (InvalidState): the first time counts."""
        query = {
            "acknowledge": "acknowledge_incident",
            "mitigate": "mitigate_incident",
            "resolve": "resolve_incident",
        }[action]
        past = {"acknowledge": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}
        when = at or utcnow()
        params: dict[str, Any] = {"id": incident_id, "at": time_param(when), "by": by}
        if action == "mitigate":
            params["mitigation"] = mitigation
        with self._transaction(f"recording that an incident is {past[action]}", write=True) as conn:
            row = self._one(conn, "get_incident", id=incident_id)
            if row is None:
                raise NotFound(f"no incident {incident_id!r} (see `shipcaptain incident list`)")
            changed = self._run(conn, query, **params).rowcount
            if not changed:
                before = incident_from_row(row)
                raise InvalidState(
                    f"incident {incident_id} is already {past[action]} "
                    f"({before.status}); the first time counts"
                )
            after = self._one(conn, "get_incident", id=incident_id)
            assert after is not None
            self._append_event(
                conn,
                row["release_id"],
                None,
                events.incident_acted(past[action]).kind,
                by,
                f"{by} {past[action]} incident {incident_id}"
                + (f": {mitigation}" if mitigation else ""),
                {
                    "incident": incident_id,
                    **events.incident_acted(past[action])(
                        row["status"], after["status"]
                    ).status_data(),
                },
            )
        return incident_from_row(after)

    def record_incident_notice(
        self, incident: IncidentRecord, kind: str, deadline: str, message: str
    ) -> bool:
        """Append the event of a reminder or an escalation (``kind``) of one deadline of an
        incident, once: True when appended now, False when that deadline already has one.

        The SLA clock's step that does this runs again when the process running it dies
        before the step's checkpoint (or when a clock taken over still runs on its first
        process): the deadline is still reminded and escalated once. Checked under the
        audit chain's lock, so two processes doing it at once append one event."""
        with self._transaction("recording an incident's reminder", write=True) as conn:
            self._lock(conn, "audit")
            for row in self._all(conn, "events_of_kind", kind=kind, release_id=incident.release_id):
                data = rows.event_from_row(row).data
                if (data.get("incident"), data.get("deadline")) == (incident.id, deadline):
                    return False
            self._append_event(
                conn,
                incident.release_id,
                None,
                kind,
                "engine",
                message,
                {"incident": incident.id, "deadline": deadline},
            )
        return True

    def record_notification(
        self,
        *,
        release_id: str | None,
        incident_id: str | None,
        kind: str,
        channel: str,
        text: str,
        status: str,
        attempts: int,
        error: str | None,
    ) -> NotificationRecord:
        record = NotificationRecord(
            id=uuid.uuid4().hex,
            release_id=release_id,
            incident_id=incident_id,
            kind=kind,
            channel=channel,
            text=text,
            status=status,
            attempts=attempts,
            error=error,
            at=utcnow(),
        )
        with self._transaction("recording a notification", write=True) as conn:
            self._run(conn, "insert_notification", **rows.params(record))
        return record

    def list_notifications(self, release_id: str) -> list[NotificationRecord]:
        with self._transaction("listing notifications") as conn:
            rows = self._all(conn, "list_notifications", release_id=release_id)
        return [notification_from_row(r) for r in rows]

    def incident_notifications(self, incident_id: str) -> list[NotificationRecord]:
        """The notifications of an incident (its page, reminders, escalations), oldest first."""
        with self._transaction("listing an incident's notifications") as conn:
            found = self._all(conn, "list_incident_notifications", incident_id=incident_id)
        return [notification_from_row(r) for r in found]

    def release_thread(self, release_id: str, channel: str) -> str | None:
        with self._transaction("reading a release's thread") as conn:
            row = self._one(conn, "get_release_thread", release_id=release_id, channel=channel)
        return None if row is None else str(row["ts"])

    def remember_release_thread(self, release_id: str, channel: str, ts: str) -> str:
        """Keep ``ts`` as the release's thread in ``channel`` unless one is kept; the kept one."""
        with self._transaction("keeping a release's thread", write=True) as conn:
            self._run(conn, "insert_release_thread", release_id=release_id, channel=channel, ts=ts)
            row = self._one(conn, "get_release_thread", release_id=release_id, channel=channel)
        assert row is not None
        return str(row["ts"])
