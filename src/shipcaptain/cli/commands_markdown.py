"""Commands about Markdown runbooks: import (and --check), export."""

from __future__ import annotations

from pathlib import Path

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
    help="Do not write: fail (exit 2) if the runbook in --output differs from the Markdown.",
)
@click.pass_obj
@handle_errors
def import_(obj: Obj, markdown: Path, output: Path | None, check: bool) -> None:
    """Turn a Markdown runbook into a runbook draft (YAML), checked like any runbook."""
    from shipcaptain.errors import InvalidRunbook, Location, RunbookProblem, UsageError

    loaded = obj.client.load(markdown)  # imports in memory; errors point at Markdown lines
    from shipcaptain.markdown.importer import import_markdown

    imported = import_markdown(
        markdown.read_text(encoding="utf-8"), str(markdown), obj.client.registry.names()
    )
    if check:
        if output is None:
            raise UsageError("--check needs --output: the runbook YAML to compare with")
        current = obj.client.load(output).runbook
        differences = _differences(loaded.runbook.model_dump(), current.model_dump())
        if differences:
            raise InvalidRunbook(
                [RunbookProblem(d, location=Location(str(output))) for d in differences]
                + [RunbookProblem(f"run: shipcaptain import {markdown} -o {output}")]
            )
        click.echo(f"{output}: in step with {markdown}")
        return
    text = loaded.text
    if output is not None:
        output.write_text(text, encoding="utf-8")
        click.echo(
            f"{output}: {len(loaded.runbook.phases)} phases, {len(loaded.runbook.steps)} steps "
            f"imported from {markdown}",
            err=True,
        )
    else:
        click.echo(text, nl=False)
    for item in imported.unmapped:
        click.echo(
            f"{markdown}:{item.line}: not mapped ({item.why}), kept as a checklist item: "
            f"{item.text}",
            err=True,
        )


def _differences(new: object, old: object, path: str = "") -> list[str]:
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
        return [f"{path}: Markdown has {new!r}, YAML has {old!r}"]
    return []


@click.command()
@click.argument("runbook", type=click.Path(dir_okay=False, path_type=Path))
@_output
@click.pass_obj
@handle_errors
def export(obj: Obj, runbook: Path, output: Path | None) -> None:
    """Write a runbook as readable Markdown (roles, steps with commands, SLAs, templates)."""
    from shipcaptain.markdown.export import export_markdown

    text = export_markdown(obj.client.load(runbook).runbook)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def register(group: click.Group) -> None:
    group.add_command(import_)
    group.add_command(export)
