"""Every change of a release's or a step's status is an audit event with the status before
and after, written by the store in the transaction that changes it (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.releases import Harness, harness, write_runbook
from shipcaptain.store import EventRecord

#: Event kinds that change the status of what they are about (the release when step_id is
#: None, else the step, or the gate for gate.closed).
STATUS_KINDS = (
    "release.",
    "step.started",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.timed_out",
    "step.cancelled",
    "rollback.requested",
    "rollback.started",
    "rollback.not_approved",
    "gate.closed",
)


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        yield running


def transitions(events: list[EventRecord], step: str | None) -> list[tuple[str, str, str]]:
    return [
        (e.kind, e.data["before"], e.data["after"])
        for e in events
        if e.step_id == step and "before" in e.data and not e.kind.startswith("gate.approved")
    ]


def assert_every_status_event_has_before_and_after(events: list[EventRecord]) -> None:
    for event in events:
        if event.kind.startswith(STATUS_KINDS):
            assert "before" in event.data, event
            assert "after" in event.data, event


def test_a_release_records_every_status_it_went_through(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: statuses
        phases:
          - id: one
            steps:
              - {id: ok, action: shell, with: {command: "true"}}
              - id: flaky
                action: shell
                needs: [ok]
                retry: {attempts: 2, backoff: 0.1}
                with: {command: "echo try >> tries; test $(wc -l < tries) -ge 2"}
              - {id: broken, action: shell, needs: [flaky], with: {command: "exit 3"}}
              - {id: never, action: shell, needs: [broken], with: {command: "true"}}
    """,
    )
    release = h.start(runbook)
    assert h.wait(release.id).status == "failed"
    events = h.client.store.list_events(release_id=release.id)
    assert_every_status_event_has_before_and_after(events)
    assert transitions(events, None) == [
        ("release.created", None, "pending"),
        ("release.running", "pending", "running"),
        ("release.failing", "running", "failing"),
        ("release.failed", "failing", "failed"),
    ]
    assert transitions(events, "ok") == [
        ("step.started", "pending", "running"),
        ("step.succeeded", "running", "succeeded"),
    ]
    assert transitions(events, "flaky") == [
        ("step.started", "pending", "running"),
        ("step.started", "running", "running"),  # the second try
        ("step.succeeded", "running", "succeeded"),
    ]
    assert transitions(events, "broken") == [
        ("step.started", "pending", "running"),
        ("step.failed", "running", "failed"),
    ]
    assert transitions(events, "never") == [("step.skipped", "pending", "skipped")]
    # the chain of each step agrees with what the store shows now
    for step, rec in h.client.store.latest_step_runs(release.id).items():
        assert transitions(events, step)[-1][2] == rec.status


def test_cancel_and_resume_record_before_and_after(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: cancelled
        roles:
          oncall_sre: {title: On-Call SRE, members: [sam]}
        phases:
          - id: one
            steps:
              - {id: first, action: shell, with: {command: "true"}}
              - id: go
                action: approval
                needs: [first]
                with: {prompt: go on?, roles: [oncall_sre], timeout: 1h}
    """,
    )
    release = h.start(runbook)
    h.wait_for_gate(release.id, "go")
    h.client.cancel(release.id, user="casey", reason="wrong version")
    h.client.prepare_resume(release.id, user="casey")
    events = h.client.store.list_events(release_id=release.id)
    assert_every_status_event_has_before_and_after(events)
    assert transitions(events, "go") == [
        ("step.started", "pending", "running"),
        ("gate.approval.opened", "running", "waiting"),
        ("step.cancelled", "waiting", "cancelled"),
        ("gate.closed", "waiting", "cancelled"),
    ]
    assert transitions(events, None)[-3:] == [
        ("release.waiting", "running", "waiting"),
        ("release.cancelled", "waiting", "cancelled"),
        ("release.resumed", "cancelled", "pending"),
    ]
    cancelled = next(e for e in events if e.kind == "release.cancelled")
    assert cancelled.actor == "casey"
    assert h.client.store.verify_events().ok


def test_a_gate_makes_the_release_wait_and_its_decision_run_it_again(
    h: Harness, tmp_path: Path
) -> None:
    runbook = write_runbook(
        tmp_path,
        """
        name: gated
        roles:
          oncall_sre: {title: On-Call SRE, members: [sam]}
        phases:
          - id: one
            steps:
              - id: go
                action: approval
                with: {prompt: go on?, roles: [oncall_sre], timeout: 1h}
              - {id: after, action: shell, needs: [go], with: {command: "true"}}
    """,
    )
    release = h.start(runbook)
    h.wait_for_gate(release.id, "go")
    assert h.client.get(release.id).status == "waiting"
    h.client.decide(release.id, "go", user="sam", decision="approve")
    assert h.wait(release.id).status == "succeeded"
    events = h.client.store.list_events(release_id=release.id)
    assert_every_status_event_has_before_and_after(events)
    assert transitions(events, None) == [
        ("release.created", None, "pending"),
        ("release.running", "pending", "running"),
        ("release.waiting", "running", "waiting"),
        ("release.running", "waiting", "running"),
        ("release.succeeded", "running", "succeeded"),
    ]
    assert h.client.store.verify_events().ok
