"""Rollback as a flow of its own, on the real engine and database (SQLite and PostgreSQL):
the captain asks, an SRE other than them approves, the undo steps run in reverse order,
then the validation; the automatic rollback of a failure policy; a rollback that fails;
the point of no return of a contract migration (on a real PostgreSQL app database)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.databases import postgres_database
from helpers.processes import wait_for
from helpers.releases import Harness, harness, write_runbook
from shipcaptain.errors import InvalidState, PermissionDenied
from shipcaptain.migrations.migrator import apply
from shipcaptain.store import EventRecord

ROLES = """
        roles:
          release_captain: {title: Captain, members: [casey]}
          oncall_sre: {title: SRE, members: [sam, casey]}
          feature_owner: {title: Owner, members: [fola]}
"""

RUNBOOK = f"""
        name: rollbackable
{ROLES}
        phases:
          - id: one
            steps:
              - id: deploy
                action: shell
                with: {{command: "echo deployed >> log"}}
                undo: {{action: shell, with: {{command: "echo undone-deploy >> log"}}}}
              - id: config
                action: shell
                needs: [deploy]
                with: {{command: "echo configured >> log"}}
                undo: {{action: shell, with: {{command: "echo undone-config >> log"}}}}
              - id: health
                action: shell
                needs: [config]
                with: {{command: "echo healthy >> log"}}
        rollback:
          - {{id: restart, action: shell, with: {{command: "echo restarted >> log"}}}}
        rollback_validation: [health]
        slas:
          P1: {{acknowledge: 5m, mitigate: 30m}}
        comms:
          templates:
            rollback: "Initiating rollback of v{{{{ version }}}} due to {{{{ release.reason }}}}."
        parameters:
          version: {{default: "1.2.3"}}
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running


def log(h: Harness) -> list[str]:
    path = h.workdir / "log"
    return path.read_text().split() if path.exists() else []


def events(h: Harness, release_id: str, kind: str) -> list[EventRecord]:
    return [e for e in h.client.store.list_events(release_id=release_id) if e.kind == kind]


def approval_step(h: Harness, release_id: str) -> tuple[str, str]:
    """The status and summary of the rollback's approval step, as ``release show`` has it."""
    [step] = [s for s in h.client.show(release_id).steps if s.id == "rollback/approval"]
    assert step.record is not None
    return step.record.status, step.record.summary


def roll_back(h: Harness, release_id: str, user: str = "casey", **kw: str) -> int:
    asked = h.client.request_rollback(release_id, user=user, reason="error rate up", **kw)
    assert asked.run is not None
    h.engine.start_rollback(release_id, asked.run, asked.request)
    return asked.run


def test_manual_rollback_needs_an_sre_other_than_the_initiator(h: Harness, tmp_path: Path) -> None:
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    assert h.wait(release.id).status == "succeeded"
    with pytest.raises(PermissionDenied, match="needs role release_captain"):
        h.client.request_rollback(release.id, user="fola", reason="x")

    roll_back(h, release.id)
    h.wait_for_gate(release.id, "rollback/approval")
    assert h.client.get(release.id).status == "rolling_back"
    assert log(h) == ["deployed", "configured", "healthy"]  # nothing undone before approval
    # casey holds the SRE role too, but initiated the rollback
    with pytest.raises(PermissionDenied, match="separation of duties"):
        h.client.decide(release.id, "rollback/approval", user="casey", decision="approve")
    with pytest.raises(PermissionDenied, match="needs role oncall_sre"):
        h.client.decide(release.id, "rollback/approval", user="fola", decision="approve")
    assert h.client.decide(release.id, "rollback/approval", user="sam", decision="approve") == (
        "recorded"
    )

    final = h.wait(release.id)
    assert final.status == "rolled_back", final.reason
    # undo in reverse dependency order, then the rollback steps, then the validation
    assert log(h)[3:] == ["undone-config", "undone-deploy", "restarted", "healthy"]
    [announced] = events(h, release.id, "comms.rollback")
    assert announced.message == "Initiating rollback of v1.2.3 due to error rate up."
    [restored] = events(h, release.id, "rollback.restored")
    assert restored.data["sla_seconds"] == 1800
    assert restored.data["within_sla"] is True
    [started] = events(h, release.id, "rollback.started")
    assert started.data["automatic"] is False
    assert started.data["initiator"] == "casey"
    [decision] = h.client.store.list_decisions(release.id, "rollback/approval")
    assert (decision.user, decision.role) == ("sam", "oncall_sre")
    # the approval step ended with its gate (what release show, the API and the page show)
    assert approval_step(h, release.id) == ("succeeded", "rollback approved by sam")
    with pytest.raises(InvalidState, match="already rolled back"):
        h.client.request_rollback(release.id, user="casey", reason="again")


