"""``shipcaptain incident`` and ``shipcaptain sla report``: incidents and their SLA clocks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from shipcaptain import codec
from shipcaptain.cli.common import Obj, handle_errors, json_option


def _when(value: str | None, option: str) -> datetime | None:
    from shipcaptain.errors import UsageError

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r}: write a date or time, e.g. 2026-11-01 or 2026-11-01T09:30"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _period(obj: Obj, since: str | None, until: str | None) -> list[Any]:
    """The incidents opened in ``[--since, --until)``."""
    start, end = _when(since, "--since"), _when(until, "--until")
    obj.reads_only()
    return obj.reader.list_incidents(start, end)


def print_incident(inc: Any, now: datetime) -> None:
    from shipcaptain.incidents import clock_text

    where = f" (release {inc.release_id})" if inc.release_id else ""
    click.echo(f"{inc.id} {inc.severity} {inc.status}{where}: {inc.summary}")
    click.echo(f"  opened {inc.opened_at:%Y-%m-%d %H:%M:%S}Z by {inc.opened_by}")
    click.echo(f"  clocks: {clock_text(inc, now)}")
    for verb in ("acknowledged", "mitigated", "resolved"):
        at = getattr(inc, f"{verb}_at")
        if at is not None:
            by = getattr(inc, f"{verb}_by")
            how = f": {inc.mitigation}" if verb == "mitigated" and inc.mitigation else ""
            click.echo(f"  {verb} {at:%Y-%m-%d %H:%M:%S}Z by {by}{how}")
    if inc.owners:
        click.echo(f"  owners: {', '.join(inc.owners)}")


@click.group()
def incident() -> None:
    """Incidents: open, acknowledge, mitigate, resolve; each with its SLA clocks."""


@incident.command("open")
@click.option("--severity", required=True, help="A severity of the SLA table, e.g. P1.")
@click.option("--summary", required=True, help="What is wrong, in one line.")
@click.option("--release", "release_id", help="The release it is about.")
@json_option
@click.pass_obj
@handle_errors
def open_cmd(obj: Obj, severity: str, summary: str, release_id: str | None, as_json: bool) -> None:
    """Open an incident: its acknowledge and mitigation deadlines come from the SLA table
    (the release's runbook, else P1 5m/30m and P2 15m/2h); the channels are notified and a
    worker runs its SLA clock (reminders before each deadline, escalation when breached)."""
    inc = obj.service.open_incident(
        severity=severity, summary=summary, user=obj.user, release_id=release_id
    )
    if as_json:
        click.echo(json.dumps(codec.incident_dict(inc), indent=2))
    else:
        print_incident(inc, inc.opened_at)


def _action(verb: str, action: str, doc: str) -> click.Command:
    @click.argument("incident_id")
    @click.option("--note", help="What was done (kept with the mitigation).")
    @json_option
    @click.pass_obj
    @handle_errors
    def command(obj: Obj, incident_id: str, note: str | None, as_json: bool) -> None:
        inc = obj.service.incident_action(incident_id, action, user=obj.user, note=note)
        if as_json:
            click.echo(json.dumps(codec.incident_dict(inc), indent=2))
        else:
            print_incident(inc, datetime.now(UTC))

    command.__doc__ = doc
    return click.command(verb)(command)


incident.add_command(
    _action("ack", "acknowledge", "Acknowledge an incident (who and when are recorded).")
)
incident.add_command(
    _action("mitigate", "mitigate", "Record that an incident is mitigated (stops its clocks).")
)
incident.add_command(_action("resolve", "resolve", "Resolve an incident."))


@incident.command("list")
@click.option("--since", help="Opened at or after this date/time (UTC).")
@click.option("--until", help="Opened before this date/time (UTC).")
@json_option
@click.pass_obj
@handle_errors
def list_cmd(obj: Obj, since: str | None, until: str | None, as_json: bool) -> None:
    """Incidents, newest first, with their clocks."""
    found = _period(obj, since, until)
    if as_json:
        click.echo(json.dumps([codec.incident_dict(i) for i in found], indent=2))
        return
    if not found:
        click.echo("no incidents")
    now = datetime.now(UTC)
    for inc in found:
        print_incident(inc, now)


@incident.command("show")
@click.argument("incident_id")
@json_option
@click.pass_obj
@handle_errors
def show_cmd(obj: Obj, incident_id: str, as_json: bool) -> None:
    """One incident: its deadlines and who acknowledged, mitigated and resolved it, when."""
    obj.reads_only()
    inc = obj.reader.get_incident(incident_id)
    if as_json:
        click.echo(json.dumps(codec.incident_dict(inc), indent=2))
    else:
        print_incident(inc, datetime.now(UTC))


@click.group()
def sla() -> None:
    """Service level agreements: how incidents kept the runbook's SLA table."""


def _seconds(value: float | None) -> str:
    from shipcaptain.runbook.durations import format_duration

    return "-" if value is None else format_duration(round(value))


def _met(value: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "running"}[value]


@sla.command("report")
@click.option("--since", help="Incidents opened at or after this date/time (UTC).")
@click.option("--until", help="Incidents opened before this date/time (UTC).")
@json_option
@click.pass_obj
@handle_errors
def report_cmd(obj: Obj, since: str | None, until: str | None, as_json: bool) -> None:
    """Per incident: time to acknowledge and to mitigate, and whether each SLA was met."""
    from shipcaptain.incidents import sla_report

    lines = sla_report(_period(obj, since, until), datetime.now(UTC))
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "incident": line.incident.id,
                        "severity": line.incident.severity,
                        "release_id": line.incident.release_id,
                        "opened_at": line.incident.opened_at.isoformat(),
                        "time_to_acknowledge_s": line.time_to_acknowledge,
                        "time_to_mitigate_s": line.time_to_mitigate,
                        "acknowledge_met": line.acknowledge_met,
                        "mitigate_met": line.mitigate_met,
                    }
                    for line in lines
                ],
                indent=2,
            )
        )
        return
    if not lines:
        click.echo("no incidents in that period")
        return
    from shipcaptain.cli.tables import Column, print_table

    columns = [
        Column("INCIDENT"),
        Column("SEV"),
        Column("OPENED", wrap=True),
        Column("TTA", "right"),
        Column("ACK SLA", wrap=True),
        Column("TTM", "right"),
        Column("MITIGATE SLA", wrap=True),
    ]
    rows = [
        [
            line.incident.id,
            line.incident.severity,
            f"{line.incident.opened_at:%Y-%m-%d %H:%M:%S}",
            _seconds(line.time_to_acknowledge),
            _met(line.acknowledge_met),
            _seconds(line.time_to_mitigate),
            _met(line.mitigate_met),
        ]
        for line in lines
    ]
    print_table(columns, rows)
    acks = [x.acknowledge_met for x in lines if x.acknowledge_met is not None]
    mits = [x.mitigate_met for x in lines if x.mitigate_met is not None]
    noun = "incident" if len(lines) == 1 else "incidents"
    click.echo(
        f"{len(lines)} {noun}: acknowledge SLA met {sum(acks)}/{len(acks)}, "
        f"mitigate SLA met {sum(mits)}/{len(mits)}"
    )


def register(group: click.Group) -> None:
    group.add_command(incident)
    group.add_command(sla)
