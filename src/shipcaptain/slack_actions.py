"""Approve and reject from Slack: an interactive message on each gate, its buttons' answers.

When a gate opens, the release's thread gets a message with **Approve** and **Reject**
buttons (``SHIPCAPTAIN_SLACK_SIGNING_SECRET`` set: Slack's answers can be checked). A
press reaches ``POST /slack/interactions`` of ``shipcaptain server`` (the Slack app's
"Interactivity" request URL). It counts only when:

* its signature is Slack's: ``X-Slack-Signature`` is ``v0=`` and the HMAC-SHA256, keyed
  with the app's signing secret, of ``v0:<X-Slack-Request-Timestamp>:<raw body>``, and the
  timestamp is within 5 minutes of now (no replay of an old press);
* the Slack user is a person of the team file (``slack: U...``);
* that person may decide the gate: the same :meth:`Client.decide` as ``release approve``,
  so the same permissions, separation of duties and evidence kept with the decision.

Whoever pressed gets an answer only they see (``response_type: ephemeral``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from shipcaptain.errors import NotFound, PermissionDenied, ShipError, UsageError

if TYPE_CHECKING:
    from shipcaptain.client import Client

#: How old a signed request may be (Slack's own advice: 5 minutes).
REPLAY_WINDOW = 300
APPROVE = "shipcaptain.approve"
REJECT = "shipcaptain.reject"


class BadSignature(PermissionDenied):
    """A request that is not Slack's (or is too old): refused, nothing done."""


def gate_blocks(release_id: str, run: int, step_id: str, kind: str, text: str) -> list[Any]:
    """The interactive message of a waiting gate: what is asked, and two buttons."""
    value = json.dumps({"release": release_id, "run": run, "step": step_id})
    yes = "Confirm" if kind == "checklist" else "Approve"
    return [
        {"type": "section", "block_id": "gate", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "block_id": "decide",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "text": {"type": "plain_text", "text": yes},
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": REJECT,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "style": "danger",
                    "value": value,
                },
            ],
        },
    ]


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float) -> None:
    """Raise :class:`BadSignature` unless Slack signed ``body`` at ``timestamp``."""
    if not secret:
        raise BadSignature(
            "Slack interactions are off: SHIPCAPTAIN_SLACK_SIGNING_SECRET is not set"
        )
    try:
        at = int(timestamp)
    except ValueError:
        raise BadSignature("no valid X-Slack-Request-Timestamp") from None
    if abs(now - at) > REPLAY_WINDOW:
        raise BadSignature("the request is more than 5 minutes old (or from the future)")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise BadSignature("the X-Slack-Signature does not match: not signed by Slack")


def handle(client: Client, secret: str, headers: dict[str, str], body: bytes) -> str:
    """Check and apply one button press; the text shown to whoever pressed it.

    Raises :class:`BadSignature` for a request not from Slack; a press that is Slack's
    but not allowed is answered (why not), never applied."""
    verify(
        secret,
        headers.get("x-slack-request-timestamp", ""),
        body,
        headers.get("x-slack-signature", ""),
        time.time(),
    )
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][-1])
        action = payload["actions"][0]
        target = json.loads(action["value"])
        slack_user = str(payload["user"]["id"])
    except (KeyError, IndexError, ValueError, TypeError):
        raise UsageError("not a Slack block_actions payload of a shipcaptain gate") from None
    decision = {APPROVE: "approve", REJECT: "reject"}.get(action.get("action_id"))
    if decision is None:
        raise UsageError(f"unknown action {action.get('action_id')!r}")
    person = client.person_on_slack(slack_user)
    if person is None:
        return (
            f"Not recorded: Slack user {slack_user} is nobody in shipcaptain's team file "
            "(add `slack: <member id>` to your entry)."
        )
    release_id, step_id = str(target["release"]), str(target["step"])
    try:
        state = client.decide(
            release_id,
            step_id,
            user=person.name,
            decision=decision,
            comment="from Slack",
            wait=2.0,
        )
    except (PermissionDenied, NotFound, ShipError) as exc:
        return f"Not recorded for {person.name}: {exc}"
    verb = {"approve": "approval", "reject": "rejection"}[decision]
    return f"Your {verb} of {step_id} ({release_id}) is {state}, {person.name}."
