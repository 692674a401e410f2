"""A release's steps and timeline as tables (rich), for ``release show``, the live view of a
release that runs, and the stream of a followed release's events (CI logs, pipes).

The columns fit the terminal (see ``shipcaptain.cli.tables``): times, event kinds, step ids
and statuses stay whole, a message or a summary wraps inside its own column, so nothing is
cut off and no line is wider than the terminal. With no terminal and no ``COLUMNS``
nothing wraps: a timeline line reads as it always has (``16:54:05 step.succeeded
[build] [running → succeeded] built``), the event kind padded to 22 cells.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from shipcaptain.cli.tables import Column, cell, table_of
from shipcaptain.runbook.durations import format_between

if TYPE_CHECKING:
    from rich.console import RenderableType

    from shipcaptain.client import ReleaseView, StepView
    from shipcaptain.records import EventRecord

ICONS = {
    "pending": "·",
    "running": "▶",
    "waiting": "⏸",
    "succeeded": "✔",
    "failed": "✘",
    "skipped": "↷",
    "cancelled": "■",
    "timed_out": "⌛",
}
COLORS = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "running": "cyan",
    "waiting": "yellow",
    "skipped": "bright_black",
    "cancelled": "magenta",
    "rolled_back": "yellow",
    "failing": "red",
    "rolling_back": "yellow",
}


#: the cells an event kind takes at least: the kinds line up across the parts of a
#: timeline printed as it grows (all kinds but one are shorter)
KIND_WIDTH = 22

TIMELINE = (Column("TIME"), Column("EVENT", min_width=KIND_WIDTH), Column("", wrap=True))
STEPS = (Column("STEP"), Column("STATUS"), Column("TOOK", "right"), Column("", wrap=True))


def event_row(e: EventRecord, *, change: bool = False, color: str | None = None) -> list[Any]:
    """An event's cells: time, kind, and what it says (its step, who did it, with
    ``change`` the status change it records, then its message)."""
    where = f"[{e.step_id}] " if e.step_id else ""
    who = "" if e.actor == "engine" else f"({e.actor}) "
    status = f"[{e.change}] " if change and e.change else ""
    texts = [f"{e.at:%H:%M:%S}", e.kind, f"{where}{who}{status}{e.message}".rstrip()]
    return [cell(t, color) for t in texts] if color else texts


def timeline_table(
    events: Iterable[EventRecord],
    *,
    change: bool = False,
    indent: int = 0,
    color: str | None = None,
    fit_to: int | None = None,
) -> RenderableType:
    """Events as a table of one line each (more where a message wraps in its column)."""
    rows = [event_row(e, change=change, color=color) for e in events]
    return table_of(TIMELINE, rows, header=False, indent=indent, gap=1, fit_to=fit_to)


def print_events(events: Sequence[EventRecord], *, change: bool = False, indent: int = 0) -> None:
    """Print events as timeline lines (nothing for none)."""
    from shipcaptain.cli.tables import lines_of

    if events:
        for line in lines_of(timeline_table(events, change=change, indent=indent)):
            click.echo(line)


def _step_row(s: StepView, now: datetime | None) -> list[Any]:
    rec = s.record
    took = format_between(rec.started_at, rec.ended_at, now) if rec else ""
    tries = f"try {rec.attempt}" if rec and rec.attempt > 1 else ""
    summary = (rec.summary.splitlines()[0] if rec and rec.summary else "")[:80]
    extra = " (already done)" if rec and rec.already_done else ""
    icon = cell(ICONS.get(s.status, "?"), COLORS.get(s.status))
    return [
        cell("  ").append_text(icon).append(f" {s.id}"),
        s.status,
        " ".join(x for x in (took, tries) if x),
        summary + extra,
    ]


def steps_table(
    view: ReleaseView, now: datetime | None = None, *, fit_to: int | None = None
) -> RenderableType:
    """The steps of a release by phase: one table, so the columns line up across phases.
    ``now``: how long a step that runs has taken so far (the live view)."""
    rows: list[list[Any]] = []
    phase = None
    for s in view.steps:
        if s.phase != phase:
            phase = s.phase
            rows.append([cell(f" {phase}", bold=True), "", "", ""])
        rows.append(_step_row(s, now))
    return table_of(STEPS, rows, header=False, fit_to=fit_to)


def live_frame(
    view: ReleaseView,
    notices: Sequence[EventRecord],
    now: datetime,
    *,
    fit_to: int | None = None,
) -> RenderableType:
    """One frame of the live view: the release, its steps, the gates that wait for people
    and the latest ``notices`` (events worth seeing while it runs)."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    r = view.release
    parts: list[RenderableType] = [
        Text(f"{r.id}  {r.runbook_name} → {r.environment}  ")
        + Text(r.status, style=COLORS.get(r.status, "")),
        steps_table(view, now, fit_to=fit_to),
    ]
    for g in view.waiting_gates:
        waiting = Text(f"waiting for people: {g.step_id}: {g.prompt}", style="yellow")
        approve = Text(f"shipcaptain release approve {r.id} {g.step_id}", style="yellow")
        parts += [Padding(waiting, (0, 0, 0, 2)), Padding(approve, (0, 0, 0, 4))]
    if notices:
        parts.append(timeline_table(notices, indent=2, color="magenta", fit_to=fit_to))
    return Group(*parts)
