"""Comms the runbook's way, on a real engine and database with Slack played by its double:
nothing dropped silently (a message with no channel, or a channel down, is shown as not
delivered and counted in the release's summary), the start message once pre-flight
passed, a halted release announced with its reason and a link, and the completion
message sent by an ``announce`` step between the checks it cites and the final sign-off
(the step confirmed by the delivery, not by a person)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers.releases import Harness, harness, write_runbook
from shipcaptain.cli.main import cli
from shipcaptain.codec import view_dict
from shipcaptain.comms import comms_warnings
from shipcaptain.errors import InvalidRunbook
from shipcaptain.runbook.loader import load_runbook_file
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.team import InvalidTeamFile, apply_team, load_team_file

RUNBOOK = """
name: ordered
environment: "{{ environment }}"
parameters:
  version: {required: true}
  environment: {default: production}
  preflight_exit: {default: "0"}
roles:
  release_captain: {title: Release Captain, members: [casey]}
  feature_owner: {title: Feature Owner, members: [fola]}
phases:
  - id: preflight
    steps:
      - {id: backup_checked, action: shell, with: {command: "exit {{ preflight_exit }}"}}
  - id: deploy
    steps:
      - {id: rollout, action: shell, with: {command: "echo rolled out"}}
  - id: post_deploy
    steps:
      - id: smoke_api
        title: API smoke tests
        action: shell
        needs: [rollout]
        with: {command: "true"}
      - id: completion_announced
        action: announce
        needs: [smoke_api]
        with: {template: complete, confirm_by: release_captain, timeout: 1m}
      - id: sign_off
        action: approval
        needs: [completion_announced]
        with: {prompt: "Final sign-off", roles: [feature_owner], timeout: 1m}
comms:
  channel: "#releases"
  smoke_tests: [smoke_api]
  templates:
    start: Deploying v{{ version }} to {{ environment }}.
    failed: "Release of v{{ version }} halted: {{ release.reason }} {{ release.url }}"
    complete: >-
      v{{ version }} deployed. Key smoke tests passed:
      {{ release.smoke_tests_passed | join(', ') }}. Please give your final sign-off.
