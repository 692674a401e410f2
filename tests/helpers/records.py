"""Records of every kind, each field set (times with microseconds, nested JSON): what the
codec's tests round-trip and the release document's tests are made of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shipcaptain.records import (
    DecisionRecord,
    EventRecord,
    GateRecord,
    IncidentRecord,
    NotificationRecord,
    Person,
    ReleaseRecord,
    StepRunRecord,
    TokenRecord,
    WorkerRecord,
)

AT = datetime(2026, 12, 4, 23, 30, 1, 123456, tzinfo=UTC)

RECORDS: list[Any] = [
    ReleaseRecord(
        id="rel-1",
        runbook_name="deploy",
        runbook_digest="abc",
        runbook_text="name: deploy\n",
        runbook_path="runbooks/deploy.yaml",
        environment="prod",
        started_by="ada",
        params={"version": "1.2.3", "nested": {"n": [1, 2]}},
        status="running",
        run=2,
        created_at=AT,
        started_at=AT + timedelta(seconds=1),
        reason=None,
    ),
    StepRunRecord(
        release_id="rel-1",
        step_id="tag",
        run=1,
        attempt=2,
        status="succeeded",
        started_at=AT,
        ended_at=AT + timedelta(seconds=3),
        summary="tagged",
        outputs={"sha": "f00"},
        already_done=True,
    ),
    GateRecord(
        release_id="rel-1",
        step_id="approve",
        run=1,
        kind="approval",
        prompt="Go?",
        roles=["captain"],
        people=["ada"],
        quorum=2,
        deadline_at=AT + timedelta(hours=1),
        evidence={"parts": [{"title": "a"}]},
        opened_at=AT,
    ),
    DecisionRecord(
        release_id="rel-1",
        step_id="approve",
        run=1,
        user="ada",
        decision="approve",
        role="captain",
        comment="ok",
        at=AT,
        evidence={"saw": 1},
    ),
    EventRecord(
        seq=7,
        at=AT,
        release_id="rel-1",
        step_id=None,
        kind="release.started",
        actor="ada",
        message="started",
        data={"before": None, "after": "running"},
        prev_hash="0" * 64,
        hash="1" * 64,
        mac="m",
    ),
    WorkerRecord(
        executor_id="w1", pid=42, hostname="h", kind="worker", started_at=AT, heartbeat_at=AT
    ),
    Person(
        name="ada",
        display_name="Ada",
        email="ada@example.org",
        slack_id="U1",
        roles={"*": ("captain",), "prod": ("sre", "captain")},
        surfaces=("billing",),
        admin=True,
        active=False,
    ),
    TokenRecord(
        id="t1",
        person="ada",
        label="ci",
        secret_hash="h",
        created_at=AT,
        created_by="ada",
        expires_at=AT + timedelta(days=1),
    ),
    IncidentRecord(
        id="i1",
        release_id="rel-1",
        severity="P1",
        summary="down",
        status="acknowledged",
        owners=["ada", "bob"],
        opened_by="ada",
        opened_at=AT,
        acknowledge_by=AT + timedelta(minutes=5),
        mitigate_by=AT + timedelta(minutes=30),
        acknowledged_at=AT + timedelta(minutes=1),
        acknowledged_by="bob",
    ),
    NotificationRecord(
        id="n1",
        release_id="rel-1",
        incident_id=None,
        kind="release.started",
        channel="slack",
        text="hi",
        status="sent",
        attempts=1,
        error=None,
        at=AT,
    ),
]


def sample(kind: type) -> Any:
    """The record of ``kind`` in :data:`RECORDS`."""
    return next(r for r in RECORDS if type(r) is kind)
