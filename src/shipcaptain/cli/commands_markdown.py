"""Commands about Markdown runbooks: import (and import --check), export. Running a
Markdown runbook needs no command of its own: every command that takes a runbook reads
``.md`` files through the importer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shipcaptain.cli.common import Obj, handle_errors

_output = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)


@click.command(name="import")
@click.argument("markdown", type=click.Path(dir_okay=False, path_type=Path))
@_output
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 2 if the runbook in --output differs from the Markdown.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Write nothing; list every non-empty line of the Markdown with what it became "
    "(step, condition, link, role, SLA, note, output, ignored and why). Exit 1 if the "
    "import refuses a line.",
)
@click.pass_obj
@handle_errors
def import_(obj: Obj, markdown: Path, output: Path | None, check: bool, explain: bool) -> None:
    """Turn a Markdown runbook into a runbook draft (YAML), checked like any runbook.

    Items that could not be mapped are listed on standard error, with where they were
    kept (a checklist step, or the runbook's description)."""
    from shipcaptain.errors import InvalidRunbook, Location, RunbookProblem, ShipError, UsageError
    from shipcaptain.markdown.source import load_markdown_file

    if explain:
        _explain(obj, markdown)
        return

    loaded, imported = load_markdown_file(markdown, registry=obj.client.registry)
    if check:
        if output is None:
            raise UsageError("--check needs --output: the runbook YAML to compare with")
        current = obj.client.load(output).runbook
        differences = _differences(_comparable(loaded.runbook), _comparable(current))
        if differences:
            problems: list[ShipError] = [
                RunbookProblem(d, location=Location(str(output))) for d in differences
            ]
            problems.append(
                RunbookProblem(f"to update it: shipcaptain import {markdown} -o {output}")
            )
            raise InvalidRunbook(problems)
        click.echo(f"{output}: agrees with {markdown}")
        return
    for item in imported.unmapped:
        click.echo(
            f"{markdown}:{item.line}: not mapped ({item.why}); {item.kept}: {item.text}",
            err=True,
        )
    if output is None:
        click.echo(loaded.text, nl=False)
        return
    output.write_text(loaded.text, encoding="utf-8")
    rb = loaded.runbook
    click.echo(
        f"{output}: {len(rb.phases)} phases, {len(rb.steps)} steps, {len(rb.rollback)} "
        f"rollback steps imported from {markdown} ({len(imported.unmapped)} not mapped)",
        err=True,
    )


def _explain(obj: Obj, markdown: Path) -> None:
    """``import --explain``: each non-empty line, its number and what it became."""
    from shipcaptain.errors import UsageError
    from shipcaptain.markdown.importer import import_markdown

    try:
        text = markdown.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{markdown}: cannot read it: {exc}") from exc
    imported = import_markdown(
        text, markdown.name, installed=obj.client.registry.names(), base=markdown.parent
    )
    lines = imported.explain(text)
    for number, source, became in lines:
        click.echo(f"{markdown}:{number}: {became}  <- {' '.join(source.split())[:80]}")
    refused = sum(1 for _, _, became in lines if became.startswith("refused:"))
    click.echo(f"{markdown}: {len(lines)} lines explained, {refused} refused", err=True)
    if refused or imported.problems:
        raise SystemExit(1)


def _comparable(runbook: Any) -> Any:
    """The runbook as data, without the file name in each step's source (it depends on the
    directory the import ran in)."""
    data = runbook.model_dump(mode="json", by_alias=True)
    for step in [*(s for p in data["phases"] for s in p["steps"]), *data["rollback"]]:
        if step.get("source"):
            step["source"].pop("file", None)
    return data


def _differences(new: Any, old: Any, path: str = "") -> list[str]:
    if isinstance(new, dict) and isinstance(old, dict):
        out: list[str] = []
        for key in dict.fromkeys([*old, *new]):
            out += _differences(new.get(key), old.get(key), f"{path}.{key}" if path else str(key))
        return out
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [
            d
            for k, (a, b) in enumerate(zip(new, old, strict=True))
            for d in _differences(a, b, f"{path}[{k}]")
        ]
    if new != old:
        return [f"{path}: the Markdown says {new!r}, the YAML {old!r}"]
    return []


@click.command()
@click.argument("runbook", type=click.Path(dir_okay=False, path_type=Path))
@_output
@click.pass_obj
@handle_errors
def export(obj: Obj, runbook: Path, output: Path | None) -> None:
    """Write a runbook as readable Markdown (roles, steps with commands, SLAs, templates)
    that `shipcaptain import` reads back."""
    from shipcaptain.markdown.export import export_markdown

    text = export_markdown(obj.client.load(runbook).runbook)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def register(group: click.Group) -> None:
    group.add_command(import_)
    group.add_command(export)
