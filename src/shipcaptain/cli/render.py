"""Human and JSON renderings of plans, releases and timelines."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import click

from shipcaptain.client import ReleaseView, WorkerStatus
from shipcaptain.plan import ReleasePlan
from shipcaptain.runbook.durations import format_duration
from shipcaptain.store import EventRecord, ReleaseRecord

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


def release_dict(r: ReleaseRecord) -> dict[str, Any]:
    data = dataclasses.asdict(r)
    data.pop("runbook_text", None)
    return data


def view_dict(view: ReleaseView) -> dict[str, Any]:
    return {
        "release": release_dict(view.release),
        "steps": [
            {
                "id": s.id,
                "phase": s.phase,
                "title": s.title,
                "action": s.action,
                "status": s.status,
                "needs": s.needs,
                **(
                    {
                        k: v
                        for k, v in dataclasses.asdict(s.record).items()
                        if k not in ("release_id", "step_id", "status")
                    }
                    if s.record
                    else {}
                ),
            }
            for s in view.steps
        ],
        "gates": [dataclasses.asdict(g) for g in view.gates],
        "events": [dataclasses.asdict(e) for e in view.events],
    }


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    if start is None:
        return ""
    stop = end or now
    if stop is None:
        return ""
    return format_duration(round((stop - start).total_seconds(), 1))


def print_plan(plan: ReleasePlan, *, show_rollback: bool) -> None:
    rb = plan.runbook
    values = ", ".join(f"{k}={v}" for k, v in plan.values.items())
    click.echo(
        f"Plan for {rb.name}" + (f" ({values})" if values else "") + ": "
        f"{len(plan.steps)} steps in {len(plan.waves)} waves; nothing is executed.\n"
    )
    for index, wave in enumerate(plan.waves, 1):
        parallel = " (in parallel)" if len(wave) > 1 else ""
        click.echo(click.style(f"wave {index}{parallel}", bold=True))
        for s in wave:
            flags = []
            if s.owner:
                flags.append(f"owner {s.owner}")
            if s.guards:
                flags.append("guards " + ", ".join(s.guards))
            if s.attempts > 1:
                flags.append(f"{s.attempts} tries")
            if s.on_failure != "halt":
                flags.append(f"on failure {s.on_failure}")
            if not s.idempotent:
                flags.append("not idempotent")
            click.echo(f"  [{s.phase}] {s.id}: {s.description}")
            if flags:
                click.echo(click.style(f"      {'; '.join(flags)}", dim=True))
    if show_rollback:
        click.echo(click.style("\nrollback plan", bold=True))
        if not plan.rollback:
            click.echo("  (no rollback steps; steps with `undo` are undone in reverse order)")
        for s in plan.rollback:
            click.echo(f"  {s.id}: {s.description}")


def print_release_list(releases: list[ReleaseRecord]) -> None:
    if not releases:
        click.echo("no releases yet")
        return
    click.echo(
        f"{'ID':<24} {'RUNBOOK':<22} {'ENV':<11} {'VERSION':<9} {'STATUS':<12} {'BY':<10} CREATED"
    )
    for r in releases:
        status = click.style(f"{r.status:<12}", fg=COLORS.get(r.status))
        click.echo(
            f"{r.id:<24} {r.runbook_name:<22} {r.environment:<11} "
            f"{r.params.get('version', ''):<9} {status} {r.started_by:<10} "
            f"{r.created_at:%Y-%m-%d %H:%M:%S}"
        )


def step_line(s: Any, now: datetime | None = None) -> str:
    rec = s.record
    status = s.status
    icon = click.style(ICONS.get(status, "?"), fg=COLORS.get(status))
    took = duration(rec.started_at, rec.ended_at, now) if rec else ""
    summary = (rec.summary.splitlines()[0] if rec and rec.summary else "")[:80]
    extra = " (already done)" if rec and rec.already_done else ""
    tries = f" try {rec.attempt}" if rec and rec.attempt > 1 else ""
    return f"  {icon} {s.id:<26} {status:<10} {took:>7}{tries}  {summary}{extra}"


def event_line(e: EventRecord) -> str:
    where = f" [{e.step_id}]" if e.step_id else ""
    who = "" if e.actor == "engine" else f" ({e.actor})"
    return f"{e.at:%H:%M:%S} {e.kind:<22}{where}{who} {e.message}"


def print_release(view: ReleaseView) -> None:
    r = view.release
    click.echo(
        f"release {r.id}: {r.runbook_name} to {r.environment} "
        + click.style(r.status, fg=COLORS.get(r.status), bold=True)
        + f" (run {r.run}, started by {r.started_by})"
    )
    if r.params:
        click.echo("  " + ", ".join(f"{k}={v}" for k, v in r.params.items()))
    if r.reason:
        click.echo(f"  {r.reason}")
    phase = None
    for s in view.steps:
        if s.phase != phase:
            phase = s.phase
            click.echo(click.style(f" {phase}", bold=True))
        click.echo(step_line(s))
    for g in view.waiting_gates:
        who = " or ".join([*(f"role {x}" for x in g.roles), *g.people]) or "anyone"
        click.echo(
            click.style(
                f"\n waiting: {g.step_id}: {g.prompt} — needs {g.quorum} of {who}", fg="yellow"
            )
        )
        click.echo(f"   approve: shipcaptain --as <you> release approve {r.id} {g.step_id}")
    if view.events:
        click.echo(click.style("\n timeline", bold=True))
        for e in view.events:
            click.echo("  " + event_line(e))


def worker_dict(w: WorkerStatus) -> dict[str, Any]:
    return {
        **dataclasses.asdict(w.worker),
        "alive": w.alive,
        "silent_for_s": round(w.silent_for, 1),
        "releases": w.releases,
    }


def print_workers(found: list[WorkerStatus], takeover_after: float) -> None:
    if not found:
        click.echo("no engine process has run on this state database yet")
        return
    click.echo(f"{'EXECUTOR':<28} {'KIND':<8} {'HOST:PID':<24} {'HEARTBEAT':<14} RELEASES")
    for w in found:
        state = (
            click.style("alive", fg="green")
            if w.alive
            else click.style(f"gone (>{takeover_after:g}s)", fg="red")
        )
        where = f"{w.worker.hostname}:{w.worker.pid}"
        click.echo(
            f"{w.worker.executor_id:<28} {w.worker.kind:<8} {where:<24} "
            f"{w.silent_for:>5.1f}s ago  {state} {', '.join(w.releases) or '-'}"
        )
