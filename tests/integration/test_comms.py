"""Release comms and incidents on a real engine and database, Slack played by its double:
every template at its event, notifier failures that never fail the release, a failed
post-deploy check that opens a P1 whose durable clock reminds, escalates and survives an
engine restart (short SLAs in the test runbook: no test waits minutes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.processes import wait_for
from helpers.releases import Harness, harness, write_runbook
from shipcaptain.engine.incident_clock import _look, notice
from shipcaptain.errors import InvalidRunbook
from shipcaptain.runbook.loader import load_runbook_file
from shipcaptain.sandbox.doubles.slack import SlackDouble

RUNBOOK = """
name: comms
environment: "{{ environment }}"
parameters:
  version: {required: true}
  environment: {default: production}
  fail: {default: "0"}
roles:
  oncall_sre: {title: On-call SRE, members: [sam]}
phases:
  - id: tag_and_build
    steps:
      - {id: tag, action: shell, with: {command: "echo tagged"}}
  - id: smoke
    steps:
      - {id: smoke_api, title: API smoke tests, action: shell, with: {command: "true"}}
  - id: post_deploy
    steps:
      - id: metrics
        title: Error rates
        action: shell
        on_failure: {policy}
        with: {command: "exit {{ fail }}"}
rollback:
  - {id: undo, action: shell, with: {command: "echo undone"}}
slas:
  P1: {acknowledge: {ack}, mitigate: {mitigate}}
incidents: {owners: [oncall_sre]}
comms:
  channel: "#releases"
  expected_duration: 30m
  smoke_tests: [smoke_api]
  templates:
    start: >-
      Deploying v{{ version }} to {{ environment }}. Expected duration
      {{ release.expected_duration }}. Release Captain: {{ release.captain }}.
    rollback: Initiating rollback of v{{ version }} due to {{ release.reason }}.
    complete: >-
      v{{ version }} deployed. Key smoke tests passed:
      {{ release.smoke_tests_passed | join(', ') }}.
