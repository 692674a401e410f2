"""Paging through PagerDuty's Events API v2 and Opsgenie's Alert API, played by their
doubles: the real request formats, one alert per incident however often it is triggered,
acknowledge and resolve kept in step with the incident, and each service's refusals
(given up at once and shown) and rate limits (retried)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.releases import harness, write_runbook
from shipcaptain.notifiers import Message, deliver
from shipcaptain.paging import Opsgenie, PagerDuty
from shipcaptain.sandbox.doubles.opsgenie import OpsgenieDouble
from shipcaptain.sandbox.doubles.pagerduty import PagerDutyDouble
from shipcaptain.store import Store


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyDouble]:
    with PagerDutyDouble() as double:
        yield double


@pytest.fixture
def opsgenie() -> Iterator[OpsgenieDouble]:
    with OpsgenieDouble() as double:
        yield double


def page(kind: str, text: str = "P1 incident inc-1: error rate up") -> Message:
    return Message(text, incident_id="inc-1", release_id="rel-1", kind=kind, severity="P1")


def no_sleep(_: float) -> None:
    pass


def test_pagerduty_gets_one_alert_per_incident_in_step(
    store: Store, pagerduty: PagerDutyDouble
) -> None:
    pager = PagerDuty(pagerduty.routing_key, pagerduty.url)
    for kind in ("page", "page", "incident.acknowledge", "incident.resolve"):
        (record,) = deliver(store, [pager], page(kind), sleep=no_sleep)
        assert (record.status, record.channel) == ("sent", "pagerduty")
    assert pagerduty.pages == ["inc-1"]  # the second trigger did not page again
    alert = pagerduty.alerts["inc-1"]
    assert (alert.status, alert.severity, alert.source) == ("resolved", "critical", "shipcaptain")
    assert alert.events == ["trigger", "trigger", "acknowledge", "resolve"]
    # the request as PagerDuty documents it
    body = pager.event(page("page"))
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == "inc-1"
    assert body["payload"]["summary"] == "P1 incident inc-1: error rate up"


def test_pagerduty_refusals_are_shown_and_rate_limits_retried(
    store: Store, pagerduty: PagerDutyDouble
) -> None:
    waits: list[float] = []
    wrong = PagerDuty("0" * 32, pagerduty.url)
    short = PagerDuty("R0UT1NG", pagerduty.url)
    (bad_key,) = deliver(store, [wrong], page("page"), sleep=waits.append)
    (bad_length,) = deliver(store, [short], page("page"), sleep=waits.append)
    assert (bad_key.status, bad_key.attempts) == ("failed", 1)
    assert "HTTP 400" in (bad_key.error or "")
    assert "Invalid routing key" in (bad_key.error or "")
    assert "should be 32 characters" in (bad_length.error or "")
    assert "R0UT1NG" not in str(bad_length)  # the key is a secret: not in what is kept
    (blank,) = deliver(
        store, [PagerDuty(pagerduty.routing_key, pagerduty.url)], page("page", ""), sleep=no_sleep
    )
    assert "'payload.summary' is missing or blank" in (blank.error or "")
    assert waits == []
    assert pagerduty.alerts == {}
    pagerduty.fail("rate_limited", times=2)
    (record,) = deliver(
        store,
        [PagerDuty(pagerduty.routing_key, pagerduty.url)],
        page("page"),
        backoff=0.5,
        sleep=waits.append,
    )
    assert (record.status, record.attempts) == ("sent", 3)
    assert waits == [0.5, 1.0]
    assert pagerduty.pages == ["inc-1"]


def test_opsgenie_gets_one_alert_per_incident_in_step(
    store: Store, opsgenie: OpsgenieDouble
) -> None:
    pager = Opsgenie(opsgenie.api_key, opsgenie.url)
    deliver(store, [pager], page("page"), sleep=no_sleep)
    deliver(store, [pager], page("page"), sleep=no_sleep)
    (alert,) = opsgenie.alerts
    assert (alert.alias, alert.priority, alert.count, alert.acknowledged) == (
        "inc-1",
        "P1",
        2,
        False,
    )
    deliver(store, [pager], page("incident.mitigate", "mitigated: rolled back"), sleep=no_sleep)
    assert alert.acknowledged
    assert alert.notes == ["mitigated: rolled back"]
    (record,) = deliver(store, [pager], page("incident.resolve"), sleep=no_sleep)
    assert record.status == "sent"
    assert alert.status == "closed"
    # every request by alias, with the key in Opsgenie's header
    requests = opsgenie.requests
    assert [r.path for r in requests] == [
        "/v2/alerts",
        "/v2/alerts",
        "/v2/alerts/inc-1/acknowledge",
        "/v2/alerts/inc-1/close",
    ]
    assert all(r.query.get("identifierType") == "alias" for r in requests[2:])
    assert {r.headers["authorization"] for r in requests} == {f"GenieKey {opsgenie.api_key}"}


def test_opsgenie_refusals_are_shown_at_once(store: Store, opsgenie: OpsgenieDouble) -> None:
    waits: list[float] = []
    (unknown,) = deliver(
        store, [Opsgenie("not-the-key", opsgenie.url)], page("page"), sleep=waits.append
    )
    assert (unknown.status, unknown.attempts) == ("failed", 1)
    assert "HTTP 401" in (unknown.error or "")
    assert "Could not authenticate" in (unknown.error or "")
    (empty,) = deliver(
        store, [Opsgenie(opsgenie.api_key, opsgenie.url)], page("page", " "), sleep=waits.append
    )
    assert "HTTP 422" in (empty.error or "")
    assert "Message can not be empty" in (empty.error or "")
    assert waits == []
    assert opsgenie.alerts == []
    opsgenie.fail("rate_limited", retry_after=3)
    (record,) = deliver(
        store, [Opsgenie(opsgenie.api_key, opsgenie.url)], page("page"), sleep=waits.append
    )
    assert (record.status, record.attempts, waits) == ("sent", 2, [3.0])


RUNBOOK = """
name: paged
environment: "{{ environment }}"
parameters:
  version: {required: true}
  environment: {default: production}
  fail: {default: "1"}
