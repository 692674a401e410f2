"""Gates and waits: the steps where a release stops for people or for time.

* ``wait``: let time pass (a soak period after a rollout, a cache to expire).
* ``approval``: wait until enough people of the right roles approve ("Feature Owners
  sign off on risky migrations"), or one of them rejects, or the deadline passes.
* ``checklist``: wait until someone confirms one item of a checklist ("backup completed
  within the last 24 h"), optionally seeing a note with the evidence.

All three are durable actions: the engine keeps them across crashes and restarts, so a
release waiting for a sign-off over night survives a redeploy of shipcaptain itself.
Who may decide, separation of duties and the audit trail are the engine's business;
these actions only say what is asked and turn the answers into the step's outcome.
A rejection or a deadline that passes fails the step for good (no retry): asking the
same people the same question again is a decision for the release captain.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from shipcaptain.actions.base import (
    ActionOutputs,
    ActionParams,
    Decision,
    DurableAction,
    DurableContext,
    GateRequest,
    GateResult,
    Outcome,
    PlanContext,
)
from shipcaptain.runbook.durations import Duration, format_duration


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("timeout must be more than 0 seconds")
    return value


# ---- wait ----


class WaitParams(ActionParams):
    """Parameters of the ``wait`` action."""

    duration: Duration = Field(description="How long to wait, e.g. '10m'.")
    reason: str = Field(default="", description="Why, shown in the plan and the timeline.")


class WaitOutputs(ActionOutputs):
    """The ``wait`` action has no outputs."""


class WaitAction(DurableAction[WaitParams]):
    """Let time pass, durably: after a restart only the rest of the time is waited."""

    name = "wait"
    changes_world = False
    sleeps_only = True
    summary = "Wait for a while (a soak period), durably across restarts."
    Params = WaitParams
    Outputs = WaitOutputs

    def describe(self, params: WaitParams, ctx: PlanContext) -> str:
        text = f"wait {format_duration(params.duration)}"
        return f"{text}: {params.reason}" if params.reason else text

    def run_durable(self, params: WaitParams, ctx: DurableContext) -> Outcome:
        ctx.progress(self.describe(params, PlanContext()))
        ctx.sleep(params.duration)
        return Outcome.success(f"waited {format_duration(params.duration)}")


# ---- approval ----


class ApprovalParams(ActionParams):
    """Parameters of the ``approval`` action."""

    prompt: str = Field(min_length=1, description="The question put to the approvers.")
    roles: list[str] = Field(
        default_factory=list, description="Roles whose members may approve. Empty: any role."
    )
    people: list[str] = Field(
        default_factory=list, description="People who may approve, in addition to the roles."
    )
    quorum: int = Field(default=1, ge=1, description="How many different people must approve.")
    timeout: Duration = Field(default=3600.0, description="How long to wait for the approvals.")
    evidence: dict[str, Any] = Field(
        default_factory=dict,
        description="What the approvers are shown (values, a diff, links; templates allowed, "
        "e.g. '{{ steps.diff.stdout }}'); kept with each approval.",
    )

    _timeout_positive = field_validator("timeout")(_positive)

    @model_validator(mode="after")
    def _quorum_reachable(self) -> ApprovalParams:
        if self.people and not self.roles and self.quorum > len(set(self.people)):
            raise ValueError(
                f"quorum {self.quorum} can never be reached by the {len(set(self.people))} "
                "people listed"
            )
        return self


class ApprovalOutputs(ActionOutputs):
    """Outputs of the ``approval`` action."""

    approved_by: list[str] = Field(description="Who approved, in the order they did.")


class ApprovalAction(DurableAction[ApprovalParams]):
    """Wait for ``quorum`` approvals from the listed roles or people (a sign-off).

    One rejection fails the step, as does a deadline that passes first; neither is retried.
    Outputs: ``approved_by``, the people who approved.
    """

    waits_for_people = True

    name = "approval"
    changes_world = False
    summary = "Wait for people of the given roles to approve (sign-off), with a deadline."
    Params = ApprovalParams
    Outputs = ApprovalOutputs

    def describe(self, params: ApprovalParams, ctx: PlanContext) -> str:
        count = f"{params.quorum} approval{'s' if params.quorum != 1 else ''}"
        return f"wait for {count} from {_who(params.roles, params.people)}: {params.prompt}"

    def run_durable(self, params: ApprovalParams, ctx: DurableContext) -> Outcome:
        request = GateRequest(
            kind="approval",
            prompt=params.prompt,
            roles=list(params.roles),
            people=list(params.people),
            quorum=params.quorum,
            deadline_seconds=params.timeout,
            evidence=dict(params.evidence),
        )
        ctx.progress(self.describe(params, PlanContext()))
        result = ctx.await_gate(request)
        approvers = _users(result, "approve")
        outputs = {"approved_by": approvers}
        detail = _detail(result)
        if result.approved:
            return Outcome.success(
                "approved by " + _names(result, "approve"), outputs=outputs, detail=detail
            )
        if result.timed_out:
            if approvers:
                summary = (
                    f"only {len(approvers)} of {params.quorum} approvals within "
                    f"{format_duration(params.timeout)} ({_names(result, 'approve')})"
                )
            else:
                summary = f"nobody decided within {format_duration(params.timeout)}"
            return Outcome.failure(summary, outputs=outputs, detail=detail, retryable=False)
        if _users(result, "reject"):
            summary = "rejected by " + _names(result, "reject", with_comments=True)
        else:
            summary = "not approved"
        return Outcome.failure(summary, outputs=outputs, detail=detail, retryable=False)


# ---- checklist ----


class ChecklistParams(ActionParams):
    """Parameters of the ``checklist`` action."""

    item: str = Field(min_length=1, description="What must be confirmed, e.g. 'Backup < 24h old'.")
    confirm_by: str | None = Field(
        default=None, description="Role that confirms the item. Unset: any role."
    )
    people: list[str] = Field(default_factory=list, description="People who may confirm.")
    timeout: Duration = Field(default=3600.0, description="How long to wait for the confirmation.")
    evidence: str | None = Field(
        default=None, description="A note shown to the confirmer (where to look, what to check)."
    )

    _timeout_positive = field_validator("timeout")(_positive)


class ChecklistOutputs(ActionOutputs):
    """Outputs of the ``checklist`` action."""

    confirmed_by: list[str] = Field(description="Who confirmed, in the order they did.")


class ChecklistAction(DurableAction[ChecklistParams]):
    """Wait for one person to confirm a checklist item (pre-flight checks and the like).

    An answer of "no" fails the step, as does a deadline that passes first; neither is
    retried. Outputs: ``confirmed_by``, the person who confirmed.
    """

    waits_for_people = True

    name = "checklist"
    changes_world = False
    summary = "Wait for someone (of a role) to confirm a checklist item, with a deadline."
    Params = ChecklistParams
    Outputs = ChecklistOutputs

    def describe(self, params: ChecklistParams, ctx: PlanContext) -> str:
        roles = [params.confirm_by] if params.confirm_by else []
        return f"wait for confirmation from {_who(roles, params.people)}: {params.item}"

    def run_durable(self, params: ChecklistParams, ctx: DurableContext) -> Outcome:
        request = GateRequest(
            kind="checklist",
            prompt=params.item,
            roles=[params.confirm_by] if params.confirm_by else [],
            people=list(params.people),
            quorum=1,
            deadline_seconds=params.timeout,
            evidence={"note": params.evidence} if params.evidence else {},
        )
        ctx.progress(self.describe(params, PlanContext()))
        result = ctx.await_gate(request)
        outputs = {"confirmed_by": _users(result, "approve")}
        detail = _detail(result)
        if result.approved:
            return Outcome.success(
                "confirmed by " + _names(result, "approve"), outputs=outputs, detail=detail
            )
        if result.timed_out:
            return Outcome.failure(
                f"nobody confirmed within {format_duration(params.timeout)}",
                outputs=outputs,
                detail=detail,
                retryable=False,
            )
        if _users(result, "reject"):
            summary = "not confirmed: " + _names(result, "reject", with_comments=True)
        else:
            summary = "not confirmed"
        return Outcome.failure(summary, outputs=outputs, detail=detail, retryable=False)


# ---- helpers ----


def _who(roles: list[str], people: list[str]) -> str:
    names = [*roles, *people]
    if not names:
        return "anyone"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _decisions(result: GateResult, kind: str) -> list[Decision]:
    return [d for d in result.decisions if d.decision == kind]


def _users(result: GateResult, kind: str) -> list[str]:
    """The people who decided ``kind``, each once, in the order they decided."""
    return list(dict.fromkeys(d.user for d in _decisions(result, kind)))


def _names(result: GateResult, kind: str, *, with_comments: bool = False) -> str:
    parts = []
    seen: set[str] = set()
    for d in _decisions(result, kind):
        if d.user in seen:
            continue
        seen.add(d.user)
        part = f"{d.user} ({d.role})" if d.role else d.user
        if with_comments:
            part += f": {d.comment!r}" if d.comment else " (no comment)"
        parts.append(part)
    return "; ".join(parts) if with_comments else ", ".join(parts)


def _detail(result: GateResult) -> str:
    lines = []
    for d in result.decisions:
        who = f"{d.user} ({d.role})" if d.role else d.user
        verb = "approved" if d.decision == "approve" else "rejected"
        lines.append(f"{d.at} {who} {verb}" + (f": {d.comment}" if d.comment else ""))
    return "\n".join(lines)
