"""The demo's Markdown part: the team's own Markdown runbook (assets/deployment-runbook.md,
the document valuecanvas.yaml was written from) imported as shipcaptain would import it."""

from __future__ import annotations

from pathlib import Path

import click

from shipcaptain.client import Client
from shipcaptain.markdown.source import load_markdown_file

SEED = Path(__file__).parent / "assets" / "deployment-runbook.md"


def show_markdown_import(client: Client, workspace: Path) -> None:
    """Import the Markdown runbook into the workspace and say what came out."""
    markdown = workspace / SEED.name
    markdown.write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    loaded, imported = load_markdown_file(markdown, registry=client.registry)
    target = markdown.with_suffix(".yaml")
    target.write_text(loaded.text, encoding="utf-8")
    rb = loaded.runbook
    actions: dict[str, int] = {}
    for step in rb.steps.values():
        actions[step.action] = actions.get(step.action, 0) + 1
    counted = ", ".join(f"{n} {a}" for a, n in sorted(actions.items()))
    click.echo(
        f"\nmarkdown: the team's {SEED.name} imports as {len(rb.phases)} phases, "
        f"{len(rb.steps)} steps ({counted}), {len(rb.roles)} roles, {len(rb.slas)} SLAs\n"
        f"  written to {target}; not mapped, kept as checklist steps: {len(imported.unmapped)}"
    )
    for item in imported.unmapped:
        click.echo(f"    line {item.line}: {item.text}")
    click.echo(f"  do it yourself: shipcaptain import {markdown} -o runbook.yaml")
