"""Gates and waits, run against a scripted DurableContext.

The real DurableContext belongs to the engine (it checkpoints, waits for people's
decisions through the store); here a small stand-in records what the action asked for
and answers with a scripted GateResult.
"""

from __future__ import annotations

from typing import Any

import pytest

from shipcaptain.actions.base import (
    Decision,
    DurableContext,
    GateRequest,
    GateResult,
    PlanContext,
)
from shipcaptain.actions.gates import ApprovalAction, ChecklistAction, WaitAction
from shipcaptain.actions.registry import registry


class ScriptedContext(DurableContext):
    def __init__(self, result: GateResult | None = None) -> None:
        self.release_id = "rel-1"
        self.step_id = "sign-off"
        self.release_values = {}
        self.result = result
        self.slept: list[float] = []
        self.requests: list[GateRequest] = []
        self.messages: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def await_gate(self, request: GateRequest) -> GateResult:
        self.requests.append(request)
        assert self.result is not None, "this test did not script a gate result"
        return self.result

    def progress(self, message: str) -> None:
        self.messages.append(message)


def decision(kind: str, user: str, role: str | None = None, comment: str = "") -> Decision:
    return Decision(
        decision=kind,  # type: ignore[arg-type]
        user=user,
        role=role,
        comment=comment,
        at="2025-01-01T10:00:00Z",
    )


approval = ApprovalAction()
checklist = ChecklistAction()
wait = WaitAction()


def approval_params(**raw: Any) -> Any:
    return approval.parse_params({"prompt": "Apply the drop-columns migration?", **raw})


@pytest.mark.parametrize(
    ("name", "cls"),
    [("wait", WaitAction), ("approval", ApprovalAction), ("checklist", ChecklistAction)],
)
def test_registered_under_their_names(name: str, cls: type) -> None:
    assert isinstance(registry.get(name), cls)
    assert cls.idempotent is True


# ---- wait ----


def test_wait_sleeps_durably() -> None:
    ctx = ScriptedContext()
    p = wait.parse_params({"duration": "5m", "reason": "soak the new pods"})
    outcome = wait.run_durable(p, ctx)
    assert ctx.slept == [300.0]
    assert outcome.ok
    assert outcome.summary == "waited 5m"
    assert ctx.messages == ["wait 5m: soak the new pods"]


def test_wait_describe() -> None:
    assert wait.describe(wait.parse_params({"duration": 90}), PlanContext()) == "wait 1m30s"
    p = wait.parse_params({"duration": "5m", "reason": "let caches expire"})
    assert wait.describe(p, PlanContext()) == "wait 5m: let caches expire"


# ---- approval ----


def test_approval_builds_the_gate_request() -> None:
    ctx = ScriptedContext(GateResult(approved=True, timed_out=False, decisions=[]))
    p = approval_params(roles=["feature_owner"], people=["dana"], quorum=2, timeout="30m")
    approval.run_durable(p, ctx)
    assert ctx.requests == [
        GateRequest(
            kind="approval",
            prompt="Apply the drop-columns migration?",
            roles=["feature_owner"],
            people=["dana"],
            quorum=2,
            deadline_seconds=1800.0,
        )
    ]
    assert ctx.messages == [
        "wait for 2 approvals from feature_owner or dana: Apply the drop-columns migration?"
    ]


def test_approval_defaults() -> None:
    ctx = ScriptedContext(GateResult(approved=True, timed_out=False, decisions=[]))
    approval.run_durable(approval_params(), ctx)
    [request] = ctx.requests
    assert (request.roles, request.people, request.quorum) == ([], [], 1)
    assert request.deadline_seconds == 3600.0


def test_approved_lists_who_approved() -> None:
    decisions = [
        decision("approve", "alice", "feature_owner", "looks good"),
        decision("approve", "bob", "sre"),
        decision("approve", "alice", "feature_owner"),
    ]
    ctx = ScriptedContext(GateResult(approved=True, timed_out=False, decisions=decisions))
    outcome = approval.run_durable(approval_params(quorum=2), ctx)
    assert outcome.ok
    assert outcome.outputs == {"approved_by": ["alice", "bob"]}
    assert outcome.summary == "approved by alice (feature_owner), bob (sre)"
    assert "alice (feature_owner) approved: looks good" in outcome.detail


