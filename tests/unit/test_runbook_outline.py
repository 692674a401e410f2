"""A release's outline (its steps in order, with phases, labels, actions and dependencies)
read from its recorded runbook text without the model (``release show``, issue 27) is the
model's outline: for every runbook in the repository, the examples and the Markdown corpus's
imports; text it does not read as the checked YAML 1.2 (``yes``, ``on``) is left to the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.team import make_team
from shipcaptain.client import Client
from shipcaptain.errors import InvalidRunbook
from shipcaptain.runbook.loader import load_runbook_file, parse_runbook
from shipcaptain.runbook.outline import OutlineStep, read_outline
from shipcaptain.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = sorted(
    [
        ROOT / "examples" / "valuecanvas" / "runbook.yaml",
        ROOT / "docs" / "how-to" / "examples" / "webshop.yaml",
        ROOT / "src" / "shipcaptain" / "sandbox" / "assets" / "valuecanvas.yaml",
        ROOT / "tests" / "data" / "rehearse-team" / "runbook.yaml",
        *(ROOT / "tests" / "data" / "markdown" / "corpus").glob("*.yaml"),
        *(ROOT / "tests" / "data" / "markdown" / "corpus").glob("*.md"),
    ]
)

GUARDED = """\
name: guarded
guards:
  migrated: {after_steps: [migrate], description: the schema first}
phases:
  - id: build
    steps:
      - {id: image, title: "Build the image", action: shell, with: {command: "true"}}
      - {id: lint, action: shell, with: {command: "true"}}
  - id: database
    after: []
    steps:
      - {id: migrate, action: shell, with: {command: "true"}}
  - id: rollout
    after: [build]
    steps:
      - {id: canary, action: shell, needs: [], guards: [migrated], with: {command: "true"}}
      - {id: all, action: shell, needs: [canary], with: {command: "true"}}
"""


def test_the_outline_read_from_the_text_is_the_model_s_for_every_runbook_here() -> None:
    read = 0
    for path in RUNBOOKS:
        try:
            loaded = load_runbook_file(path)
        except InvalidRunbook:  # a corpus document the importer refuses
            continue
        # what a release records is the YAML text (a Markdown runbook's import)
        assert read_outline(loaded.text) == loaded.runbook.outline(), path.name
        read += 1
    assert read >= 20


def test_phases_after_guards_and_titles() -> None:
    assert read_outline(GUARDED) == [
        OutlineStep("image", "build", "Build the image", "shell", []),
        OutlineStep("lint", "build", "lint", "shell", []),
        OutlineStep("migrate", "database", "migrate", "shell", []),
        OutlineStep("canary", "rollout", "canary", "shell", ["image", "lint", "migrate"]),
        OutlineStep("all", "rollout", "all", "shell", ["image", "lint", "canary"]),
    ]
    assert read_outline(GUARDED) == parse_runbook(GUARDED, "guarded.yaml").outline()


@pytest.mark.parametrize(
    "change",
    [
        ('title: "Build the image"', "title: yes"),  # a YAML 1.1 boolean, text in YAML 1.2
        ("id: lint", "id: on"),
        ("phases:", "phases: 3\nignored:"),
    ],
)
def test_text_not_read_as_the_checked_runbook_is_left_to_the_model(
    change: tuple[str, str],
) -> None:
    assert read_outline(GUARDED.replace(*change)) is None


def test_show_lists_from_the_model_what_the_outline_does_not_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    make_team(url)
    path = tmp_path / "runbook.yaml"
    path.write_text(GUARDED.replace('title: "Build the image"', "title: yes"))
    settings = Settings(
        database_url=url, data_dir=tmp_path / "data", audit_key_file=tmp_path / "audit.key"
    )
    with Client(settings) as client:
        release = client.create_release(path, {}, user="casey")
    with Client(settings, read_only=True) as reader:  # a new process's client: nothing parsed
        steps = reader.show(release.id).steps
    assert [(s.id, s.title) for s in steps][:2] == [("image", "yes"), ("lint", "lint")]
