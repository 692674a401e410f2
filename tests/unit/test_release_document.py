"""``release show --json`` writes the API's release detail without pydantic
(``shipcaptain.codec.detail_document``, issue 27): the same document as the API's model
(``web.schemas.ReleaseDetail``), byte for byte once dumped, on hand-made views that hold
every part of it (steps run and not yet run, gates, decisions, events with and without a
MAC, incidents, notifications, who runs it) and the values pydantic writes its own way
(UTC times as ``Z``, a time on the second, tuples, a float that is not finite). Real
releases (gates, failures, rollbacks) on both databases: tests/web/test_release_document.py.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shipcaptain.client import ReleaseView, StepView
from shipcaptain.codec import api_time, detail_document
from shipcaptain.records import (
    DecisionRecord,
    EngineHealth,
    EventRecord,
    GateRecord,
    IncidentRecord,
    NotificationRecord,
    ReleaseRecord,
    StepRunRecord,
)

AT = datetime(2026, 12, 4, 23, 30, 1, 123456, tzinfo=UTC)
ON_THE_SECOND = datetime(2026, 12, 4, 23, 30, 1, tzinfo=UTC)
ELSEWHERE = datetime(2026, 12, 5, 1, 30, 1, 500, tzinfo=timezone(timedelta(hours=2)))


def release(**changes: Any) -> ReleaseRecord:
    base = ReleaseRecord(
        id="rel-1",
        runbook_name="deploy",
        runbook_digest="abc",
        runbook_text="name: deploy\n",
        runbook_path="runbooks/deploy.yaml",
        workdir="/srv/work",
        environment="prod",
        started_by="ada",
        params={"version": "1.2.3", "nested": {"n": [1, 2]}},
        status="failed",
        run=2,
        created_at=AT,
        started_at=ON_THE_SECOND,
        ended_at=ELSEWHERE,
        reason="tag failed",
        executor_id="w1",
    )
    return dataclasses.replace(base, **changes)


def step_try(step: str, **changes: Any) -> StepRunRecord:
    base = StepRunRecord(
        release_id="rel-1",
        step_id=step,
        run=2,
        attempt=3,
        status="failed",
        started_at=AT,
        ended_at=AT + timedelta(seconds=3),
        summary="exit 1",
        detail="boom",
        outputs={"sha": "f00", "sizes": (1, 2.5), "ratio": float("inf"), "when": ON_THE_SECOND},
        already_done=False,
    )
    return dataclasses.replace(base, **changes)


GATE = GateRecord(
    release_id="rel-1",
    step_id="approve",
    run=2,
    kind="approval",
    prompt="Go?",
    roles=["captain"],
    people=["ada"],
    quorum=2,
    deadline_at=AT + timedelta(hours=1),
    evidence={"parts": [{"title": "a", "at": AT}]},
    status="approved",
    opened_at=ON_THE_SECOND,
    closed_at=ELSEWHERE,
)
ROLLBACK_GATE = GateRecord(
    release_id="rel-1", step_id="rollback/approval", run=3, kind="approval", prompt="Undo?"
)
DECISION = DecisionRecord(
    release_id="rel-1",
    step_id="approve",
    run=2,
    user="ada",
    decision="approve",
    role="captain",
    comment="ok",
    at=AT,
    evidence={"saw": [1, 2]},
)


def event(seq: int, mac: str | None) -> EventRecord:
    return EventRecord(
        seq=seq,
        at=AT + timedelta(seconds=seq),
        release_id="rel-1",
        step_id="tag" if seq % 2 else None,
        kind="step.failed",
        actor="engine",
        message="tag failed: running → failed",
        data={"before": "running", "after": "failed", "took": 1.5},
        prev_hash="0" * 64,
        hash="1" * 64,
        mac=mac,
    )


INCIDENT = IncidentRecord(
    id="i1",
    release_id="rel-1",
    severity="P1",
    summary="down",
    status="mitigated",
    owners=["ada", "bob"],
    opened_by="ada",
    opened_at=AT,
    acknowledge_by=AT + timedelta(minutes=5),
    mitigate_by=AT + timedelta(minutes=30),
    acknowledged_at=ON_THE_SECOND,
    acknowledged_by="bob",
    mitigated_at=ELSEWHERE,
    mitigated_by="bob",
    mitigation="rolled back",
)
NOTIFICATION = NotificationRecord(
    id="n1",
    release_id="rel-1",
    incident_id="i1",
    kind="release.failed",
    channel="slack",
    text="failed",
    status="failed",
    attempts=3,
    error="timeout",
    at=AT,
)


def steps() -> list[StepView]:
    return [
        StepView("build", "build", "Build", "shell", [], step_try("build", status="succeeded")),
        StepView("tag", "ship", "Tag", "git_tag", ["build"], step_try("tag")),
        StepView("ship", "ship", "ship", "shell", ["build", "tag"], None),  # never ran
        StepView("rollback/undo-build", "rollback", "undo-build", "", [], step_try("undo", run=3)),
    ]


VIEWS = {
    "every part": ReleaseView(
        release=release(),
        steps=steps(),
        gates=[GATE, ROLLBACK_GATE],
        events=[event(1, "m"), event(2, None)],
        notifications=[NOTIFICATION],
        incidents=[INCIDENT],
        decisions=[DECISION],
        engine=EngineHealth("stopped", "w1", AT, ["w2"], "nobody runs it"),
    ),
    "a new release": ReleaseView(
        release=release(
            status="pending",
            run=1,
            started_at=None,
            ended_at=None,
            reason=None,
            executor_id=None,
            queued_for_worker=True,
        ),
        steps=[s for s in steps() if s.record is None],
        gates=[],
        engine=EngineHealth("queued", None, None, [], "no worker is alive"),
    ),
    "without events or an engine": ReleaseView(release=release(), steps=steps(), gates=[GATE]),
}


@pytest.mark.parametrize("view", VIEWS.values(), ids=VIEWS.keys())
def test_show_json_is_the_api_s_release_detail(view: ReleaseView) -> None:
    from shipcaptain.web.schemas import ReleaseDetail

    api = ReleaseDetail.of(view).model_dump(mode="json")
    ours = detail_document(view)
    # dumped: the same fields in the same order, the same values written the same way
    assert json.dumps(ours, indent=2) == json.dumps(api, indent=2)
    compact = json.dumps(ours, separators=(",", ":"), ensure_ascii=False)
    assert compact == ReleaseDetail.of(view).model_dump_json()


def test_the_document_leaves_out_what_stays_on_the_server() -> None:
    document = detail_document(VIEWS["every part"])
    assert "runbook_text" not in document["release"]
    assert "workdir" not in document["release"]
    assert all("mac" not in e for e in document["events"])
    assert document["steps"][2]["run"] is None  # never ran: no try
    assert document["steps"][1]["outputs"]["ratio"] is None  # JSON has no infinity


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (AT, "2026-12-04T23:30:01.123456Z"),
        (ON_THE_SECOND, "2026-12-04T23:30:01Z"),
        (ELSEWHERE.astimezone(UTC), "2026-12-04T23:30:01.000500Z"),
        (ELSEWHERE, "2026-12-05T01:30:01.000500+02:00"),
    ],
)
def test_times_are_written_as_pydantic_writes_them(at: datetime, text: str) -> None:
    from pydantic import TypeAdapter

    assert api_time(at) == text
    assert TypeAdapter(datetime).dump_python(at, mode="json") == text
