"""A loopback stand-in for Slack: incoming webhooks and the Web API methods shipcaptain uses.

Serves, the way Slack does:

* an interactive message's button pressed (:meth:`SlackDouble.click`): Slack's
  ``block_actions`` payload POSTed, signed with the app's signing secret, to the app;
* ``POST /services/<T>/<B>/<secret>``: an incoming webhook. JSON body with ``text``;
  answers ``200 ok`` (text/plain), ``400 invalid_payload`` for a body without text,
  ``403 invalid_token`` for an unknown secret, ``404 no_service`` for another path;
* ``POST /api/<method>`` (form or JSON body, ``Authorization: Bearer <token>``), the
  methods of the Web API ``slack_sdk.WebClient`` calls here: ``auth.test``,
  ``chat.postMessage`` (a ``thread_ts`` makes a reply), ``conversations.list``,
  ``conversations.history`` and ``conversations.replies``. Answers are HTTP 200 with
  ``{"ok": true, ...}`` or ``{"ok": false, "error": ...}`` (``not_authed``,
  ``invalid_auth``, ``channel_not_found``, ``no_text``, ``thread_not_found``,
  ``unknown_method``), and 429 ``ratelimited`` with ``Retry-After`` when told to.

Real clients reach it through ``base_url`` (``WebClient(base_url=double.api_url)``) and
the webhook URL (``double.webhook_url``). Tests and the demo read what it received
(``messages``, ``webhook_posts``) and make it fail (``fail_next``) from Python.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx

from shipcaptain.sandbox.doubles.json_api import serve, shut_down
from shipcaptain.sandbox.service import Service


@dataclass
class SlackMessage:
    """A message a channel received (through the Web API or a webhook)."""

    channel: str  # channel id
    text: str
    ts: str
    thread_ts: str | None = None
    user: str = "U0SHIPCAPT"
    via: str = "api"  # "api" or "webhook"
    blocks: list[dict[str, Any]] | None = None  # Block Kit: buttons of an interactive message


@dataclass
class Failure:
    """How the double answers one coming request instead of doing it."""

    kind: str  # "500" or "rate_limited"
    retry_after: int = 1


@dataclass
class SlackDouble(Service):
    token: str = "xoxb-sandbox-token"
    team: str = "sandbox"
    channels: dict[str, str] = field(default_factory=lambda: {"releases": "C0RELEASES"})
    #: the channel an incoming webhook posts to (a webhook is bound to one channel)
    webhook_channel: str = "releases"
    messages: list[SlackMessage] = field(default_factory=list)
    webhook_posts: list[dict[str, Any]] = field(default_factory=list)
    #: what the next requests get instead of an answer, first to last
    fail_next: list[Failure] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.webhook_secret = secrets.token_hex(12)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clock = time.time()

    # ---- Python side ----

    @property
    def base(self) -> str:
        assert self._server is not None, "the Slack double is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """What ``slack_sdk.WebClient(base_url=...)`` takes (it ends with a slash)."""
        return self.base + "/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.base}/services/T0SANDBOX/B0WEBHOOK/{self.webhook_secret}"

    def fail(self, kind: str, times: int = 1, retry_after: int = 1) -> None:
        with self.lock:
            self.fail_next.extend(Failure(kind, retry_after) for _ in range(times))

    def channel_messages(self, name: str) -> list[SlackMessage]:
        cid = self.channels.get(name.lstrip("#"), name)
        with self.lock:
            return [m for m in self.messages if m.channel == cid]

    def click(
        self,
        url: str,
        signing_secret: str,
        message: SlackMessage,
        action_id: str,
        user_id: str,
        *,
        timestamp: int | None = None,
    ) -> httpx.Response:
        """A person pressing the button ``action_id`` of ``message``: Slack's block_actions
        payload, form-encoded as ``payload=<json>``, signed with the app's signing secret
        (``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<body>``), POSTed to the app's
        interactivity ``url``. Returns the app's answer."""
        button = next(
            element
            for block in message.blocks or []
            for element in block.get("elements", [])
            if element.get("action_id") == action_id
        )
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0SANDBOX"},
            "api_app_id": "A0SHIPCAPT",
            "token": "verification-token-deprecated",
            "team": {"id": "T0SANDBOX", "domain": self.team},
            "channel": {"id": message.channel, "name": _name_of(self, message.channel)},
            "container": {"type": "message", "message_ts": message.ts, "is_ephemeral": False},
            "message": _shape(message),
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
            "response_url": f"{self.base}/actions/{secrets.token_hex(8)}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": button.get("block_id", ""),
                    "text": button.get("text", {}),
                    "value": button.get("value", ""),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)})
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(
            signing_secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256
        ).hexdigest()
        return httpx.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": f"v0={digest}",
            },
            timeout=30,
        )

    def _next_ts(self) -> str:
        self._clock = max(self._clock + 0.000001, time.time())
        return f"{self._clock:.6f}"

    def _channel_id(self, given: str) -> str | None:
        name = given.lstrip("#")
        if name in self.channels:
            return self.channels[name]
        return given if given in self.channels.values() else None

    # ---- the server ----

    def start(self) -> str:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with double.lock:
                    double.requests += 1
                    failure = double.fail_next.pop(0) if double.fail_next else None
                if failure is not None:
                    if failure.kind == "rate_limited":
                        self._send(
                            429,
                            {"ok": False, "error": "ratelimited"},
                            headers={"Retry-After": str(failure.retry_after)},
                        )
                    else:
                        self._send(500, "internal_error", text=True)
                    return
                if self.path.startswith("/services/"):
                    self._webhook(raw)
                elif self.path.startswith("/api/"):
                    self._api(self.path[len("/api/") :].split("?")[0], raw)
                else:
                    self._send(404, "no_service", text=True)

            def _body(self, raw: bytes) -> dict[str, Any]:
                kind = self.headers.get("Content-Type", "")
                if "json" in kind:
                    value = json.loads(raw or b"{}")
                    return value if isinstance(value, dict) else {}
                return {k: v[-1] for k, v in parse_qs(raw.decode()).items()}

            def _webhook(self, raw: bytes) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 4:
                    self._send(404, "no_service", text=True)
                    return
                if parts[3] != double.webhook_secret:
                    self._send(403, "invalid_token", text=True)
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(400, "invalid_payload", text=True)
                    return
                if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
                    self._send(400, "invalid_payload", text=True)
                    return
                with double.lock:
                    double.webhook_posts.append(body)
                    double.messages.append(
                        SlackMessage(
                            channel=double.channels.get(double.webhook_channel, "C0WEBHOOK"),
                            text=str(body.get("text", "")),
                            ts=double._next_ts(),
                            via="webhook",
                        )
                    )
                self._send(200, "ok", text=True)

            def _api(self, method: str, raw: bytes) -> None:
                auth = self.headers.get("Authorization", "")
                body = self._body(raw)
                token = auth.removeprefix("Bearer ").strip() or str(body.get("token", ""))
                if not token:
                    self._send(200, {"ok": False, "error": "not_authed"})
                    return
                if token != double.token:
                    self._send(200, {"ok": False, "error": "invalid_auth"})
                    return
                handler = {
                    "auth.test": self._auth_test,
                    "chat.postMessage": self._post_message,
                    "conversations.list": self._list,
                    "conversations.history": self._history,
                    "conversations.replies": self._replies,
                }.get(method)
                if handler is None:
                    self._send(404, {"ok": False, "error": "unknown_method"})
                    return
                self._send(200, handler(body))

            def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
                return {
                    "ok": True,
                    "url": f"https://{double.team}.slack.com/",
                    "team": double.team,
                    "user": "shipcaptain",
                    "team_id": "T0SANDBOX",
                    "user_id": "U0SHIPCAPT",
                    "bot_id": "B0SHIPCAPT",
                    "is_enterprise_install": False,
                }

            def _post_message(self, body: dict[str, Any]) -> dict[str, Any]:
                cid = double._channel_id(str(body.get("channel", "")))
                if cid is None:
                    return {"ok": False, "error": "channel_not_found"}
                text = str(body.get("text") or "")
                if not text and not body.get("blocks"):
                    return {"ok": False, "error": "no_text"}
                thread = body.get("thread_ts") or None
                with double.lock:
                    if thread and not any(
                        m.ts == thread and m.channel == cid for m in double.messages
                    ):
                        return {"ok": False, "error": "thread_not_found"}
                    blocks = body.get("blocks")
                    if isinstance(blocks, str):  # a form-encoded call sends them as JSON text
                        blocks = json.loads(blocks)
                    message = SlackMessage(
                        channel=cid,
                        text=text,
                        ts=double._next_ts(),
                        thread_ts=thread,
                        blocks=blocks if isinstance(blocks, list) else None,
                    )
                    double.messages.append(message)
                return {
                    "ok": True,
                    "channel": cid,
                    "ts": message.ts,
                    "message": _shape(message),
                }

            def _list(self, body: dict[str, Any]) -> dict[str, Any]:
                return {
                    "ok": True,
                    "channels": [
                        {"id": cid, "name": name, "is_channel": True, "is_member": True}
                        for name, cid in double.channels.items()
                    ],
                    "response_metadata": {"next_cursor": ""},
                }

            def _history(self, body: dict[str, Any]) -> dict[str, Any]:
                cid = double._channel_id(str(body.get("channel", "")))
                if cid is None:
                    return {"ok": False, "error": "channel_not_found"}
                with double.lock:
                    found = [
                        _shape(m) for m in double.messages if m.channel == cid and not m.thread_ts
                    ]
                return {"ok": True, "messages": found[::-1], "has_more": False}

            def _replies(self, body: dict[str, Any]) -> dict[str, Any]:
                cid = double._channel_id(str(body.get("channel", "")))
                if cid is None:
                    return {"ok": False, "error": "channel_not_found"}
                ts = str(body.get("ts", ""))
                with double.lock:
                    found = [
                        _shape(m)
                        for m in double.messages
                        if m.channel == cid and ts in (m.ts, m.thread_ts)
                    ]
                if not found:
                    return {"ok": False, "error": "thread_not_found"}
                return {"ok": True, "messages": found, "has_more": False}

            def _send(
                self,
                status: int,
                payload: Any,
                *,
                text: bool = False,
                headers: dict[str, str] | None = None,
            ) -> None:
                data = (str(payload) if text else json.dumps(payload)).encode()
                self.send_response(status)
                kind = "text/plain" if text else "application/json; charset=utf-8"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._server, self._thread = serve(Handler, "slack-double")
        return self.base

    def stop(self) -> None:
        shut_down(self._server, self._thread)
        self._server, self._thread = None, None


def _name_of(double: SlackDouble, channel_id: str) -> str:
    return next((n for n, c in double.channels.items() if c == channel_id), channel_id)


def _shape(message: SlackMessage) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "type": "message",
        "user": message.user,
        "text": message.text,
        "ts": message.ts,
    }
    if message.thread_ts:
        shaped["thread_ts"] = message.thread_ts
    if message.blocks:
        shaped["blocks"] = message.blocks
    return shaped
