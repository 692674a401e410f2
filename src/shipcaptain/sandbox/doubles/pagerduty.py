"""A loopback stand-in for PagerDuty's Events API v2 (``POST /v2/enqueue``).

Answers the way the Events API does: ``202 {"status": "success", "message": "Event
processed", "dedup_key": ...}``; ``400 {"status": "invalid event", "message": "Event
object is invalid", "errors": [...]}`` for a body that is not JSON, a routing key that is
missing, not 32 characters or not the integration's, an ``event_action`` other than
trigger, acknowledge or resolve, a trigger without ``payload.summary``, ``payload.source``
or a valid ``payload.severity`` (critical, error, warning, info), an acknowledge or resolve
without ``dedup_key``; ``429`` when told to rate-limit.

Alerts are deduplicated by ``dedup_key`` like PagerDuty's: a trigger for an open alert
adds an event to it and pages nobody again; acknowledge and resolve change its status (of
an unknown key they do nothing, and are still accepted); a trigger after a resolve opens
a new alert. Tests and the demo read ``alerts`` and ``pages``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from shipcaptain.sandbox.doubles.json_api import Answer, JsonApiDouble, Request, json_body

SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


@dataclass
class PagerDutyAlert:
    dedup_key: str
    summary: str
    severity: str
    source: str
    status: str = "triggered"  # triggered, acknowledged, resolved
    events: list[str] = field(default_factory=list)  # every event_action received


class PagerDutyDouble(JsonApiDouble):
    def __init__(self, routing_key: str = "") -> None:
        super().__init__()
        self.routing_key = routing_key or uuid.uuid4().hex  # 32 characters, like PagerDuty's
        self.alerts: dict[str, PagerDutyAlert] = {}
        self.pages: list[str] = []  # dedup keys of each alert opened (each one pages)

    def rate_limited(self, retry_after: int) -> Answer:
        return Answer(
            429,
            {
                "status": "throttle event",
                "message": "Requests for this service "
                "are arriving too quickly. Please retry later.",
            },
        )

    def handle(self, request: Request) -> Answer:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return Answer(404, {"status": "not found", "message": "Not found"})
        try:
            event = json_body(request)
        except ValueError:
            return _invalid("Invalid JSON")
        if not isinstance(event, dict):
            return _invalid("Event object must be a JSON object")
        errors = self._errors(event)
        if errors:
            return _invalid(*errors)
        action = event["event_action"]
        key = str(event.get("dedup_key") or uuid.uuid4().hex)
        alert = self.alerts.get(key)
        if action == "trigger":
            payload = event["payload"]
            if alert is None or alert.status == "resolved":
                alert = PagerDutyAlert(
                    key, str(payload["summary"]), str(payload["severity"]), str(payload["source"])
                )
                self.alerts[key] = alert
                self.pages.append(key)
            alert.events.append(action)
        elif alert is not None and alert.status != "resolved":
            alert.events.append(action)
            alert.status = "acknowledged" if action == "acknowledge" else "resolved"
        return Answer(202, {"status": "success", "message": "Event processed", "dedup_key": key})

    def _errors(self, event: dict[str, Any]) -> list[str]:
        key = event.get("routing_key")
        if not key:
            return ["'routing_key' is missing or blank"]
        if not isinstance(key, str) or len(key) != 32:
            return ["Length of 'routing_key' is incorrect (should be 32 characters)"]
        if key != self.routing_key:
            return ["Invalid routing key"]
        action = event.get("event_action")
        if action not in ACTIONS:
            return ["'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"]
        errors: list[str] = []
        dedup = event.get("dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action != "trigger":
            if not dedup:
                errors.append("'dedup_key' is missing or blank")
            return errors
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*errors, "'payload' is missing or not an object"]
        for name in ("summary", "source"):
            if not str(payload.get(name) or "").strip():
                errors.append(f"'payload.{name}' is missing or blank")
        if len(str(payload.get("summary") or "")) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if payload.get("severity") not in SEVERITIES:
            errors.append(
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
            )
        return errors


def _invalid(*errors: str) -> Answer:
    return Answer(
        400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    )