"""


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


def with_slack(slack: SlackDouble) -> dict[str, object]:
    return {
        "slack_token": slack.token,
        "slack_api_url": slack.api_url,
        "notify_backoff": 0.01,
        "public_url": "https://ship.example.com/",
    }


def texts(slack: SlackDouble) -> list[str]:
    return [m.text for m in slack.channel_messages("#releases") if m.via == "api"]


def kinds(h: Harness, release_id: str) -> list[str]:
    return [e.kind for e in h.client.store.list_events(release_id=release_id)]


def test_start_after_preflight_and_completion_before_the_sign_off(
    engine_database_url: str, tmp_path: Path, slack: SlackDouble
) -> None:
    with harness(engine_database_url, tmp_path, **with_slack(slack)) as h:
        release = h.start(write_runbook(tmp_path, RUNBOOK), version="2.0.0")
        h.wait_for_gate(release.id, "sign_off")
        # the completion message is out before the sign-off it asks for, and the step that
        # says so was confirmed by the delivery: no person confirmed anything
        assert texts(slack) == [
            "Deploying v2.0.0 to production.",
            "v2.0.0 deployed. Key smoke tests passed: API smoke tests. Please give your final "
            "sign-off.",
        ]
        run = h.client.store.latest_step_runs(release.id)["completion_announced"]
        assert run.status == "succeeded"
        assert run.outputs["delivered_to"] == ["slack:#releases"]
        gates = h.client.store.list_gates(release_id=release.id)
        assert [g.step_id for g in gates] == ["sign_off"]
        h.client.decide(release.id, "sign_off", user="fola", decision="approve")
        final = h.wait(release.id)
        assert final.status == "succeeded"
        assert final.reason == "all 5 steps done"  # nothing undelivered to count
        assert len(texts(slack)) == 2  # the engine does not announce completion again
        order = [
            (e.kind, e.step_id)
            for e in h.client.store.list_events(release_id=release.id)
            if e.kind in ("comms.start", "comms.completion_announced", "comms.complete")
            or (e.kind == "step.succeeded" and e.step_id == "backup_checked")
        ]
        assert order[:2] == [("step.succeeded", "backup_checked"), ("comms.start", None)]


def test_a_failed_preflight_is_not_announced_as_started_but_as_halted(
    engine_database_url: str, tmp_path: Path, slack: SlackDouble
) -> None:
    with harness(engine_database_url, tmp_path, **with_slack(slack)) as h:
        release = h.start(write_runbook(tmp_path, RUNBOOK), version="2.0.1", preflight_exit="3")
        assert h.wait(release.id).status == "failed"
        (message,) = texts(slack)
        assert message == (
            "Release of v2.0.1 halted: backup_checked: exit 3 "
            f"https://ship.example.com/releases/{release.id}"
        )
        assert "comms.start" not in kinds(h, release.id)
        assert "comms.failed" in kinds(h, release.id)


def test_no_channel_is_shown_as_not_delivered_and_counted(
    engine_database_url: str, tmp_path: Path
) -> None:
    with harness(engine_database_url, tmp_path) as h:  # no Slack, no webhook
        release = h.start(write_runbook(tmp_path, RUNBOOK), version="2.1.0")
        # the completion step cannot be confirmed by a delivery: the captain is asked to
        # post it by hand and confirm
        h.wait_for_gate(release.id, "completion_announced")
        (gate,) = h.client.store.list_gates(release_id=release.id)
        assert gate.prompt.startswith(
            "The complete message was not delivered (no channel configured"
        )
        h.client.decide(release.id, "completion_announced", user="casey", decision="approve")
        h.wait_for_gate(release.id, "sign_off")
        h.client.decide(release.id, "sign_off", user="fola", decision="approve")
        final = h.wait(release.id)
        assert final.status == "succeeded"
        assert final.reason == (
            "all 5 steps done; 2 notifications not delivered "
            "(comms.start to (no channel), comms.complete to (no channel))"
        )
        shown = view_dict(h.client.show(release.id))
        undelivered = [(n["kind"], n["channel"], n["status"]) for n in shown["notifications"]]
        assert undelivered == [
            ("comms.start", "(no channel)", "failed"),
            ("comms.complete", "(no channel)", "failed"),
        ]
        assert all("SHIPCAPTAIN_SLACK_TOKEN" in n["error"] for n in shown["notifications"])
        timeline = [(e["kind"], e["message"]) for e in shown["events"]]
        assert ("comms.start", "Deploying v2.1.0 to production.") in timeline
        undelivered = [m for k, m in timeline if k == "notification.failed"]
        assert undelivered == [
            f"comms.{kind} not delivered: no channel configured: set SHIPCAPTAIN_SLACK_TOKEN, "
            "SHIPCAPTAIN_SLACK_WEBHOOK_URL or SHIPCAPTAIN_WEBHOOK_URL"
            for kind in ("start", "complete")
        ]
        start = next(e for e in shown["events"] if e["kind"] == "comms.start")
        assert start["data"]["delivered"] is False
        step = h.client.store.latest_step_runs(release.id)["completion_announced"]
        assert "posted by hand, confirmed by casey" in step.summary


def test_a_channel_down_is_counted_in_the_summary(
    engine_database_url: str, tmp_path: Path, slack: SlackDouble
) -> None:
    slack.fail("500", times=1000)
    with harness(engine_database_url, tmp_path, **with_slack(slack)) as h:
        release = h.start(write_runbook(tmp_path, RUNBOOK), version="2.2.0", preflight_exit="1")
        final = h.wait(release.id)
        assert final.status == "failed"
        assert final.reason == (
            "failed at backup_checked; 1 notification not delivered (comms.failed to "
            "slack:#releases)"
        )
        (failed,) = h.client.store.list_notifications(release.id)
        assert failed.attempts == h.settings.notify_attempts
        assert "HTTP 500" in (failed.error or "")


def test_validate_and_start_say_which_templates_have_no_channel(tmp_path: Path) -> None:
    path = write_runbook(tmp_path, RUNBOOK)
    env = {"SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(cli, ["validate", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert (
        "warning: " + str(path) + ": comms.templates: complete, failed, start have no channel"
    ) in result.stderr
    as_json = CliRunner().invoke(cli, ["validate", str(path), "--json"], env=env)
    (warning,) = json.loads(as_json.stdout)["warnings"]
    assert warning.startswith("comms.templates: complete, failed, start have no channel")
    unsent = CliRunner().invoke(
        cli,
        [
            "validate",
            str(
                write_runbook(
                    tmp_path, RUNBOOK.replace("    failed:", "    halted:"), "unsent.yaml"
                )
            ),
        ],
        env={**env, "SHIPCAPTAIN_WEBHOOK_URL": "http://127.0.0.1:9"},
    )
    assert (
        "comms.templates.halted is never sent: the engine sends start, failed, rollback, "
        "complete; others need an announce step"
    ) in unsent.stderr
    configured = CliRunner().invoke(
        cli, ["validate", str(path)], env={**env, "SHIPCAPTAIN_WEBHOOK_URL": "http://127.0.0.1:9"}
    )
    assert configured.exit_code == 0
    assert "warning" not in configured.stderr


def problems_of(tmp_path: Path, old: str, new: str) -> str:
    assert old in RUNBOOK
    with pytest.raises(InvalidRunbook) as caught:
        load_runbook_file(write_runbook(tmp_path, RUNBOOK.replace(old, new)))
    return str(caught.value)


def test_an_announce_step_sends_a_template_that_exists_after_the_checks_it_cites(
    tmp_path: Path,
) -> None:
    text = problems_of(tmp_path, "{template: complete,", "{template: completed,")
    assert (
        "with.template: unknown comms template 'completed'; known: start, failed, complete" in text
    )
    text = problems_of(
        tmp_path,
        "needs: [smoke_api]\n        with: {template",
        "needs: [rollout]\n        with: {template",
    )
    assert (
        "phases[2].steps[1].needs: the 'complete' message cites the smoke tests passed, but "
        "this step does not wait for smoke_api"
    ) in text
    text = problems_of(
        tmp_path, 'channel: "#releases"', 'channel: "#releases"\n  start_after: [pre]'
    )
    assert "comms.start_after[0]: unknown phase 'pre'" in text


TEAM = """
people:
  casey: {admin: true, slack: U0CASEY01, roles: [release_captain]}
  fola: {slack: U0FOLA001, roles: [feature_owner]}
  dev: {roles: [feature_owner]}