def test_a_rejected_rollback_leaves_the_release_as_it_was(h: Harness, tmp_path: Path) -> None:
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    assert h.wait(release.id).status == "succeeded"
    roll_back(h, release.id)
    h.wait_for_gate(release.id, "rollback/approval")
    h.client.decide(release.id, "rollback/approval", user="sam", decision="reject")
    assert h.wait(release.id).status == "succeeded"
    assert log(h) == ["deployed", "configured", "healthy"]
    assert events(h, release.id, "rollback.not_approved")
    assert approval_step(h, release.id) == ("failed", "rollback rejected by sam")


def test_automatic_rollback_starts_without_approval_and_says_so(h: Harness, tmp_path: Path) -> None:
    runbook = RUNBOOK.replace(
        'with: {command: "echo healthy >> log"}',
        "on_failure: rollback\n"
        '                with: {command: "test -e fixed && echo healthy >> log"}',
    )
    release = h.start(write_runbook(tmp_path, runbook))
    final = h.wait(release.id)
    # the validation runs the failed check again: still failing, so the rollback fails
    assert final.status == "failed"
    assert "validation health failed" in (final.reason or "")
    [started] = events(h, release.id, "rollback.started")
    assert started.data["automatic"] is True
    assert started.data["trigger"] == ["health"]
    assert "no approval needed" in started.message
    assert not h.client.store.list_gates(release_id=release.id)
    assert log(h) == ["deployed", "configured", "undone-config", "undone-deploy", "restarted"]
    assert len(events(h, release.id, "incident.opened")) == 1


def test_automatic_rollback_rolls_back(h: Harness, tmp_path: Path) -> None:
    runbook = RUNBOOK.replace("rollback_validation: [health]", "rollback_validation: []").replace(
        'with: {command: "echo healthy >> log"}',
        'on_failure: rollback\n                with: {command: "exit 1"}',
    )
    release = h.start(write_runbook(tmp_path, runbook))
    final = h.wait(release.id)
    assert final.status == "rolled_back"
    assert "failed at health" in (final.reason or "")
    assert [e.kind for e in h.client.store.list_events(release_id=release.id)].index(
        "rollback.started"
    ) < [e.kind for e in h.client.store.list_events(release_id=release.id)].index(
        "release.rolled_back"
    )
    assert events(h, release.id, "comms.rollback")
    assert events(h, release.id, "rollback.restored")
    assert len(events(h, release.id, "release.rolled_back")) == 1


def test_a_failing_rollback_stops_pages_and_is_not_retried(h: Harness, tmp_path: Path) -> None:
    runbook = RUNBOOK.replace("echo undone-config >> log", "echo undo-config-tried >> log; exit 4")
    release = h.start(write_runbook(tmp_path, runbook))
    assert h.wait(release.id).status == "succeeded"
    roll_back(h, release.id)
    h.wait_for_gate(release.id, "rollback/approval")
    h.client.decide(release.id, "rollback/approval", user="sam", decision="approve")
    final = h.wait(release.id)
    assert final.status == "failed"
    assert "rollback step undo-config failed" in (final.reason or "")
    # it stopped at the failure: the deploy was not undone, nothing ran twice
    assert log(h)[3:] == ["undo-config-tried"]
    [page] = events(h, release.id, "incident.opened")
    assert page.data["severity"] == "P1"
    statuses = h.statuses(release.id)
    assert statuses["rollback/undo-config"] == "failed"
    assert "rollback/undo-deploy" not in statuses
    assert h.client.store.latest_step_runs(release.id)["rollback/undo-config"].attempt == 1