def test_rejected_names_who_and_why_and_is_not_retried() -> None:
    decisions = [
        decision("approve", "alice", "feature_owner"),
        decision("reject", "carol", "sre", "error budget is spent"),
    ]
    ctx = ScriptedContext(GateResult(approved=False, timed_out=False, decisions=decisions))
    outcome = approval.run_durable(approval_params(quorum=2), ctx)
    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.summary == "rejected by carol (sre): 'error budget is spent'"
    assert outcome.outputs == {"approved_by": ["alice"]}


def test_rejected_without_comment() -> None:
    decisions = [decision("reject", "carol")]
    ctx = ScriptedContext(GateResult(approved=False, timed_out=False, decisions=decisions))
    outcome = approval.run_durable(approval_params(), ctx)
    assert outcome.summary == "rejected by carol (no comment)"


def test_nobody_decided_within_the_timeout() -> None:
    ctx = ScriptedContext(GateResult(approved=False, timed_out=True, decisions=[]))
    outcome = approval.run_durable(approval_params(timeout="2h"), ctx)
    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.summary == "nobody decided within 2h"


def test_timeout_with_too_few_approvals() -> None:
    decisions = [decision("approve", "alice", "feature_owner")]
    ctx = ScriptedContext(GateResult(approved=False, timed_out=True, decisions=decisions))
    outcome = approval.run_durable(approval_params(quorum=2, timeout="1h"), ctx)
    assert outcome.summary == "only 1 of 2 approvals within 1h (alice (feature_owner))"
    assert not outcome.retryable


def test_approval_describe() -> None:
    ctx = PlanContext()
    assert approval.describe(approval_params(roles=["feature_owner"]), ctx) == (
        "wait for 1 approval from feature_owner: Apply the drop-columns migration?"
    )
    assert approval.describe(approval_params(roles=["a", "b"], people=["c"]), ctx) == (
        "wait for 1 approval from a, b or c: Apply the drop-columns migration?"
    )
    assert approval.describe(approval_params(), ctx) == (
        "wait for 1 approval from anyone: Apply the drop-columns migration?"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {"prompt": ""},
        {"quorum": 0},
        {"timeout": 0},
        {"people": ["alice"], "quorum": 2},
        {"approvers": ["alice"]},
    ],
)
def test_bad_approval_params(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        approval_params(**raw)


# ---- checklist ----


def checklist_params(**raw: Any) -> Any:
    return checklist.parse_params({"item": "Backup completed within the last 24h", **raw})


def test_checklist_builds_the_gate_request() -> None:
    ctx = ScriptedContext(GateResult(approved=True, timed_out=False, decisions=[]))
    p = checklist_params(confirm_by="sre", people=["erin"], timeout="15m", evidence="see backups")
    checklist.run_durable(p, ctx)
    assert ctx.requests == [
        GateRequest(
            kind="checklist",
            prompt="Backup completed within the last 24h",
            roles=["sre"],
            people=["erin"],
            quorum=1,
            deadline_seconds=900.0,
            evidence={"note": "see backups"},
        )
    ]


def test_checklist_without_role_or_evidence() -> None:
    ctx = ScriptedContext(GateResult(approved=True, timed_out=False, decisions=[]))
    checklist.run_durable(checklist_params(), ctx)
    [request] = ctx.requests
    assert request.roles == []
    assert request.evidence == {}


def test_checklist_confirmed() -> None:
    decisions = [decision("approve", "erin", "sre")]
    ctx = ScriptedContext(GateResult(approved=True, timed_out=False, decisions=decisions))
    outcome = checklist.run_durable(checklist_params(confirm_by="sre"), ctx)
    assert outcome.ok
    assert outcome.summary == "confirmed by erin (sre)"
    assert outcome.outputs == {"confirmed_by": ["erin"]}


def test_checklist_answered_no() -> None:
    decisions = [decision("reject", "erin", "sre", "last backup is 30h old")]
    ctx = ScriptedContext(GateResult(approved=False, timed_out=False, decisions=decisions))
    outcome = checklist.run_durable(checklist_params(), ctx)
    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.summary == "not confirmed: erin (sre): 'last backup is 30h old'"


def test_checklist_timed_out() -> None:
    ctx = ScriptedContext(GateResult(approved=False, timed_out=True, decisions=[]))
    outcome = checklist.run_durable(checklist_params(timeout="1h"), ctx)
    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.summary == "nobody confirmed within 1h"


def test_checklist_describe() -> None:
    assert checklist.describe(checklist_params(confirm_by="sre"), PlanContext()) == (
        "wait for confirmation from sre: Backup completed within the last 24h"
    )
