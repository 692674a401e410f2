"""``shipcaptain migrations``: what the database migrations of a release would do."""

from __future__ import annotations

import json
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
    help="PostgreSQL URL of the database to migrate; without it every migration is pending.",
)
@click.option("--squawk/--no-squawk", default=True, help="Show squawk's findings too.")
@json_option
@click.pass_obj
@handle_errors
def plan_cmd(
    obj: Obj, directory: Path, target_url: str | None, squawk: bool, as_json: bool
) -> None:
    """Which migrations are pending, each one's phase and findings, and in which phase of the
    release it will run. Read-only: nothing in the database changes."""
    from shipcaptain.migrations.history import read_history
    from shipcaptain.migrations.lint import squawk_findings
    from shipcaptain.migrations.migrator import plan

    applied = {}
    if target_url:
        import psycopg

        from shipcaptain.errors import ActionError

        try:
            with psycopg.connect(target_url, autocommit=True, connect_timeout=10) as conn:
                applied = read_history(conn)
        except psycopg.Error as exc:
            raise ActionError(f"cannot read the migration history: {str(exc).strip()}") from exc
    planned = plan(directory, applied)
    lint = squawk_findings([p.file.path for p in planned if not p.applied]) if squawk else {}
    rows: list[dict[str, Any]] = []
    for p in planned:
        row = {
            "version": p.file.version,
            "name": p.file.name,
            "file": str(p.file.path),
            "applied": p.applied,
            "drift": p.drift,
            "runs_in": p.runs_in,
            **p.classification.to_dict(),
            "squawk": lint.get(p.file.path, []),
        }
        rows.append(row)
    if as_json:
        click.echo(json.dumps({"migrations": rows}, indent=2))
        return
    for row in rows:
        flag = " DRIFT: file changed after it was applied" if row["drift"] else ""
        declared = (
            f" (declared; parser says {row['inferred_phase']})" if row["declared_phase"] else ""
        )
        click.echo(
            f"{row['version']}_{row['name']}: {row['phase']}{declared}, "
            f"runs in: {row['runs_in']}{flag}"
        )
        for st in row["statements"]:
            tx = "" if st["transactional"] else " [outside a transaction]"
            click.echo(f"    {st['phase']:8} {st['kind']}: {st['reason']}{tx}")
        for f in row["findings"]:
            click.echo(f"    ! {f['rule']} (statement {f['statement']}): {f['message']}")
        for line in row["squawk"]:
            click.echo(f"    squawk {line}")


def register(group: click.Group) -> None:
    group.add_command(migrations)
