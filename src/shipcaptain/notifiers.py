"""Notifiers: where release comms and pages go (Slack, a generic JSON webhook).

Each notifier sends one text; a failure is a :class:`NotifyFailed` that says whether a
retry can help and how long Slack asked to wait. :func:`deliver` tries every notifier with
bounded retries and backoff, records each outcome in the store (and the audit log), and
never raises: a notification that cannot be sent is shown, not fatal to the release.

A notifier's ``label`` is what is shown and stored. Webhook URLs are secrets: they are
never in a label, an event, a log line or an error message.
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipcaptain import events, tls
from shipcaptain.errors import ShipError
from shipcaptain.records import NotificationRecord
from shipcaptain.store import Store

if TYPE_CHECKING:  # the HTTP client loads when a message is first sent
    import httpx

    from shipcaptain.settings import Settings  # or the light reader's values (settings_env)

MAX_RETRY_AFTER = 30.0

#: The channel a notification is recorded under when no notifier is configured.
NO_CHANNEL = "(no channel)"
NO_CHANNEL_HINT = (
    "no channel configured: set SHIPCAPTAIN_SLACK_TOKEN, SHIPCAPTAIN_SLACK_WEBHOOK_URL "
    "or SHIPCAPTAIN_WEBHOOK_URL"
)


class NotifyFailed(ShipError):
    """One try of a notification failed."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Message:
    text: str
    release_id: str | None = None
    incident_id: str | None = None
    kind: str = "comms"  # "comms.start", "page", "incident.reminder" ...
    severity: str | None = None  # of a page: P1, P2 ...
    blocks: list[Any] | None = None  # Slack Block Kit (a gate's buttons); the text stays


class Notifier(ABC):
    label: str

    @abstractmethod
    def send(self, message: Message, store: Store) -> None:
        """Send once; raise NotifyFailed."""


@functools.cache
def http_client() -> httpx.Client:
    """One HTTP client per process for webhooks and pagers: its connections are kept
    between messages (the TLS context is the process's one, ``shipcaptain.tls``)."""
    import httpx

    return httpx.Client(timeout=10, verify=tls.verify())


def _status_failure(status: int, body: str, retry_after: str | None) -> NotifyFailed:
    wait = float(retry_after) if retry_after and retry_after.isdigit() else None
    retryable = status == 429 or status >= 500
    return NotifyFailed(f"HTTP {status}: {body[:200]}", retryable=retryable, retry_after=wait)


class SlackWebhook(Notifier):
    """A Slack incoming webhook (bound to one channel by Slack)."""

    label = "slack-webhook"

    def __init__(self, url: str) -> None:
        self._url = url

    def send(self, message: Message, store: Store) -> None:
        from slack_sdk.webhook import WebhookClient

        try:
            response = WebhookClient(self._url, timeout=10).send(text=message.text)
        except OSError as exc:
            raise NotifyFailed(f"cannot reach Slack: {type(exc).__name__}", retryable=True) from exc
        if response.status_code != 200:
            raise _status_failure(response.status_code, response.body, _header(response.headers))


def _header(headers: Any, name: str = "Retry-After") -> str | None:
    for key, value in dict(headers or {}).items():
        if key.lower() == name.lower():
            return str(value[0] if isinstance(value, list) else value)
    return None


class SlackChannel(Notifier):
    """chat.postMessage to a channel; each release's messages in one thread (the first
    message of the release starts it, its ts is kept in the store)."""

    def __init__(self, token: str, channel: str, base_url: str = "") -> None:
        self._token = token
        self.channel = channel
        self.label = f"slack:{channel}"
        self._base_url = base_url

    def send(self, message: Message, store: Store) -> None:
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackApiError

        kwargs: dict[str, Any] = {"token": self._token, "timeout": 10}
        if self._base_url:
            kwargs["base_url"] = self._base_url
        client = WebClient(**kwargs)
        thread = None
        if message.release_id is not None:
            thread = store.release_thread(message.release_id, self.channel)
        try:
            response = client.chat_postMessage(
                channel=self.channel, text=message.text, thread_ts=thread, blocks=message.blocks
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "error"))
            failure = _status_failure(status, error, _header(exc.response.headers))
            if status == 200:  # an API error (invalid_auth, channel_not_found): no retry helps
                failure = NotifyFailed(f"Slack: {error}", retryable=False)
            raise failure from exc
        except OSError as exc:
            raise NotifyFailed(f"cannot reach Slack: {type(exc).__name__}", retryable=True) from exc
        if message.release_id is not None and thread is None:
            store.remember_release_thread(message.release_id, self.channel, str(response["ts"]))


