"""Paging the on-call: PagerDuty (Events API v2) and Opsgenie (Alert API v2).

A P1 or P2 incident triggers an alert in each configured pager; ``incident ack``,
``mitigate`` and ``resolve`` keep it in step (acknowledge, acknowledge with a note,
resolve / close). Every event of one incident carries the incident's id as PagerDuty's
``dedup_key`` and Opsgenie's ``alias``: a repeated trigger (a retry, a replayed step)
updates the one alert instead of paging twice.

Pagers are notifiers (:mod:`shipcaptain.notifiers`): the same retries with backoff, the
same record of each outcome, never an error of the release. Their keys are secrets and
never shown. A refusal no retry can fix (PagerDuty's 400 for an invalid routing key or
event, Opsgenie's 401 for a bad key or 422 for an invalid alert) is given up at once and
shown; a rate limit (429) or a server error is retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipcaptain.notifiers import (
    Message,
    Notifier,
    NotifyFailed,
    _status_failure,
    deliver,
    http_client,
)
from shipcaptain.records import IncidentRecord, NotificationRecord
from shipcaptain.store import Store

if TYPE_CHECKING:  # the HTTP client loads when a page is first sent
    import httpx

    from shipcaptain.settings import Settings  # or the light reader's values (settings_env)

#: Severities that page someone (the others go to the channels only).
PAGED = ("P1", "P2")
#: What each incident action is in the pagers' terms (the message kinds they get).
ACTIONS = {
    "trigger": "page",
    "acknowledge": "incident.acknowledge",
    "mitigate": "incident.mitigate",
    "resolve": "incident.resolve",
}
PAGERDUTY_SEVERITY = {"P1": "critical", "P2": "error"}


def _post(url: str, what: str, **kwargs: Any) -> httpx.Response:
    import httpx

    try:
        response = http_client().post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise NotifyFailed(f"cannot reach {what}: {type(exc).__name__}", retryable=True) from exc
    if response.status_code >= 300:
        raise _status_failure(
            response.status_code, response.text, response.headers.get("Retry-After")
        )
    return response


class PagerDuty(Notifier):
    """PagerDuty's Events API v2: ``POST /v2/enqueue`` with the integration's routing key."""

    label = "pagerduty"

    def __init__(self, routing_key: str, url: str = "") -> None:
        self._key = routing_key
        self._url = (url or "https://events.pagerduty.com").rstrip("/") + "/v2/enqueue"

    def event(self, message: Message) -> dict[str, Any]:
        """The Events API v2 body for ``message``."""
        action = {
            "page": "trigger",
            "incident.acknowledge": "acknowledge",
            "incident.mitigate": "acknowledge",
            "incident.resolve": "resolve",
        }[message.kind]
        body: dict[str, Any] = {
            "routing_key": self._key,
            "event_action": action,
            "dedup_key": message.incident_id,
        }
        if action == "trigger":
            body["payload"] = {
                "summary": message.text[:1024],
                "source": "shipcaptain",
                "severity": PAGERDUTY_SEVERITY.get(message.severity or "", "error"),
                "custom_details": {
                    "incident": message.incident_id,
                    "release": message.release_id,
                    "severity": message.severity,
                },
            }
        return body

    def send(self, message: Message, store: Store) -> None:
        _post(self._url, "PagerDuty", json=self.event(message))


class Opsgenie(Notifier):
    """Opsgenie's Alert API v2 with an API integration's key (``GenieKey``)."""

    label = "opsgenie"

    def __init__(self, api_key: str, url: str = "") -> None:
        self._key = api_key
        self._base = (url or "https://api.opsgenie.com").rstrip("/") + "/v2/alerts"

    def request(self, message: Message) -> tuple[str, dict[str, Any]]:
        """The path (under /v2/alerts) and the JSON body for ``message``."""
        alias = str(message.incident_id)
        if message.kind == "page":
            return "", {
                "message": message.text[:130],
                "alias": alias,
                "description": message.text[:15000],
                "priority": message.severity if message.severity in PAGED else "P3",
                "source": "shipcaptain",
                "tags": ["shipcaptain", *([message.release_id] if message.release_id else [])],
                "details": {"release": message.release_id or ""},
            }
        verb = {
            "incident.acknowledge": "acknowledge",
            "incident.mitigate": "acknowledge",
            "incident.resolve": "close",
        }[message.kind]
        return f"/{alias}/{verb}", {"source": "shipcaptain", "note": message.text[:25000]}

    def send(self, message: Message, store: Store) -> None:
        path, body = self.request(message)
        _post(
            self._base + path,
            "Opsgenie",
            json=body,
            params={"identifierType": "alias"} if path else None,
            headers={"Authorization": f"GenieKey {self._key}"},
        )


def pagers_from(settings: Settings) -> list[Notifier]:
    found: list[Notifier] = []
    if key := settings.pagerduty_routing_key.get_secret_value():
        found.append(PagerDuty(key, settings.pagerduty_url))
    if key := settings.opsgenie_api_key.get_secret_value():
        found.append(Opsgenie(key, settings.opsgenie_url))
    return found


def page_incident(
    settings: Settings, store: Store, incident: IncidentRecord, action: str, text: str
) -> list[NotificationRecord]:
    """Send ``action`` (trigger, acknowledge, mitigate, resolve) of a P1/P2 ``incident``
    to each configured pager; recorded like any notification. Nothing for other
    severities or without a pager."""
    pagers = pagers_from(settings)
    if incident.severity not in PAGED or not pagers:
        return []
    return deliver(
        store,
        pagers,
        Message(
            text,
            release_id=incident.release_id,
            incident_id=incident.id,
            kind=ACTIONS[action],
            severity=incident.severity,
        ),
        attempts=settings.notify_attempts,
        backoff=settings.notify_backoff,
    )
