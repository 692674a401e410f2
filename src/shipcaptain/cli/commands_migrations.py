"""``shipcaptain migrations``: what the database migrations of a release would do."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from shipcaptain.cli.common import Obj, handle_errors, json_option


@click.group()
def migrations() -> None:
    """Database migrations: expand/contract classification and pending versions."""


@migrations.command("plan")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--database-url",
    "target_url",
    help="PostgreSQL URL of the database to migrate; without it nothing counts as applied "
    "(a first deploy).",
)
@click.option("--squawk/--no-squawk", default=True, help="Show squawk's findings too.")
@json_option
@click.pass_obj
@handle_errors
def plan_cmd(
    obj: Obj, directory: Path, target_url: str | None, squawk: bool, as_json: bool
) -> None:
    """Which migrations are pending and exactly what ``migrations apply`` (and a release's
    ``migrate`` steps) will do with each: the phase it runs in and why, each statement's
    effect with its line, findings, and files skipped or refused. Read-only: nothing in the
    database changes."""
    from shipcaptain.migrations.lint import squawk_findings
    from shipcaptain.migrations.migrator import plan, read_plan

    if target_url:
        import psycopg

        from shipcaptain.errors import ActionError

        try:
            with psycopg.connect(target_url, autocommit=True, connect_timeout=10) as conn:
                planned = read_plan(conn, directory)
        except psycopg.Error as exc:
            raise ActionError(f"cannot read the migration history: {str(exc).strip()}") from exc
    else:
        planned = plan(directory, {})
    pending = planned.pending
    lint = squawk_findings([p.file.path for p in pending]) if squawk else {}
    rows: list[dict[str, Any]] = []
    for p in planned.migrations:
        row = {
            "version": p.file.version,
            "name": p.file.name,
            "file": str(p.file.path),
            "applied": p.applied,
            "drift": p.drift,
            "runs_in": p.runs_in,
            "reason": p.reason,
            "statements_done": p.statements_done,
            **p.classification.to_dict(),
            "squawk": lint.get(p.file.path, []),
        }
        rows.append(row)
    skipped = [{"file": name, "why": why} for name, why in planned.skipped_files]
    if as_json:
        doc = {
            "fresh": planned.fresh,
            "expand": [p.file.version for p in planned.to_run("expand")],
            "contract": [p.file.version for p in pending if p.runs_in == "contract"],
            "migrations": rows,
            "skipped_files": skipped,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    for item in skipped:
        click.echo(f"warning: skipped {item['file']}: {item['why']}", err=True)
    if planned.fresh and pending:
        click.echo("nothing is applied yet: every migration applies in version order")
    for row in rows:
        flag = " DRIFT: file changed after it was applied" if row["drift"] else ""
        declared = (
            f" (declared; parser says {row['inferred_phase']})" if row["declared_phase"] else ""
        )
        runs = "already applied" if row["applied"] else f"runs in: {row['runs_in']} phase"
        click.echo(f"{row['version']}_{row['name']}: {row['phase']}{declared}, {runs}{flag}")
        if not row["applied"]:
            click.echo(f"    why: {row['reason']}")
            if row["refused"]:
                click.echo(f"    REFUSED: {row['refused']}")
            if row["statements_done"]:
                click.echo(f"    resumes after statement {row['statements_done']}")
        for st in [] if row["applied"] else row["statements"]:
            if st["phase"] == "neutral":
                continue
            tx = "" if st["transactional"] else " [runs alone, outside a transaction]"
            click.echo(f"    line {st['line']:<5} {st['phase']:8} {st['reason']}{tx}")
        for f in row["findings"]:
            click.echo(f"    ! {f['rule']} (line {f['line']}): {f['message']}")
        for line in row["squawk"]:
            click.echo(f"    squawk {line}")


@migrations.command("apply")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--phase", type=click.Choice(["expand", "contract"]), required=True, help="Which to apply."
)
@click.option(
    "--database-url",
    "target_url",
    required=True,
    help="PostgreSQL URL of the primary.",
)
@click.option(
    "--replica",
    "replicas",
    multiple=True,
    metavar="NAME=URL",
    help="A read replica checked before contract migrations (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be applied; change nothing.")
@click.option(
    "-e",
    "--environment",
    default="default",
    show_default=True,
    help="The environment the database belongs to: where migrations.apply is checked.",
)
@json_option
@click.pass_obj
@handle_errors
def apply_cmd(
    obj: Obj,
    directory: Path,
    phase: str,
    target_url: str,
    replicas: tuple[str, ...],
    dry_run: bool,
    environment: str,
    as_json: bool,
) -> None:
    """Apply the pending migrations of one phase, exactly as a release's ``migrate`` step
    does (advisory lock, history, replica check before contract), outside a release: for a
    staging database or a rehearsal. With --dry-run nothing in the database changes.

    It runs as the person of your token, who needs the migrations.apply permission in
    ENVIRONMENT (a dry run too: it rehearses against that database); the audit log records
    who applied what, where, and the outcome. With --server, the server checks the
    permission and records the outcome; the migrations run from here."""
    from shipcaptain.actions.base import StepContext
    from shipcaptain.actions.migrate import MigrateAction
    from shipcaptain.errors import ActionError
    from shipcaptain.runbook.params import parse_params
    from shipcaptain.urls import mask_url

    service = obj.service
    user = service.user
    service.authorize("migrations.apply", environment=environment)
    record = service.record_migrations
    action = MigrateAction()
    params = action.parse_params(
        {
            "directory": str(directory.resolve()),
            "database_url": target_url,
            "phase": phase,
            "replicas": parse_params(replicas, "--replica", "replica-1=postgresql://..."),
            "dry_run": dry_run,
        }
    )
    ctx = StepContext(
        release_id="",
        started_by=user,
        step_id=f"migrations apply {phase}",
        attempt=1,
        timeout=3600.0,
        workdir=Path.cwd(),
        progress=lambda message: click.echo(message, err=True),
    )
    what = {
        "phase": phase,
        "directory": str(directory.resolve()),
        "database": mask_url(target_url),
        "environment": environment,
        "dry_run": dry_run,
    }
    try:
        outcome = action.run(params, ctx)
    except ActionError as exc:
        record("failed", what, str(exc), None)
        raise
    done = "failed" if not outcome.ok else ("dry_run" if dry_run else "applied")
    record(done, what, outcome.summary, dict(outcome.outputs))
    doc = {"ok": outcome.ok, "summary": outcome.summary, **dict(outcome.outputs)}
    if not outcome.ok:
        error = ActionError(outcome.summary)
        code = (outcome.outputs.get("failed") or {}).get("code") or error.code
        doc["error"] = {**error.to_dict(), "code": code, "detail": outcome.detail}
        if as_json:
            click.echo(json.dumps(doc, indent=2))
        else:
            click.echo(f"error[{code}]: {outcome.detail or outcome.summary}", err=True)
        sys.exit(error.exit_code)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(outcome.summary)


def register(group: click.Group) -> None:
    group.add_command(migrations)