class JsonWebhook(Notifier):
    """A generic webhook: POST {"text", "kind", "release_id", "incident_id", "mentions"}
    as JSON (people mentioned are written ``@name`` in the text, ``mentions`` maps each
    name to their Slack id)."""

    label = "webhook"

    def __init__(self, url: str) -> None:
        self._url = url

    def send(self, message: Message, store: Store) -> None:
        from shipcaptain.mentions import ids_to_names, plain

        names = ids_to_names(store, message.text)
        payload = {
            "text": plain(message.text, names),  # Slack's <@U...> written as @name
            "kind": message.kind,
            "release_id": message.release_id,
            "incident_id": message.incident_id,
            "mentions": {name: slack_id for slack_id, name in names.items()},
        }
        import httpx

        try:
            response = http_client().post(self._url, json=payload)
        except httpx.HTTPError as exc:
            raise NotifyFailed(
                f"cannot reach the webhook: {type(exc).__name__}", retryable=True
            ) from exc
        if response.status_code >= 300:
            raise _status_failure(
                response.status_code, response.text, response.headers.get("Retry-After")
            )


def channels_configured(settings: Settings) -> bool:
    """Whether any notifier is configured (else every message would go nowhere)."""
    return any(
        secret.get_secret_value()
        for secret in (settings.slack_token, settings.slack_webhook_url, settings.webhook_url)
    )


def notifiers_from(settings: Settings, channel: str | None) -> list[Notifier]:
    """The notifiers configured in ``settings``; ``channel``: the runbook's comms channel."""
    found: list[Notifier] = []
    token = settings.slack_token.get_secret_value()
    if token:
        found.append(SlackChannel(token, channel or "#releases", settings.slack_api_url))
    if url := settings.slack_webhook_url.get_secret_value():
        found.append(SlackWebhook(url))
    if url := settings.webhook_url.get_secret_value():
        found.append(JsonWebhook(url))
    return found


def deliver(
    store: Store,
    notifiers: list[Notifier],
    message: Message,
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    actor: str = "engine",
) -> list[NotificationRecord]:
    """Send ``message`` through each notifier, retried; record each outcome. Never raises
    (a failure is recorded, with an event, and the next notifier still gets it). With no
    notifier at all, the message is recorded as not delivered (channel ``(no channel)``):
    nothing is dropped silently."""
    records: list[NotificationRecord] = []
    if not notifiers:
        record = store.record_notification(
            release_id=message.release_id,
            incident_id=message.incident_id,
            kind=message.kind,
            channel=NO_CHANNEL,
            text=message.text,
            status="failed",
            attempts=0,
            error=NO_CHANNEL_HINT,
        )
        store.append_event(
            message.release_id,
            None,
            events.NotificationFailed.kind,
            actor,
            f"{message.kind} not delivered: {NO_CHANNEL_HINT}",
            data={"channel": NO_CHANNEL, "kind": message.kind, "attempts": 0},
        )
        return [record]
    for notifier in notifiers:
        error: str | None = None
        tries = 0
        for tries in range(1, attempts + 1):
            try:
                notifier.send(message, store)
                error = None
                break
            except NotifyFailed as exc:
                error = str(exc)
                if not exc.retryable or tries == attempts:
                    break
                wait = backoff * 2 ** (tries - 1)
                if exc.retry_after is not None:
                    wait = max(wait, min(exc.retry_after, MAX_RETRY_AFTER))
                sleep(wait)
            except Exception as exc:  # a notifier's bug must not fail the release
                error = f"{type(exc).__name__}: {exc}"
                break
        status = "sent" if error is None else "failed"
        record = store.record_notification(
            release_id=message.release_id,
            incident_id=message.incident_id,
            kind=message.kind,
            channel=notifier.label,
            text=message.text,
            status=status,
            attempts=tries,
            error=error,
        )
        records.append(record)
        if error is None:
            continue
        store.append_event(
            message.release_id,
            None,
            events.NotificationFailed.kind,
            actor,
            f"{message.kind} to {notifier.label} not sent after {tries} tries: {error}",
            data={"channel": notifier.label, "kind": message.kind, "attempts": tries},
        )
    return records
