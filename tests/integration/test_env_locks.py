"""Environment locks: in an exclusive environment (production by default) one release of
a service runs at a time, in the order they were started; elsewhere they run in parallel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.releases import Harness, harness, write_runbook

RUNBOOK = """
    name: webshop
    environment: "{{ environment }}"
    parameters:
      environment: {default: production}
    phases:
      - id: deploy
        steps:
          - id: roll
            action: shell
            with:
              command: >-
                echo {{ release.id }}-start >> log; sleep 0.6; echo {{ release.id }}-end >> log
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running


def log(h: Harness) -> list[str]:
    return (h.workdir / "log").read_text().split()


def test_production_releases_run_one_at_a_time_in_order(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, RUNBOOK)
    releases = [h.start(runbook) for _ in range(3)]
    for r in releases:
        assert h.wait(r.id).status == "succeeded"
    assert log(h) == [f"{r.id}-{edge}" for r in releases for edge in ("start", "end")]
    queued = [
        e
        for r in releases
        for e in h.client.store.list_events(release_id=r.id)
        if e.kind == "release.queued"
    ]
    # the second and third waited, and said for whom (again when that changed)
    assert {e.release_id for e in queued} == {releases[1].id, releases[2].id}
    second = [e.message for e in queued if e.release_id == releases[1].id]
    assert releases[0].id in second[0]
    third = [e.message for e in queued if e.release_id == releases[2].id]
    assert releases[1].id in third[-1]


def test_staging_releases_run_in_parallel(h: Harness, tmp_path: Path) -> None:
    # each step ends once both have started (at most 15 s): run one after the other, the
    # second starts after the first ended; a fixed 0.6 s step lost that race under load
    both_started = (
        "i=0; while [ $(grep -c start log) -lt 2 ] && [ $i -lt 300 ]; do sleep 0.05; "
        "i=$((i+1)); done;"
    )
    runbook = write_runbook(tmp_path, RUNBOOK.replace("sleep 0.6;", both_started))
    releases = [h.start(runbook, environment="staging") for _ in range(2)]
    for r in releases:
        assert h.wait(r.id).status == "succeeded"
    lines = log(h)
    assert lines.index(f"{releases[1].id}-start") < lines.index(f"{releases[0].id}-end")


def test_the_declared_environment_decides_whatever_the_parameter_is_called(
    h: Harness, tmp_path: Path
) -> None:
    """`env` is the environment because the runbook says so, and production's lock holds."""
    body = RUNBOOK.replace('"{{ environment }}"', '"{{ env }}"').replace(
        "      environment: {default: production}", "      env: {default: production}"
    )
    runbook = write_runbook(tmp_path, body)
    releases = [h.start(runbook) for _ in range(2)]
    for r in releases:
        assert h.wait(r.id).status == "succeeded"
        assert h.client.get(r.id).environment == "production"
    assert log(h) == [f"{r.id}-{edge}" for r in releases for edge in ("start", "end")]
    staging = h.start(runbook, env="staging")
    assert h.wait(staging.id).environment == "staging"


def test_without_a_declaration_no_parameter_is_the_environment(h: Harness, tmp_path: Path) -> None:
    body = RUNBOOK.replace('    environment: "{{ environment }}"\n', "").replace(
        "      environment: {default: production}", "      target: {default: production}"
    )
    record = h.start(write_runbook(tmp_path, body))
    assert h.wait(record.id).environment == "default"


def test_a_team_with_roles_per_environment_needs_a_declared_environment(
    h: Harness, tmp_path: Path
) -> None:
    from shipcaptain.errors import UsageError
    from shipcaptain.records import Person

    h.client.store.put_team(
        [
            Person(name="casey", roles={"*": ("release_captain",)}, admin=True),
            Person(name="sam", roles={"production": ("oncall_sre",)}),
        ],
        actor="test",
        message="team for the test",
        data={},
    )
    body = RUNBOOK.replace('    environment: "{{ environment }}"\n', "").replace(
        "      environment: {default: production}", "      target: {default: production}"
    )
    with pytest.raises(UsageError, match=r"declares no environment, but the team gives roles"):
        h.start(write_runbook(tmp_path, body))
    assert h.client.list_releases() == []
