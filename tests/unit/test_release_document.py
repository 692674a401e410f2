"""``release show --json`` writes the API's release detail without pydantic
(``shipcaptain.codec.detail_document``, issue 27): the same document as the API's model
(``web.schemas.ReleaseDetail``), byte for byte once dumped, on hand-made views that hold
every part of it (steps run and not yet run, gates, decisions, events with and without a
MAC, incidents, notifications, who runs it) and the values pydantic writes its own way
(UTC times as ``Z``, a time on the second, tuples, a float that is not finite). Real
releases (gates, failures, rollbacks) on both databases: tests/web/test_release_document_api.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from helpers.records import AT, sample
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

ON_THE_SECOND = AT.replace(microsecond=0)
ELSEWHERE = datetime(2026, 12, 5, 1, 30, 1, 500, tzinfo=timezone(timedelta(hours=2)))

#: the samples of every record, with the values pydantic writes its own way
RELEASE = replace(
    sample(ReleaseRecord),
    workdir="/srv/work",
    status="failed",
    started_at=ON_THE_SECOND,
    ended_at=ELSEWHERE,
    reason="tag failed",
    executor_id="w1",
)
TRY = replace(
    sample(StepRunRecord),
    status="failed",
    detail="boom",
    outputs={"sha": "f00", "sizes": (1, 2.5), "ratio": float("inf"), "when": ON_THE_SECOND},
)
GATE = replace(
    sample(GateRecord),
    evidence={"parts": [{"title": "a", "at": AT}]},
    status="approved",
    opened_at=ON_THE_SECOND,
    closed_at=ELSEWHERE,
)
ROLLBACK_GATE = GateRecord(
    release_id="rel-1", step_id="rollback/approval", run=3, kind="approval", prompt="Undo?"
)
EVENT = replace(sample(EventRecord), message="tag failed: running → failed")
INCIDENT = replace(
    sample(IncidentRecord),
    status="mitigated",
    acknowledged_at=ON_THE_SECOND,
    mitigated_at=ELSEWHERE,
    mitigated_by="bob",
    mitigation="rolled back",
)
NOTIFICATION = replace(sample(NotificationRecord), status="failed", attempts=3, error="timeout")


def steps() -> list[StepView]:
    succeeded = replace(TRY, step_id="build", status="succeeded", outputs={})
    return [
        StepView("build", "build", "Build", "shell", [], succeeded),
        StepView("tag", "ship", "Tag", "git_tag", ["build"], replace(TRY, step_id="tag")),
        StepView("ship", "ship", "ship", "shell", ["build", "tag"], None),  # never ran
        StepView("rollback/undo-build", "rollback", "undo-build", "", [], replace(TRY, run=3)),
    ]


VIEWS = {
    "every part": ReleaseView(
        release=RELEASE,
        steps=steps(),
        gates=[GATE, ROLLBACK_GATE],
        events=[EVENT, replace(EVENT, seq=8, step_id="tag", mac=None)],
        notifications=[NOTIFICATION],
        incidents=[INCIDENT],
        decisions=[sample(DecisionRecord)],
        engine=EngineHealth("stopped", "w1", AT, ["w2"], "nobody runs it"),
    ),
    "a new release": ReleaseView(
        release=replace(
            RELEASE,
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
    "without events or an engine": ReleaseView(release=RELEASE, steps=steps(), gates=[GATE]),
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
