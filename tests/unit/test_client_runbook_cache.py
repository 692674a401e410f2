"""The client checks a runbook's text once: a release queued again from the same file, and
every look at a release (the live view refreshes several times a second), reuse the
checked runbook; a changed file is checked again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.team import make_team
from shipcaptain.client import Client
from shipcaptain.errors import InvalidRunbook
from shipcaptain.settings import Settings

RUNBOOK = """\
name: cached
phases:
  - id: build
    steps:
      - {id: a, action: shell, with: {command: "true"}}
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    make_team(url)
    settings = Settings(
        database_url=url, data_dir=tmp_path / "data", audit_key_file=tmp_path / "audit.key"
    )
    with Client(settings) as made:
        yield made


def test_a_file_is_checked_again_only_when_its_text_changes(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(RUNBOOK)
    first = client.load(path)
    assert client.load(path) is first
    path.write_text(RUNBOOK.replace('"true"', '"echo changed"'))
    changed = client.load(path)
    assert changed is not first
    assert changed.runbook.steps["a"].with_["command"] == "echo changed"
    path.write_text(RUNBOOK.replace("shell", "no_such_action"))
    with pytest.raises(InvalidRunbook, match="no_such_action"):
        client.load(path)


def test_a_release_s_runbook_is_parsed_once(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "runbook.yaml"
    path.write_text(RUNBOOK)
    one = client.create_release(path, {}, user="casey")
    two = client.create_release(path, {}, user="casey")
    assert client.runbook_of(one) is client.runbook_of(two)
    assert client.show(one.id).runbook is client.runbook_of(one)


def test_the_runbook_a_release_was_created_from_is_not_parsed_again(
    client: Client, tmp_path: Path
) -> None:
    """`release start` checks the file to create the release, then looks at the release's
    runbook (its comms) and hands it to its engine: one parse, not three."""
    path = tmp_path / "runbook.yaml"
    path.write_text(RUNBOOK)
    record = client.create_release(path, {}, user="casey")
    assert client.runbook_of(record) is client.load(path).runbook
    # read back from the store (another object, the same text): still the same runbook
    assert client.runbook_of(client.get(record.id)) is client.load(path).runbook


def test_a_markdown_release_s_runbook_is_parsed_from_the_text_it_recorded(
    client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "RUNBOOK.md"
    path.write_text("# Deploy\n\n## Steps\n\n1. Build\n\n   ```bash\n   make build\n   ```\n")
    record = client.create_release(path, {}, user="casey")
    # the recorded text is the imported YAML, not the file's: parsed from that text
    assert record.runbook_text != path.read_text()
    assert client.runbook_of(record) is not client.load(path).runbook
    assert list(client.runbook_of(record).steps) == list(client.load(path).runbook.steps)
