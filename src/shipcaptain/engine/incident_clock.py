"""An incident's SLA clock as a durable workflow (``incident-clock/<id>``).

For each deadline (acknowledge, then mitigate) it sleeps durably until the reminder time,
reminds the owners if the thing is not done, sleeps until the deadline and escalates if
it is still not done. Each look-and-notify is one checkpointed step, so a restarted
worker resumes the clock where it was; after a restart only the rest of each wait is
waited (``durable.sleep``). A look whose process died before its checkpoint runs again:
it records the deadline's reminder (or escalation) only if none is recorded, and sends it
only if no sending of it was recorded, so each deadline is reminded and escalated once.
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS

from shipcaptain import events, incidents
from shipcaptain.codec import decode_time
from shipcaptain.engine import durable, notify
from shipcaptain.engine.runtime import runtime
from shipcaptain.records import IncidentRecord


@DBOS.step(name="shipcaptain.incident.deadlines")
def _deadlines(incident_id: str) -> list[dict[str, Any]]:
    inc = runtime().store.get_incident(incident_id)
    return [
        {"what": d.what, "due": d.due.timestamp(), "remind_at": d.remind_at.timestamp()}
        for d in incidents.deadlines(inc)
    ]


@DBOS.step(name="shipcaptain.incident.look")
def _look(incident_id: str, what: str, due: float, escalate: bool) -> bool:
    """Remind (before) or escalate (at) the deadline ``what`` if it is not met; True if
    the incident needs no more of this deadline's clock."""
    rt = runtime()
    inc = rt.store.get_incident(incident_id)
    if inc.status == "resolved" or incidents.done_at(inc, what) is not None:
        return True
    kind, text = notice(inc, what, due, escalate)
    # once per deadline, though this step runs again when its process died before its
    # checkpoint: the event first, then the message unless its sending was recorded
    if rt.store.record_incident_notice(inc, kind, what, text) or not any(
        (n.kind, n.text) == (kind, text) for n in rt.store.incident_notifications(inc.id)
    ):
        notify.notify_incident(inc.id, kind, text)
    return False


def notice(inc: IncidentRecord, what: str, due: float, escalate: bool) -> tuple[str, str]:
    """The event kind and the text of the reminder (or the escalation) of a deadline."""
    owners = ", ".join(inc.owners) or "the on-call SRE"
    due_text = f"{decode_time(_iso(due)):%H:%M:%S}Z"
    if escalate:
        return events.IncidentBreached.kind, (
            f"ESCALATION: {inc.severity} incident {inc.id} was not {what}d by {due_text} "
            f"(SLA breached): {inc.summary}. Owners: {owners}."
        )
    return events.IncidentReminder.kind, (
        f"Reminder to {owners}: {inc.severity} incident {inc.id} must be {what}d by "
        f"{due_text}: {inc.summary}. `shipcaptain incident "
        f"{'ack' if what == 'acknowledge' else 'mitigate'} {inc.id}`"
    )


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


@DBOS.workflow(name="shipcaptain.incident_clock")
def incident_clock(incident_id: str) -> dict[str, Any]:
    with runtime().working():
        outcome: dict[str, Any] = {}
        for d in _deadlines(incident_id):
            durable.sleep(d["remind_at"] - durable.clock())
            if _look(incident_id, d["what"], d["due"], False):
                outcome[d["what"]] = "met"
                continue
            durable.sleep(d["due"] - durable.clock())
            outcome[d["what"]] = (
                "met" if _look(incident_id, d["what"], d["due"], True) else "breached"
            )
        return outcome