MIGRATING = """
        name: migrating
{roles}
        phases:
          - id: one
            steps:
              - id: expand
                action: migrate
                with: {{directory: migrations, phase: expand, database_url: "{url}"}}
              - id: deploy
                action: shell
                needs: [expand]
                with: {{command: "echo deployed >> log"}}
                undo: {{action: shell, with: {{command: "echo undone-deploy >> log"}}}}
              - id: contract
                action: migrate
                needs: [deploy]
                with: {{directory: migrations, phase: contract, database_url: "{url}"}}
"""


def test_point_of_no_return(h: Harness, tmp_path: Path) -> None:
    migrations = h.workdir / "migrations"
    migrations.mkdir()
    (migrations / "20240101000000-add.sql").write_text(
        "create table canvases (id int primary key, legacy_owner text);\n"
    )
    with postgres_database("sc_app") as app_url:
        # the app already runs on the first migration: the second waits for contract
        apply(app_url, migrations, "expand", "an earlier release")
        (migrations / "20240102000000-drop.sql").write_text(
            "alter table canvases drop column legacy_owner;\n"
        )
        runbook = write_runbook(tmp_path, MIGRATING.format(roles=ROLES, url=app_url))
        release = h.start(runbook)
        assert h.wait(release.id).status == "succeeded"
    kinds = [(e.kind, e.step_id) for e in h.client.store.list_events(release_id=release.id)]
    warned = kinds.index(("release.point_of_no_return", "contract"))
    assert warned < kinds.index(("step.succeeded", "contract"))

    entries, blocked = h.client.rollback_preview(release.id)
    assert blocked == ["contract"]
    assert [(e.kind, e.key) for e in entries] == [
        ("no_undo", "undo-contract"),
        ("undo", "undo-deploy"),
        ("no_undo", "undo-expand"),
    ]
    with pytest.raises(InvalidState, match="point of no return: contract"):
        h.client.request_rollback(release.id, user="casey", reason="errors")
    assert h.client.get(release.id).status == "succeeded"

    fixed = h.client.request_rollback(
        release.id, user="casey", reason="errors", forward_fix="v1.2.4 reads owner_team"
    )
    assert fixed.run is None
    [recorded] = events(h, release.id, "rollback.forward_fix")
    assert recorded.actor == "casey"
    assert recorded.data["forward_fix"] == "v1.2.4 reads owner_team"
    assert h.client.get(release.id).status == "succeeded"

    roll_back(h, release.id, restore_procedure="restore canvases from the 02:00 backup")
    h.wait_for_gate(release.id, "rollback/approval")
    h.client.decide(release.id, "rollback/approval", user="sam", decision="approve")
    assert h.wait(release.id).status == "rolled_back"
    [started] = events(h, release.id, "rollback.started")
    assert started.data["restore_procedure"] == "restore canvases from the 02:00 backup"
    assert log(h) == ["deployed", "undone-deploy"]


def test_an_automatic_rollback_stops_at_the_point_of_no_return(h: Harness, tmp_path: Path) -> None:
    migrations = h.workdir / "migrations"
    migrations.mkdir()
    (migrations / "20240101000000-add.sql").write_text("create table canvases (id int, x text);\n")
    with postgres_database("sc_app") as app_url:
        apply(app_url, migrations, "expand", "an earlier release")
        (migrations / "20240102000000-drop.sql").write_text("alter table canvases drop column x;\n")
        text = MIGRATING.format(roles=ROLES, url=app_url) + (
            "              - {id: check, action: shell, needs: [contract], "
            'on_failure: rollback, with: {command: "exit 1"}}\n'
        )
        release = h.start(write_runbook(tmp_path, text))
        final = h.wait(release.id)
    assert final.status == "failed"
    assert "rollback refused: contract passed the point of no return" in (final.reason or "")
    assert log(h) == ["deployed"]  # nothing was undone
    [page] = events(h, release.id, "incident.opened")
    assert "point of no return" in page.message


