"""Incidents and their SLA clocks: deadlines from the runbook's SLA table, the SLA report.

Pure functions of their inputs (the time included), so tests drive them with any clock.
The durable timers that remind and escalate live in ``engine/incident_clock.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shipcaptain.errors import UsageError
from shipcaptain.records import IncidentRecord
from shipcaptain.runbook.durations import format_duration
from shipcaptain.runbook.model import Runbook, Sla

#: The SLA table of the deployment runbook, used when no runbook is at hand (an incident
#: opened by hand without a release).
DEFAULT_SLAS: dict[str, Sla] = {
    "P1": Sla(
        description="Customer-facing outage or security risk.", acknowledge=300.0, mitigate=1800.0
    ),
    "P2": Sla(
        description="Degraded feature or single-tenant impact.", acknowledge=900.0, mitigate=7200.0
    ),
}

#: a reminder goes out when this share of a deadline's window is left
REMIND_AT_LEFT = 0.2


def slas_of(rb: Runbook | None) -> Mapping[str, Sla]:
    return rb.slas if rb is not None and rb.slas else DEFAULT_SLAS


def owners_of(rb: Runbook | None) -> list[str]:
    if rb is None:
        return []
    people: list[str] = []
    for role in rb.incidents.owners:
        for person in rb.roles[role].members if role in rb.roles else []:
            if person not in people:
                people.append(person)
    return people


def sla_for(slas: Mapping[str, Sla], severity: str) -> Sla:
    if severity not in slas:
        known = ", ".join(slas) or "none"
        raise UsageError(f"unknown severity {severity!r}; the SLA table has: {known}")
    return slas[severity]


def new_incident(
    *,
    slas: Mapping[str, Sla],
    severity: str,
    summary: str,
    opened_by: str,
    opened_at: datetime,
    release_id: str | None = None,
    owners: list[str] | None = None,
    incident_id: str | None = None,
) -> IncidentRecord:
    """An incident with its deadlines: acknowledge and mitigate windows from the SLA table."""
    if not summary.strip():
        raise UsageError("an incident needs a summary (--summary)")
    sla = sla_for(slas, severity)
    return IncidentRecord(
        id=incident_id or f"inc-{uuid.uuid4().hex[:10]}",
        release_id=release_id,
        severity=severity,
        summary=summary.strip(),
        status="open",
        owners=list(owners or []),
        opened_by=opened_by,
        opened_at=opened_at,
        acknowledge_by=opened_at + timedelta(seconds=sla.acknowledge),
        mitigate_by=opened_at + timedelta(seconds=sla.mitigate),
    )


@dataclass(frozen=True)
class Deadline:
    """One SLA deadline of an incident: what must happen, by when, and when to remind."""

    what: str  # "acknowledge" or "mitigate"
    due: datetime
    remind_at: datetime


def deadlines(incident: IncidentRecord) -> list[Deadline]:
    found = []
    for what, due in (("acknowledge", incident.acknowledge_by), ("mitigate", incident.mitigate_by)):
        window = due - incident.opened_at
        found.append(Deadline(what, due, due - window * REMIND_AT_LEFT))
    return found


def done_at(incident: IncidentRecord, what: str) -> datetime | None:
    return incident.acknowledged_at if what == "acknowledge" else incident.mitigated_at


def breached(incident: IncidentRecord, what: str, now: datetime) -> bool:
    """Whether the deadline ``what`` is missed at ``now`` (done late, or not done and due)."""
    due = incident.acknowledge_by if what == "acknowledge" else incident.mitigate_by
    done = done_at(incident, what)
    return (done or now) > due


def clock_text(incident: IncidentRecord, now: datetime) -> str:
    """Both clocks, as the captain reads them: 'acknowledge in 4m 10s, mitigate in 29m'."""
    parts = []
    for d in deadlines(incident):
        done = done_at(incident, d.what)
        if done is not None:
            took = format_duration(round((done - incident.opened_at).total_seconds()))
            window = format_duration(round((d.due - incident.opened_at).total_seconds()))
            verdict = "MISSED" if done > d.due else "met"
            parts.append(f"{d.what}d after {took} (SLA {window}: {verdict})")
        elif now > d.due:
            ago = format_duration(round((now - d.due).total_seconds()))
            parts.append(f"{d.what} BREACHED {ago} ago")
        else:
            left = format_duration(round((d.due - now).total_seconds()))
            parts.append(f"{d.what} by {d.due:%H:%M:%S}Z (in {left})")
    return ", ".join(parts)


@dataclass(frozen=True)
class SlaLine:
    """One incident in the SLA report."""

    incident: IncidentRecord
    time_to_acknowledge: float | None
    time_to_mitigate: float | None
    acknowledge_met: bool | None  # None: not acknowledged yet and not due yet
    mitigate_met: bool | None


def sla_report(incidents: list[IncidentRecord], now: datetime) -> list[SlaLine]:
    lines = []
    for inc in sorted(incidents, key=lambda i: i.opened_at):
        met: dict[str, bool | None] = {}
        for what in ("acknowledge", "mitigate"):
            due = inc.acknowledge_by if what == "acknowledge" else inc.mitigate_by
            done = done_at(inc, what)
            met[what] = (done <= due) if done is not None else (False if now > due else None)
        lines.append(
            SlaLine(
                inc,
                inc.time_to_acknowledge,
                inc.time_to_mitigate,
                met["acknowledge"],
                met["mitigate"],
            )
        )
    return lines
