"""A release's outline (its steps in order, with phases, labels, actions and dependencies):
recorded with the release when it is created and read back as it was (``release show``
reads no YAML, issue 27); for a release created before outlines were recorded, read from
its recorded runbook text without the model, which gives the model's outline for every
runbook in the repository, the examples and the Markdown corpus's imports; text it does
not read as the checked YAML 1.2 (``yes``, ``on``) is left to the model."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from helpers.team import make_team
from shipcaptain.client import Client
from shipcaptain.errors import InvalidRunbook
from shipcaptain.permissions import policy_of, roles_of
from shipcaptain.runbook.loader import load_runbook_file, parse_runbook
from shipcaptain.runbook.outline import (
    OutlineStep,
    RecordedRole,
    RecordedRoles,
    outline_from_json,
    outline_json,
    read_outline,
    roles_from_json,
)
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


def test_the_recorded_outline_reads_back_as_it_was_for_every_runbook_here() -> None:
    read = 0
    for path in RUNBOOKS:
        try:
            outline = load_runbook_file(path).runbook.outline()
        except InvalidRunbook:
            continue
        assert outline_from_json(outline_json(outline)) == outline, path.name
        read += 1
    assert read >= 20


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[]",
        '{"format": 2, "steps": []}',  # a later format: read the runbook text instead
        '{"format": 1, "steps": [["a", "build", "a", "shell"]]}',
        '{"format": 1, "steps": [["a", "build", "a", "shell", "b"]]}',
        '{"format": 1, "steps": [["a", "build", 3, "shell", []]]}',
    ],
)
def test_an_outline_not_recorded_as_this_version_writes_it_is_none(text: str | None) -> None:
    assert outline_from_json(text) is None


def _release(tmp_path: Path, text: str) -> tuple[Settings, str]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    make_team(url)
    path = tmp_path / "runbook.yaml"
    path.write_text(text)
    settings = Settings(
        database_url=url, data_dir=tmp_path / "data", audit_key_file=tmp_path / "audit.key"
    )
    with Client(settings) as client:
        release = client.create_release(path, {}, user="casey")
        rb = parse_runbook(text, "runbook.yaml")
        roles = {rid: role.members for rid, role in rb.roles.items()}
        assert client.store.release_outline(release.id) == outline_json(rb.outline(), roles)
    return settings, release.id


def _set_outline(tmp_path: Path, release_id: str, outline: str | None) -> None:
    """Change what the release recorded (``None``: a release created before outlines were)."""
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE sc_releases SET outline = ? WHERE id = ?", (outline, release_id))
    db.close()


def test_show_lists_the_outline_recorded_with_the_release(tmp_path: Path) -> None:
    settings, release_id = _release(tmp_path, GUARDED)
    recorded = [OutlineStep("only", "recorded", "Only what was recorded", "shell", [])]
    _set_outline(tmp_path, release_id, outline_json(recorded))
    with Client(settings, read_only=True) as reader:  # a new process's client: nothing parsed
        steps = reader.show(release_id).steps
    assert [(s.id, s.phase, s.title) for s in steps] == [
        ("only", "recorded", "Only what was recorded")
    ]


def test_a_release_without_an_outline_is_read_from_its_text(tmp_path: Path) -> None:
    settings, release_id = _release(tmp_path, GUARDED)
    _set_outline(tmp_path, release_id, None)
    with Client(settings, read_only=True) as reader:
        steps = reader.show(release_id).steps
    assert [(s.id, s.title) for s in steps][:2] == [("image", "Build the image"), ("lint", "lint")]


def test_show_lists_from_the_model_what_the_outline_does_not_read(tmp_path: Path) -> None:
    settings, release_id = _release(
        tmp_path, GUARDED.replace('title: "Build the image"', "title: yes")
    )
    _set_outline(tmp_path, release_id, None)  # created before outlines were recorded
    with Client(settings, read_only=True) as reader:
        steps = reader.show(release_id).steps
    assert [(s.id, s.title) for s in steps][:2] == [("image", "yes"), ("lint", "lint")]


# ---- the roles recorded with the release -------------------------------------------------

GATED_ROLES = """\
name: gated-roles
roles:
  release_captain: {title: Release Captain, members: [casey]}
  oncall_sre: {title: On-Call SRE, members: [sam, riley]}
  feature_owner: {title: Feature Owner}
phases:
  - id: ship
    steps:
      - {id: go, action: approval, with: {prompt: ship?, roles: [oncall_sre], timeout: 1h}}
"""


def test_roles_recorded_are_read_back_and_an_outline_without_them_has_none() -> None:
    steps = [OutlineStep("a", "build", "a", "shell", [])]
    text = outline_json(steps, {"oncall_sre": ["sam", "riley"], "feature_owner": []})
    assert roles_from_json(text) == RecordedRoles(
        {"oncall_sre": RecordedRole(("sam", "riley")), "feature_owner": RecordedRole(())}
    )
    assert outline_from_json(text) == steps  # the outline reads as before
    assert roles_from_json(outline_json(steps, {})) == RecordedRoles({})
    for older in (outline_json(steps), None, "", "[]", '{"format": 2, "roles": {}}'):
        assert roles_from_json(older) is None  # the runbook is parsed instead
    for bad in ('{"format": 1, "roles": []}', '{"format": 1, "roles": {"sre": "sam"}}'):
        assert roles_from_json(bad) is None


def _held(settings: Settings, release_id: str, name: str) -> tuple[list[str], object]:
    """The roles ``name`` holds for the release, as a new process's client reads them (it
    parsed nothing), and what it read them from."""
    with Client(settings, read_only=True) as reader:
        release = reader.store.get_release(release_id)
        policy = policy_of(reader.store)
        read = reader.release_roles(release)
        return roles_of(policy.person(name), read, release.environment, policy), read


def test_a_check_reads_the_roles_recorded_with_the_release_without_parsing_it(
    tmp_path: Path,
) -> None:
    settings, release_id = _release(tmp_path, GATED_ROLES)
    sam, read = _held(settings, release_id, "sam")
    assert isinstance(read, RecordedRoles)  # not a parsed runbook
    assert "oncall_sre" in sam
    fola, _ = _held(settings, release_id, "fola")
    assert "oncall_sre" not in fola  # the runbook's members narrow the team's roles
    assert "feature_owner" in fola  # a role without members: the team's say
    # what is read is what was recorded: a record that leaves sam out is followed
    steps = outline_from_json(_outline(tmp_path, release_id))
    assert steps is not None
    _set_outline(tmp_path, release_id, outline_json(steps, {"oncall_sre": ["riley"]}))
    sam, _ = _held(settings, release_id, "sam")
    assert "oncall_sre" not in sam


def test_a_release_without_recorded_roles_is_checked_by_its_parsed_runbook(
    tmp_path: Path,
) -> None:
    settings, release_id = _release(tmp_path, GATED_ROLES)
    steps = outline_from_json(_outline(tmp_path, release_id))
    assert steps is not None
    _set_outline(tmp_path, release_id, outline_json(steps))  # created before roles were
    sam, read = _held(settings, release_id, "sam")
    assert not isinstance(read, RecordedRoles)
    assert "oncall_sre" in sam
    fola, _ = _held(settings, release_id, "fola")
    assert "oncall_sre" not in fola


def _outline(tmp_path: Path, release_id: str) -> str:
    with sqlite3.connect(tmp_path / "state.db") as db:
        query = "SELECT outline FROM sc_releases WHERE id = ?"
        (text,) = db.execute(query, (release_id,)).fetchone()
    db.close()
    return str(text)
