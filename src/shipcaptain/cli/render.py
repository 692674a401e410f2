"""Human and JSON renderings of plans, releases and timelines."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from shipcaptain.cli.timeline import COLORS, print_events, steps_table

if TYPE_CHECKING:  # types only: the plan (Jinja) and the client load where they are used
    from shipcaptain.client import ReleaseView, WorkerStatus
    from shipcaptain.plan import ReleasePlan, RollbackEntry
    from shipcaptain.records import GateRecord, ReleaseRecord


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
            if s.skipped:
                flags.insert(0, s.skipped)
            elif s.when:
                flags.insert(0, f"only if {s.when} (decided when it would start)")
            click.echo(f"  [{s.phase}] {s.id}: {s.description}")
            if flags:
                click.echo(click.style(f"      {'; '.join(flags)}", dim=True))
    if show_rollback:
        click.echo(click.style("\nrollback plan", bold=True) + " (every step that runs)")
        print_rollback_plan(plan.rollback_plan, plan.points_of_no_return, passed=False)


def print_rollback_plan(
    entries: list[RollbackEntry], no_return: list[str], *, passed: bool
) -> None:
    """The rollback plan in the order it runs; steps that change something with nothing to
    undo them are flagged. ``passed``: ``no_return`` lists contract migrations that ran."""
    if not entries:
        click.echo("  (nothing to undo: no step that runs has an undo, and no rollback steps)")
    labels = {"undo": "undo", "rollback": "rollback", "validate": "validate", "no_undo": "!"}
    for e in entries:
        line = f"  {labels[e.kind]:<8} {e.key}: {e.description}"
        click.echo(click.style(line, fg="yellow") if e.kind == "no_undo" else line)
    for sid in no_return:
        click.echo(
            click.style(
                f"  point of no return: {sid} (contract migration) "
                + (
                    "ran; an app rollback needs --forward-fix or --restore-procedure"
                    if passed
                    else "warns before it runs; after it, an app rollback needs a forward "
                    "fix or a restore procedure (or an undo on the step)"
                ),
                fg="red",
            )
        )


def print_release_list(releases: list[ReleaseRecord], *filters: str) -> None:
    """``filters``: what the list was narrowed to (``status waiting``), for an empty one."""
    if not releases:
        click.echo(f"no releases with {' and '.join(filters)}" if filters else "no releases yet")
        return
    from shipcaptain.cli.tables import Column, cell, print_table

    columns = [
        Column("ID"),
        Column("RUNBOOK", wrap=True),
        Column("ENV"),
        Column("VERSION", wrap=True),
        Column("STATUS"),
        Column("BY", wrap=True),
        Column("CREATED", wrap=True),
    ]
    rows = [
        [
            r.id,
            r.runbook_name,
            r.environment,
            str(r.params.get("version", "")),
            cell("queued", "yellow")
            if r.queued_for_worker
            else cell(r.status, COLORS.get(r.status)),
            r.started_by,
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
        ]
        for r in releases
    ]
    print_table(columns, rows)


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_release(
    view: ReleaseView, yours: Callable[[GateRecord], list[Any]] | None = None
) -> None:
    """``yours``: of a gate in parts (a changelog sign-off), the parts of the person
    looking, printed in full."""
    r = view.release
    click.echo(
        f"release {r.id}: {r.runbook_name} to {r.environment} "
        + click.style(r.status, fg=COLORS.get(r.status), bold=True)
        + (click.style(", queued for a worker", fg="yellow") if r.queued_for_worker else "")
        + f" (run {r.run}, started by {r.started_by})"
    )
    if r.params:
        click.echo("  " + ", ".join(f"{k}={v}" for k, v in r.params.items()))
    if r.reason:
        click.echo(f"  {r.reason}")
    if view.engine is not None and view.engine.message:
        beat = view.engine.last_heartbeat_at
        ago = (
            f" (last heartbeat {(datetime.now(UTC) - beat).total_seconds():.0f}s ago)"
            if beat
            else ""
        )
        click.echo(click.style(f"  ! {view.engine.message}{ago}", fg="red", bold=True))
    from shipcaptain.cli.tables import lines_of

    for line in lines_of(steps_table(view)):
        click.echo(line)
    for g in view.waiting_gates:
        who = " or ".join([*(f"role {x}" for x in g.roles), *g.people]) or "anyone"
        parts = (g.evidence or {}).get("parts") or []
        needs = f"needs {g.quorum} of {who}"
        if parts:
            needs = "needs each part confirmed: " + "; ".join(p["title"] for p in parts)
        click.echo(click.style(f"\n waiting: {g.step_id}: {g.prompt} — {needs}", fg="yellow"))
        for part in yours(g) if yours and parts else []:
            click.echo(f"   yours: {part['title']}")
            click.echo("     " + part["text"].rstrip().replace("\n", "\n     "))
        click.echo(f"   approve: shipcaptain release approve {r.id} {g.step_id}")
    for inc in view.incidents:
        from shipcaptain.incidents import clock_text

        click.echo(
            click.style(f"\n incident {inc.id} {inc.severity} {inc.status}: ", fg="red")
            + f"{inc.summary}\n   {clock_text(inc, datetime.now(UTC))}"
        )
    if view.notifications:
        click.echo(click.style("\n comms", bold=True))
        for n in view.notifications:
            mark = "sent" if n.status == "sent" else click.style("NOT SENT", fg="red")
            tries = f" after {n.attempts} tries" if n.attempts > 1 else ""
            error = f" ({n.error})" if n.error else ""
            click.echo(f"  {n.at:%H:%M:%S} {n.kind:<16} {n.channel:<18} {mark}{tries}{error}")
            click.echo(f"    {n.text}")
    if view.decisions:
        click.echo(click.style("\n decisions (and the evidence each person saw)", bold=True))
        for d in view.decisions:
            role = f" as {d.role}" if d.role else ""
            comment = f": {d.comment}" if d.comment else ""
            click.echo(f"  {d.at:%H:%M:%S} {d.step_id}: {d.user}{role} {d.decision}{comment}")
            if d.evidence:
                shown = ", ".join(
                    f"parts={'; '.join(p['title'] for p in v)}"
                    if k == "parts" and isinstance(v, list)
                    else f"{k}={_short(v)}"
                    for k, v in d.evidence.items()
                )
                click.echo(f"    saw: {shown}")
    if view.events:
        click.echo(click.style("\n timeline", bold=True))
        print_events(view.events, change=True, indent=2)


def print_workers(found: list[WorkerStatus], takeover_after: float) -> None:
    if not found:
        click.echo("no engine process has run on this state database yet")
        return
    from shipcaptain.cli.tables import Column, cell, print_table

    columns = [
        Column("EXECUTOR"),
        Column("KIND"),
        Column("HOST:PID", wrap=True),
        Column("HEARTBEAT", "right"),
        Column("STATE", wrap=True),
        Column("RELEASES", wrap=True),
    ]
    rows = [
        [
            w.worker.executor_id,
            w.worker.kind,
            f"{w.worker.hostname}:{w.worker.pid}",
            f"{w.silent_for:.1f}s ago",
            cell("alive", "green") if w.alive else cell(f"gone (>{takeover_after:g}s)", "red"),
            ", ".join(w.releases) or "-",
        ]
        for w in found
    ]
    print_table(columns, rows)