"""


def runbook(
    tmp_path: Path, policy: str = "rollback", ack: str = "2s", mitigate: str = "4s"
) -> Path:
    body = RUNBOOK.replace("{policy}", policy).replace("{ack}", ack)
    return write_runbook(tmp_path, body.replace("{mitigate}", mitigate))


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


def slack_settings(slack: SlackDouble) -> dict[str, object]:
    return {
        "slack_token": slack.token,
        "slack_api_url": slack.api_url,
        "slack_webhook_url": slack.webhook_url,
        "notify_backoff": 0.01,
    }


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path, slack: SlackDouble) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path, **slack_settings(slack)) as running:
        yield running


def kinds(h: Harness, release_id: str) -> list[str]:
    return [e.kind for e in h.client.store.list_events(release_id=release_id)]


def test_start_and_complete_go_to_the_release_thread_and_the_webhook(
    h: Harness, tmp_path: Path, slack: SlackDouble
) -> None:
    release = h.start(runbook(tmp_path), version="1.4.0")
    assert h.wait(release.id).status == "succeeded"
    api = [m for m in slack.channel_messages("#releases") if m.via == "api"]
    assert [m.text for m in api] == [
        "Deploying v1.4.0 to production. Expected duration 30 minutes. Release Captain: casey.",
        "v1.4.0 deployed. Key smoke tests passed: API smoke tests.",
    ]
    # one thread per release: the start message opens it, the rest reply in it
    assert api[0].thread_ts is None
    assert api[1].thread_ts == api[0].ts
    assert h.client.store.release_thread(release.id, "#releases") == api[0].ts
    assert [p["text"] for p in slack.webhook_posts] == [m.text for m in api]
    sent = h.client.store.list_notifications(release.id)
    assert {(n.kind, n.channel, n.status) for n in sent} == {
        (kind, channel, "sent")
        for kind in ("comms.start", "comms.complete")
        for channel in ("slack:#releases", "slack-webhook")
    }
    assert {"comms.start", "comms.complete"} <= set(kinds(h, release.id))


def test_a_rollback_announces_and_its_p1_is_mitigated_by_the_rollback(
    h: Harness, tmp_path: Path, slack: SlackDouble
) -> None:
    release = h.start(runbook(tmp_path, ack="5m", mitigate="30m"), version="1.4.1", fail="1")
    assert h.wait(release.id).status == "rolled_back"
    texts = [m.text for m in slack.channel_messages("#releases") if m.via == "api"]
    assert texts[0].startswith("Deploying v1.4.1")
    assert any(t.startswith("P1 incident inc-") for t in texts)
    assert "Initiating rollback of v1.4.1 due to metrics failing (exit 1)." in texts
    assert not any("deployed. Key smoke" in t for t in texts)  # no complete message
    (incident,) = h.client.store.list_incidents()
    assert incident.release_id == release.id
    assert incident.severity == "P1"
    assert (incident.acknowledge_by - incident.opened_at).total_seconds() == 300
    assert incident.status == "mitigated"
    assert incident.mitigated_by == "engine"
    assert incident.mitigation == f"rolled back (release {release.id})"


def test_not_customer_facing_opens_no_incident(h: Harness, tmp_path: Path) -> None:
    release = h.start(runbook(tmp_path), version="1.4.2", fail="1", environment="staging")
    assert h.wait(release.id).status == "rolled_back"
    assert h.client.store.list_incidents() == []


def test_a_failing_slack_never_fails_the_release(
    h: Harness, tmp_path: Path, slack: SlackDouble
) -> None:
    slack.fail("500", times=100)
    release = h.start(runbook(tmp_path), version="1.5.0")
    assert h.wait(release.id).status == "succeeded"
    failed = [n for n in h.client.store.list_notifications(release.id) if n.status == "failed"]
    assert len(failed) == 4  # start and complete, to both Slack notifiers
    assert all(n.attempts == h.settings.notify_attempts for n in failed)
    assert all("HTTP 500" in (n.error or "") for n in failed)
    events = h.client.store.list_events(release_id=release.id)
    assert sum(e.kind == "notification.failed" for e in events) == 4
    # the webhook's URL is a secret: not in any event, notification or error
    secret = slack.webhook_secret
    assert not any(secret in e.message or secret in str(e.data) for e in events)
    assert not any(secret in (n.error or "") + n.channel for n in failed)


def test_the_sla_clock_reminds_and_escalates(
    h: Harness, tmp_path: Path, slack: SlackDouble
) -> None:
    release = h.start(runbook(tmp_path, policy="halt"), version="1.6.0", fail="1")
    assert h.wait(release.id).status == "failed"
    (incident,) = h.client.store.list_incidents()
    wait_for(lambda: kinds(h, release.id).count("incident.breached") == 2, 20, what="two breaches")
    order = [k for k in kinds(h, release.id) if k.startswith("incident.")]
    assert order == [
        "incident.opened",
        "incident.reminder",
        "incident.breached",
        "incident.reminder",
        "incident.breached",
    ]
    texts = [m.text for m in slack.channel_messages("#releases") if m.via == "api"]
    assert any(t.startswith(f"Reminder to sam: P1 incident {incident.id}") for t in texts)
    assert any(
        t.startswith(f"ESCALATION: P1 incident {incident.id} was not acknowledged") for t in texts
    )


def test_acknowledged_in_time_is_not_escalated(h: Harness, tmp_path: Path) -> None:
    release = h.start(
        runbook(tmp_path, policy="halt", ack="3s", mitigate="5s"), version="1.6.1", fail="1"
    )
    assert h.wait(release.id).status == "failed"
    (incident,) = h.client.store.list_incidents()
    h.client.incident_action(incident.id, "acknowledge", user="sam")
    wait_for(lambda: "incident.breached" in kinds(h, release.id), 20, what="a breach")
    breaches = [
        e
        for e in h.client.store.list_events(release_id=release.id)
        if e.kind == "incident.breached"
    ]
    assert len(breaches) == 1
    assert breaches[0].data["deadline"] == "mitigate"
    after = h.client.store.get_incident(incident.id)
    assert after.acknowledged_by == "sam"
    assert after.status == "acknowledged"


def test_a_look_run_again_reminds_once(h: Harness, tmp_path: Path, slack: SlackDouble) -> None:
    """The clock's look at a deadline runs again when its process died before the step's
    checkpoint (a killed worker's clock, taken over): the deadline is reminded once, and
    its message is sent once, also when the death came between the event and the send."""
    release = h.start(
        runbook(tmp_path, policy="halt", ack="5m", mitigate="30m"), version="1.6.2", fail="1"
    )
    assert h.wait(release.id).status == "failed"
    (incident,) = h.client.store.list_incidents()
    due = incident.acknowledge_by.timestamp()
    for _ in range(2):  # the look, then its replay
        assert _look(incident.id, "acknowledge", due, False) is False
    # the mitigate reminder's event recorded, its process gone before the message went out
    kind, text = notice(incident, "mitigate", incident.mitigate_by.timestamp(), False)
    assert h.client.store.record_incident_notice(incident, kind, "mitigate", text)
    assert _look(incident.id, "mitigate", incident.mitigate_by.timestamp(), False) is False

    reminders = [
        e.data for e in h.client.store.list_events(release_id=release.id)
        if e.kind == "incident.reminder"
    ]  # fmt: skip
    assert reminders == [
        {"incident": incident.id, "deadline": "acknowledge"},
        {"incident": incident.id, "deadline": "mitigate"},
    ]
    texts = [m.text for m in slack.channel_messages("#releases") if m.via == "api"]
    assert [t.split(" by ")[0] for t in texts if t.startswith("Reminder to")] == [
        f"Reminder to sam: P1 incident {incident.id} must be acknowledged",
        f"Reminder to sam: P1 incident {incident.id} must be mitigated",
    ]


def test_the_sla_clock_survives_an_engine_restart(
    engine_database_url: str, tmp_path: Path, slack: SlackDouble
) -> None:
    with harness(engine_database_url, tmp_path, **slack_settings(slack)) as first:
        release = first.start(
            runbook(tmp_path, policy="halt", ack="4s", mitigate="60s"), version="1.7.0", fail="1"
        )
        assert first.wait(release.id).status == "failed"
        (incident,) = first.client.store.list_incidents()
        assert "incident.breached" not in kinds(first, release.id)
    # the engine is gone; a new one (the same worker, restarted) picks the clock up
    with harness(engine_database_url, tmp_path, **slack_settings(slack)) as second:
        wait_for(lambda: "incident.breached" in kinds(second, release.id), 30, what="a breach")
        breach = next(
            e
            for e in second.client.store.list_events(release_id=release.id)
            if e.kind == "incident.breached"
        )
        assert breach.data == {"incident": incident.id, "deadline": "acknowledge"}
        assert breach.at >= incident.acknowledge_by


def problems_of(tmp_path: Path, *changes: tuple[str, str]) -> str:
    """The problems found in the test runbook changed by (old, new) pairs."""
    body = RUNBOOK.replace("{policy}", "halt").replace("{ack}", "5m").replace("{mitigate}", "30m")
    for old, new in changes:
        assert old in body
        body = body.replace(old, new)
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook_file(write_runbook(tmp_path, body))
    return str(caught.value)


def test_a_start_message_using_step_outputs_is_refused_before_the_release(tmp_path: Path) -> None:
    text = problems_of(
        tmp_path,
        (
            "Release Captain: {{ release.captain }}.",
            "Tag {{ steps.tag.commit }} {{ release.captian }}.",
        ),
    )
    assert "runbook.yaml:34: comms.templates.start" in text
    assert "unknown release fact 'captian'" in text
    assert "cannot use steps.tag" in text


def test_incident_rules_and_smoke_tests_must_name_what_exists(tmp_path: Path) -> None:
    text = problems_of(
        tmp_path,
        ("smoke_tests: [smoke_api]", "smoke_tests: [smoke_apy]"),
        (
            "incidents: {owners: [oncall_sre]}",
            "incidents: {owners: [oncall], severity: P3, post_deploy_phases: [postdeploy]}",
        ),
    )
    assert "comms.smoke_tests[0]: unknown step 'smoke_apy'" in text
    assert "incidents.owners[0]: unknown role 'oncall'" in text
    assert "incidents.severity: severity 'P3' is not in the SLA table (P1)" in text
    assert "incidents.post_deploy_phases[0]: unknown phase 'postdeploy'" in text