roles:
  oncall_sre: {title: On-call SRE, members: [sam]}
phases:
  - id: post_deploy
    steps:
      - {id: metrics, action: shell, on_failure: halt, with: {command: "exit {{ fail }}"}}
slas:
  P1: {acknowledge: 5m, mitigate: 30m}
incidents: {owners: [oncall_sre]}
"""


def pagers(pagerduty: PagerDutyDouble, opsgenie: OpsgenieDouble) -> dict[str, object]:
    """The settings that page through both doubles."""
    return {
        "pagerduty_routing_key": pagerduty.routing_key,
        "pagerduty_url": pagerduty.url,
        "opsgenie_api_key": opsgenie.api_key,
        "opsgenie_url": opsgenie.url,
        "notify_backoff": 0.01,
    }


def test_a_failed_check_pages_and_the_incident_keeps_the_pagers_in_step(
    engine_database_url: str, tmp_path: Path, pagerduty: PagerDutyDouble, opsgenie: OpsgenieDouble
) -> None:
    with harness(engine_database_url, tmp_path, **pagers(pagerduty, opsgenie)) as h:
        release = h.start(write_runbook(tmp_path, RUNBOOK), version="1.0.0")
        assert h.wait(release.id).status == "failed"
        (incident,) = h.client.store.list_incidents()
        assert pagerduty.pages == [incident.id]
        assert pagerduty.alerts[incident.id].summary.startswith(f"P1 incident {incident.id}")
        (alert,) = opsgenie.alerts
        assert (alert.alias, alert.priority) == (incident.id, "P1")
        h.client.incident_action(incident.id, "acknowledge", user="sam")
        assert pagerduty.alerts[incident.id].status == "acknowledged"
        assert alert.acknowledged
        h.client.incident_action(incident.id, "mitigate", user="sam", note="feature flag off")
        h.client.incident_action(incident.id, "resolve", user="sam")
        assert pagerduty.alerts[incident.id].status == "resolved"
        assert alert.status == "closed"
        assert alert.notes[-2:] == [
            f"P1 incident {incident.id} mitigated by sam: feature flag off",
            f"P1 incident {incident.id} resolved by sam",
        ]
        kept = [
            (n.kind, n.channel, n.status)
            for n in h.client.store.list_notifications(release.id)
            if n.channel in ("pagerduty", "opsgenie")
        ]
        assert kept == [
            (kind, pager, "sent")
            for kind in ("page", "incident.acknowledge", "incident.mitigate", "incident.resolve")
            for pager in ("pagerduty", "opsgenie")
        ]


def test_an_incident_opened_by_hand_pages_once_per_service(
    engine_database_url: str, tmp_path: Path, pagerduty: PagerDutyDouble, opsgenie: OpsgenieDouble
) -> None:
    with harness(engine_database_url, tmp_path, **pagers(pagerduty, opsgenie)) as h:
        incident = h.client.open_incident(severity="P2", summary="billing slow", user="sam")
        alert = pagerduty.alerts[incident.id]
        assert (alert.severity, alert.status) == ("error", "triggered")
        assert alert.summary == f"P2 incident {incident.id} opened by sam: billing slow"
        (og,) = opsgenie.alerts
        assert (og.alias, og.priority, og.status) == (incident.id, "P2", "open")
        h.client.incident_action(incident.id, "resolve", user="sam")
        assert alert.status == "resolved"
        assert og.status == "closed"
