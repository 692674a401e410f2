"""Approve and reject from Slack, in the production topology: ``shipcaptain server`` as its
own process runs the release and posts each gate's message with buttons to Slack (its
double); the double presses them the way Slack does (a signed ``block_actions`` payload).
A press counts only when Slack signed it recently, the Slack user is a person of the team
file, and that person may decide the gate (the CLI's permissions, separation of duties and
evidence); anything else is refused and changes nothing."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.processes import wait_for
from helpers.team import OPEN_PERMISSIONS
from helpers.web import GATED, REQUEST_TIMEOUT, bearer, server_process, token_for
from shipcaptain.sandbox.doubles.slack import SlackDouble, SlackMessage
from shipcaptain.slack_actions import APPROVE, REJECT
from shipcaptain.store import Store, open_store

pytestmark = pytest.mark.slow

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_IDS = {"sam": "U0SAM0001", "casey": "U0CASEY01", "erin": "U0ERIN001"}


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


def with_slack_ids(store: Store) -> None:
    people = [
        dataclasses.replace(p, slack_id=SLACK_IDS.get(p.name, "")) for p in store.list_people()
    ]
    store.put_team(people, actor="test", message="slack ids", data={}, permissions=OPEN_PERMISSIONS)


def gate_message(slack: SlackDouble) -> SlackMessage:
    found = [m for m in slack.channel_messages("#releases") if m.blocks]
    assert len(found) == 1
    return found[0]


def test_a_gate_is_approved_from_slack_only_by_someone_who_may(
    database_url: str, tmp_path: Path, slack: SlackDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(database_url) as store:
        store.migrate()
        ops = token_for(store, "ops")
        casey = token_for(store, "casey")
        with_slack_ids(store)
    monkeypatch.setenv("SHIPCAPTAIN_SLACK_TOKEN", slack.token)
    monkeypatch.setenv("SHIPCAPTAIN_SLACK_API_URL", slack.api_url)
    monkeypatch.setenv("SHIPCAPTAIN_SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("SHIPCAPTAIN_NOTIFY_BACKOFF", "0.01")
    with server_process(
        database_url, tmp_path / "data", tmp_path, "--runbooks", str(tmp_path), token=ops
    ) as server:
        started = httpx.post(
            f"{server.url}/api/v1/releases",
            json={"runbook_yaml": GATED, "params": {}},
            headers=bearer(casey),
            timeout=REQUEST_TIMEOUT,
        )
        assert started.status_code == 201, started.text
        release_id = started.json()["id"]
        wait_for(lambda: any(m.blocks for m in slack.messages), 60, what="the gate's message")
        message = gate_message(slack)
        assert message.text.startswith("go_ahead waits for role oncall_sre: ship it?")
        url = f"{server.url}/slack/interactions"

        def decisions() -> list[tuple[str, str, str]]:
            with open_store(database_url) as store:
                return [(d.user, d.decision, d.comment) for d in store.list_decisions(release_id)]

        # not Slack: a wrong secret, an old (replayed) request
        forged = slack.click(url, "not-the-secret", message, APPROVE, SLACK_IDS["sam"])
        assert forged.status_code == 403
        assert "X-Slack-Signature does not match" in forged.text
        old = slack.click(
            url, SECRET, message, APPROVE, SLACK_IDS["sam"], timestamp=int(time.time()) - 600
        )
        assert old.status_code == 403
        assert "more than 5 minutes old" in old.text
        # Slack's, but nobody of the team, or somebody who may not decide
        stranger = slack.click(url, SECRET, message, APPROVE, "U0STRANGER")
        assert stranger.status_code == 200
        assert stranger.json()["response_type"] == "ephemeral"
        assert "nobody in shipcaptain's team file" in stranger.json()["text"]
        erin = slack.click(url, SECRET, message, APPROVE, SLACK_IDS["erin"])
        assert erin.json()["text"].startswith("Not recorded for erin:")
        assert decisions() == []
        # the on-call SRE approves: recorded like `release approve`, and the release ships
        sam = slack.click(url, SECRET, message, APPROVE, SLACK_IDS["sam"])
        assert sam.status_code == 200, sam.text
        assert sam.json()["text"].startswith("Your approval of go_ahead")
        wait_for(lambda: decisions() == [("sam", "approve", "from Slack")], 30, what="decision")
        wait_for(
            lambda: (
                httpx.get(
                    f"{server.url}/api/v1/releases/{release_id}",
                    headers=bearer(casey),
                    timeout=REQUEST_TIMEOUT,
                ).json()["release"]["status"]
                == "succeeded"
            ),
            60,
            what="the release to succeed",
        )
        late = slack.click(url, SECRET, message, REJECT, SLACK_IDS["sam"])
        assert "Not recorded for sam" in late.json()["text"]