"""


def test_owners_are_mentioned_by_their_slack_ids(
    engine_database_url: str, tmp_path: Path, slack: SlackDouble
) -> None:
    # the runbook's members narrow the team's role holders: both feature owners here
    body = (
        RUNBOOK.replace("members: [fola]", "members: [fola, dev]")
        .replace("Please give", "{{ roles.feature_owner.mentions | join(', ') }}: please give")
        .replace("to {{ environment }}.", "to {{ environment }} by {{ release.captain_mention }}.")
    )
    path = write_runbook(tmp_path, body)
    with harness(engine_database_url, tmp_path, **with_slack(slack)) as h:
        apply_team(
            h.client.store, load_team_file(write_runbook(tmp_path, TEAM, "team.yaml")), by=None
        )
        rb = load_runbook_file(path).runbook
        warnings = comms_warnings(rb, h.settings, h.client.store, "staging")
        assert warnings == [
            "no Slack id in the team file for dev: comms name them in plain text instead of "
            "mentioning them (set slack: U... in the team file)"
        ]
        # staging: production takes runbooks its allow-list names
        release = h.start(path, version="3.0.0", environment="staging")
        h.wait_for_gate(release.id, "sign_off")
        assert texts(slack) == [
            "Deploying v3.0.0 to staging by <@U0CASEY01>.",
            "v3.0.0 deployed. Key smoke tests passed: API smoke tests. dev, <@U0FOLA001>: please "
            "give your final sign-off.",
        ]
        h.client.decide(release.id, "sign_off", user="fola", decision="approve")
        assert h.wait(release.id).status == "succeeded"


def test_a_slack_id_is_checked_in_the_team_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidTeamFile) as caught:
        load_team_file(write_runbook(tmp_path, TEAM.replace("U0FOLA001", "fola"), "team.yaml"))
    assert "team.yaml:4: people.fola.slack" in str(caught.value)
