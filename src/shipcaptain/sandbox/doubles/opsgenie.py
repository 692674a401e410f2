"""A loopback stand-in for Opsgenie's Alert API v2.

Serves ``POST /v2/alerts`` (create), ``POST /v2/alerts/{identifier}/acknowledge`` and
``POST /v2/alerts/{identifier}/close`` with ``Authorization: GenieKey <key>``, answering
the way Opsgenie does: ``202 {"result": "Request will be processed", "took", "requestId"}``;
``401 {"message": "Could not authenticate"}`` for a missing or unknown key; ``400`` for a
body that is not JSON; ``422 {"message": "Request body is not processable. Please check
the errors.", "errors": {field: why}}`` for an alert without a message, a message over
130 characters, an alias over 512 or a priority other than P1..P5; ``429`` when told to.

Like Opsgenie, a create for an open alert of the same ``alias`` is deduplicated (its
``count`` goes up, nobody is notified again), and acknowledge and close find the alert by
its id unless ``identifierType=alias`` says the identifier is an alias (an unknown one is
accepted, 202, and changes nothing: Opsgenie processes these asynchronously).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from shipcaptain.sandbox.doubles.json_api import Answer, JsonApiDouble, Request, json_body

PRIORITIES = ("P1", "P2", "P3", "P4", "P5")


@dataclass
class OpsgenieAlert:
    id: str
    alias: str
    message: str
    priority: str
    status: str = "open"  # open, closed
    acknowledged: bool = False
    count: int = 1
    notes: list[str] = field(default_factory=list)


class OpsgenieDouble(JsonApiDouble):
    def __init__(self, api_key: str = "") -> None:
        super().__init__()
        self.api_key = api_key or str(uuid.uuid4())
        self.alerts: list[OpsgenieAlert] = []

    def rate_limited(self, retry_after: int) -> Answer:
        return Answer(
            429,
            _meta(
                {
                    "message": "You are making too many requests! To avoid errors, we "
                    "recommend you limit requests."
                }
            ),
            (("Retry-After", str(retry_after)),),
        )

    def handle(self, request: Request) -> Answer:
        auth = request.headers.get("authorization", "")
        if auth.removeprefix("GenieKey ").strip() != self.api_key or not auth.startswith(
            "GenieKey "
        ):
            return Answer(401, _meta({"message": "Could not authenticate"}))
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or parts[:2] != ["v2", "alerts"] or len(parts) not in (2, 4):
            return Answer(404, _meta({"message": "Not found"}))
        try:
            body = json_body(request) if request.body else {}
        except ValueError:
            return Answer(400, _meta({"message": "Invalid JSON body"}))
        if not isinstance(body, dict):
            return Answer(400, _meta({"message": "Invalid JSON body"}))
        if len(parts) == 2:
            return self._create(body)
        return self._act(parts[2], parts[3], request.query.get("identifierType", "id"), body)

    def _create(self, body: dict[str, Any]) -> Answer:
        errors: dict[str, str] = {}
        message = str(body.get("message") or "")
        if not message.strip():
            errors["message"] = "Message can not be empty."
        elif len(message) > 130:
            errors["message"] = "Message can not be longer than 130 characters."
        alias = str(body.get("alias") or "")
        if len(alias) > 512:
            errors["alias"] = "Alias can not be longer than 512 characters."
        priority = body.get("priority", "P3")
        if priority not in PRIORITIES:
            errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]."
        if errors:
            return Answer(
                422,
                _meta(
                    {
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": errors,
                    }
                ),
            )
        alias = alias or str(uuid.uuid4())
        open_alert = next((a for a in self.alerts if a.alias == alias and a.status == "open"), None)
        if open_alert is not None:
            open_alert.count += 1
        else:
            self.alerts.append(OpsgenieAlert(str(uuid.uuid4()), alias, message, str(priority)))
        return _accepted()

    def _act(self, identifier: str, verb: str, kind: str, body: dict[str, Any]) -> Answer:
        if verb not in ("acknowledge", "close"):
            return Answer(404, _meta({"message": "Not found"}))
        if kind not in ("id", "alias", "tiny"):
            return Answer(
                422,
                _meta(
                    {
                        "message": "Request body is not processable. Please check the errors.",
                        "errors": {"identifierType": "should be one of [id, alias, tiny]"},
                    }
                ),
            )
        key = "alias" if kind == "alias" else "id"
        found = [a for a in self.alerts if getattr(a, key) == identifier and a.status == "open"]
        for alert in found[-1:]:
            if verb == "acknowledge":
                alert.acknowledged = True
            else:
                alert.status = "closed"
            if body.get("note"):
                alert.notes.append(str(body["note"]))
        return _accepted()

    def open_alerts(self) -> list[OpsgenieAlert]:
        return [a for a in self.alerts if a.status == "open"]


def _meta(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "took": 0.002, "requestId": str(uuid.uuid4())}


def _accepted() -> Answer:
    return Answer(202, _meta({"result": "Request will be processed"}))
