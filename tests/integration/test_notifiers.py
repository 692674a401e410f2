"""Notifiers through real clients (slack_sdk, httpx) against the Slack double and a local
JSON endpoint: threads, retries with backoff, Retry-After, errors no retry can fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from shipcaptain.notifiers import JsonWebhook, Message, SlackChannel, SlackWebhook, deliver
from shipcaptain.records import Person
from shipcaptain.sandbox.doubles.json_api import serve, shut_down
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.store import Store


@pytest.fixture
def slack() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


def test_the_double_answers_like_slack(slack: SlackDouble) -> None:
    client = WebClient(token=slack.token, base_url=slack.api_url)
    assert client.auth_test()["user_id"] == "U0SHIPCAPT"
    assert [c["name"] for c in client.conversations_list()["channels"]] == ["releases"]
    first = client.chat_postMessage(channel="#releases", text="one")
    assert first["channel"] == "C0RELEASES"
    assert first["message"]["text"] == "one"
    client.chat_postMessage(channel="C0RELEASES", text="two", thread_ts=first["ts"])
    replies = client.conversations_replies(channel="C0RELEASES", ts=first["ts"])["messages"]
    assert [m["text"] for m in replies] == ["one", "two"]
    assert [m["text"] for m in client.conversations_history(channel="#releases")["messages"]] == [
        "one"
    ]
    for call, error in [
        (lambda: WebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test(), "invalid_auth"),
        (lambda: WebClient(base_url=slack.api_url).auth_test(), "not_authed"),
        (lambda: client.chat_postMessage(channel="#nope", text="x"), "channel_not_found"),
        (
            lambda: client.chat_postMessage(channel="#releases", text="x", thread_ts="1.2"),
            "thread_not_found",
        ),
    ]:
        with pytest.raises(SlackApiError) as caught:
            call()
        assert caught.value.response["error"] == error
    slack.fail("rate_limited", retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        client.auth_test()
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"


def test_retries_back_off_and_honour_retry_after(store: Store, slack: SlackDouble) -> None:
    slack.fail("500")
    slack.fail("rate_limited", retry_after=3)
    waits: list[float] = []
    (record,) = deliver(
        store,
        [SlackChannel(slack.token, "#releases", slack.api_url)],
        Message("hello"),
        attempts=4,
        backoff=0.5,
        sleep=waits.append,
    )
    assert (record.status, record.attempts, record.error) == ("sent", 3, None)
    assert waits == [0.5, 3.0]  # 0.5 s, then Slack's Retry-After over the 1 s backoff
    assert [m.text for m in slack.messages] == ["hello"]


def test_errors_no_retry_fixes_are_given_up_at_once(store: Store, slack: SlackDouble) -> None:
    waits: list[float] = []
    records = deliver(
        store,
        [
            SlackChannel("xoxb-wrong", "#releases", slack.api_url),
            SlackChannel(slack.token, "#nowhere", slack.api_url),
            SlackWebhook(slack.base + "/services/T0/B0/not-the-secret"),
        ],
        Message("hello"),
        attempts=5,
        sleep=waits.append,
    )
    assert [(r.channel, r.attempts, r.error) for r in records] == [
        ("slack:#releases", 1, "Slack: invalid_auth"),
        ("slack:#nowhere", 1, "Slack: channel_not_found"),
        ("slack-webhook", 1, "HTTP 403: invalid_token"),
    ]
    assert waits == []
    assert slack.messages == []
    failed = [e for e in store.list_events() if e.kind == "notification.failed"]
    assert len(failed) == 3
    assert not any("not-the-secret" in e.message for e in failed)


@contextmanager
def json_endpoint(statuses: list[int]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local endpoint answering ``statuses`` in turn (the last one from then on); its URL
    and the JSON bodies it received."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(statuses[min(len(received), len(statuses)) - 1])
            self.end_headers()

    server, thread = serve(Handler, "json-endpoint")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        shut_down(server, thread)


def test_the_generic_webhook_posts_json(store: Store) -> None:
    with json_endpoint([503, 204]) as (url, received):
        (record,) = deliver(
            store,
            [JsonWebhook(url)],
            Message("P1 incident", incident_id="inc-1", kind="page"),
            sleep=lambda _: None,
        )
    assert (record.status, record.attempts, record.channel) == ("sent", 2, "webhook")
    assert received[-1] == {
        "text": "P1 incident",
        "kind": "page",
        "release_id": None,
        "incident_id": "inc-1",
        "mentions": {},
    }


def test_the_generic_webhook_writes_mentions_as_names(store: Store) -> None:
    store.put_team(
        [Person(name="fola", slack_id="U0FOLA001", roles={"*": ("feature_owner",)})],
        actor="test",
        message="team",
        data={},
    )
    with json_endpoint([200]) as (url, received):
        deliver(store, [JsonWebhook(url)], Message("<@U0FOLA001>, <@U0NOBODY1>: sign off"))
    assert received[0]["text"] == "@fola, @U0NOBODY1: sign off"
    assert received[0]["mentions"] == {"fola": "U0FOLA001"}