def test_a_manual_rollback_waits_for_the_release_holding_production(
    h: Harness, tmp_path: Path
) -> None:
    """Once approved, a rollback in production waits for the service's lock: it does not
    undo anything while another release of the service is changing production."""
    held = RUNBOOK.replace(
        'with: {command: "echo deployed >> log"}',
        'with: {command: "while [ ! -f {{ hold }} ]; do sleep 0.05; done; echo deployed >> log"}',
    ).replace(
        'version: {default: "1.2.3"}',
        'version: {default: "1.2.3"}\n'
        "          hold: {}\n"
        "          environment: {default: production}",
    )
    held = held.replace(
        "name: rollbackable", 'name: rollbackable\n        environment: "{{ environment }}"'
    )
    runbook = write_runbook(tmp_path, held)
    gate = h.workdir / "go-first"
    gate.touch()
    first = h.start(runbook, hold=str(gate))
    assert h.wait(first.id).status == "succeeded"
    second = h.start(runbook, hold=str(h.workdir / "go-second"))
    wait_for(lambda: h.client.get(second.id).status == "running", 30, what="the second to run")
    roll_back(h, first.id)
    h.wait_for_gate(first.id, "rollback/approval")
    h.client.decide(first.id, "rollback/approval", user="sam", decision="approve")
    wait_for(lambda: events(h, first.id, "release.queued"), 30, what="the rollback queued")
    assert second.id in events(h, first.id, "release.queued")[0].message
    time.sleep(0.5)
    assert "undone-config" not in log(h)  # still waiting while the second one deploys
    assert h.client.get(first.id).status == "rolling_back"
    (h.workdir / "go-second").touch()
    assert h.wait(second.id).status == "succeeded"
    assert h.wait(first.id).status == "rolled_back"
    # the second release finished before the first one's rollback undid anything
    forward = ["deployed", "configured", "healthy"]
    assert log(h) == [*forward, *forward, "undone-config", "undone-deploy", "restarted", "healthy"]


def test_an_approved_rollback_goes_ahead_of_the_releases_waiting_for_production(
    h: Harness, tmp_path: Path
) -> None:
    """A rollback waiting for its approval holds nobody up; once approved, it waits for the
    release holding production only, and runs before the releases still waiting."""
    held = RUNBOOK.replace(
        'with: {command: "echo deployed >> log"}',
        'with: {command: "while [ ! -f {{ hold }} ]; do sleep 0.05; done; '
        'echo deployed-{{ version }} >> log"}',
    ).replace(
        'version: {default: "1.2.3"}',
        'version: {default: "1.2.3"}\n'
        "          hold: {}\n"
        "          environment: {default: production}",
    )
    held = held.replace(
        "name: rollbackable", 'name: rollbackable\n        environment: "{{ environment }}"'
    )
    runbook = write_runbook(tmp_path, held)
    for name in ("go-first", "go-third"):
        (h.workdir / name).touch()
    first = h.start(runbook, hold=str(h.workdir / "go-first"), version="1")
    assert h.wait(first.id).status == "succeeded"
    roll_back(h, first.id)
    h.wait_for_gate(first.id, "rollback/approval")
    # the rollback waits for its approval: the next release takes production meanwhile
    second = h.start(runbook, hold=str(h.workdir / "go-second"), version="2")
    wait_for(lambda: h.client.get(second.id).status == "running", 30, what="the second release")
    third = h.start(runbook, hold=str(h.workdir / "go-third"), version="3")
    wait_for(lambda: events(h, third.id, "release.queued"), 30, what="the third one queued")
    assert events(h, third.id, "release.queued")[-1].message.endswith(f": {second.id} first")
    h.client.decide(first.id, "rollback/approval", user="sam", decision="approve")
    wait_for(lambda: events(h, first.id, "release.queued"), 30, what="the rollback queued")
    # behind the holder only, not behind the release that was waiting before it
    [queued] = events(h, first.id, "release.queued")
    assert queued.message.endswith(f": {second.id} first"), queued.message
    wait_for(
        lambda: events(h, third.id, "release.queued")[-1].message.endswith(
            f": {second.id}, {first.id} first"
        ),
        30,
        what="the third release behind the rollback",
    )
    (h.workdir / "go-second").touch()
    assert h.wait(second.id).status == "succeeded"
    assert h.wait(first.id).status == "rolled_back"
    assert h.wait(third.id).status == "succeeded"
    forward = ["configured", "healthy"]
    undo = ["undone-config", "undone-deploy", "restarted", "healthy"]
    assert log(h) == ["deployed-1", *forward, "deployed-2", *forward, *undo, "deployed-3", *forward]
