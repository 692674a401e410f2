"""The evidence bundle's sections, made from audit events alone (no database)."""

from __future__ import annotations

from typing import Any

from shipcaptain.evidence import derive_sections

REL = "rel-1"


def event(
    seq: int, what: str, step: str | None = None, actor: str = "engine", **data: Any
) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": f"2026-12-04T10:00:{seq:02d}.000000+00:00",
        "release_id": REL,
        "step_id": step,
        "kind": what,
        "actor": actor,
        "message": f"{what} {step or ''}".strip(),
        "data": data,
        "hash": f"{seq:064x}",
    }


EVENTS = [
    event(
        1,
        "release.created",
        actor="casey",
        params={"version": "1.4.0"},
        runbook="small",
        runbook_digest="d" * 64,
        environment="production",
        steps=[
            {"id": "go", "phase": "one", "action": "approval"},
            {"id": "ship", "phase": "one", "action": "shell"},
        ],
        before=None,
        after="pending",
    ),
    event(2, "release.running", run=1, before="pending", after="running"),
    event(
        3,
        "gate.approval.opened",
        "go",
        run=1,
        kind="approval",
        prompt="ship it?",
        roles=["oncall_sre"],
        people=[],
        quorum=1,
        evidence={"diff": "3 files"},
        deadline="x",
        before="pending",
        after="waiting",
    ),
    event(
        4,
        "gate.rejected",
        "go",
        actor="sam",
        run=1,
        decision="reject",
        role="oncall_sre",
        comment="error rate up",
        at="2026-12-04T10:00:04+00:00",
        evidence={"diff": "3 files"},
        before="waiting",
    ),
    event(5, "gate.closed", "go", run=1, status="rejected", before="waiting", after="rejected"),
    event(
        6,
        "step.failed",
        "go",
        run=1,
        outputs={"rejected_by": ["sam"]},
        before="waiting",
        after="failed",
    ),
    event(7, "release.failed", run=1, before="running", after="failed"),
    {
        **event(8, "gate.approved", "go", actor="mallory", run=1, decision="approve"),
        "release_id": "rel-2",
    },
]


def test_a_rejection_and_its_evidence_come_from_the_events() -> None:
    sections = derive_sections(REL, EVENTS)
    [gate] = sections["approvals"]
    assert (gate["step"], gate["status"], gate["required"]["roles"]) == (
        "go",
        "rejected",
        ["oncall_sre"],
    )
    assert gate["decisions"] == [
        {
            "person": "sam",
            "role": "oncall_sre",
            "decision": "reject",
            "comment": "error rate up",
            "at": "2026-12-04T10:00:04+00:00",
            "evidence_seen": {"diff": "3 files"},
        }
    ]
    release = sections["release"]
    assert (release["status"], release["started_by"], release["environment"]) == (
        "failed",
        "casey",
        "production",
    )
    assert release["reason"] == "release.failed"
    steps = {s["id"]: s for s in sections["steps"]}
    assert steps["go"]["status"] == "failed"
    assert steps["go"]["outputs"] == {"rejected_by": ["sam"]}
    assert steps["ship"]["status"] == "pending"
    assert [e["seq"] for e in sections["timeline"]] == [1, 2, 3, 4, 5, 6, 7]  # not rel-2's


def test_a_release_from_before_the_plan_was_recorded_lists_the_steps_it_saw() -> None:
    created = {**EVENTS[0], "data": {"params": {}}}
    sections = derive_sections(REL, [created, *EVENTS[1:]])
    assert [s["id"] for s in sections["steps"]] == ["go"]
    assert sections["release"]["runbook"] is None
