"""``announce``: a comms template sent at its place in the release, confirmed by delivery.

The runbook's "Completion announced" is a step between the post-deploy checks it cites
and the feature owners' final sign-off it asks for. As a checklist item a person had to
confirm it, and could confirm it before anything was posted. As an ``announce`` step the
message itself is the confirmation: the step succeeds when at least one channel accepted
it and fails (its ``on_failure`` decides) when none did, naming why.

::

    - id: completion_announced
      action: announce
      needs: [metrics_analysis, rls_logs_checked]
      with: {template: complete}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shipcaptain.actions.base import (
    ActionOutputs,
    ActionParams,
    DurableAction,
    DurableContext,
    GateRequest,
    Outcome,
    PlanContext,
)
from shipcaptain.runbook.durations import Duration


class AnnounceParams(ActionParams):
    """Parameters of the ``announce`` action."""

    template: str = Field(
        min_length=1, description="The comms template to send (a key of comms.templates)."
    )
    confirm_by: str | None = Field(
        default=None,
        description="Role asked to post it by hand and confirm when no channel accepted it "
        "(unset: the step fails).",
    )
    timeout: Duration = Field(default=1800.0, description="How long to wait for that confirmation.")


class AnnounceOutputs(ActionOutputs):
    """Outputs of the ``announce`` action."""

    delivered_to: list[str] = Field(description="The channels that accepted the message.")
    not_delivered: list[str] = Field(description="``channel: why`` of each that did not.")
    confirmed_by: list[str] = Field(
        default_factory=list,
        description="Who confirmed posting it by hand (when no channel accepted it).",
    )


class AnnounceAction(DurableAction[AnnounceParams]):
    """Send a comms template to the release's channels; succeeds once it was delivered.

    Outputs: ``delivered_to`` (the channels that accepted it) and ``not_delivered``
    (``channel: why`` of each that did not).
    """

    name = "announce"
    changes_world = True
    role_params = ("confirm_by",)
    summary = "Send a comms template to the release's channels; done when it was delivered."
    Params = AnnounceParams
    Outputs = AnnounceOutputs

    def describe(self, params: AnnounceParams, ctx: PlanContext) -> str:
        return f"announce the comms template {params.template!r} in the release's channels"

    def run_durable(self, params: AnnounceParams, ctx: DurableContext) -> Outcome:
        outcomes = ctx.announce(params.template)
        sent = [str(o["channel"]) for o in outcomes if o.get("status") == "sent"]
        missed = [_why(o) for o in outcomes if o.get("status") != "sent"]
        outputs = {"delivered_to": sent, "not_delivered": missed}
        if sent:
            also = f" (not delivered to {'; '.join(missed)})" if missed else ""
            return Outcome.success(
                f"{params.template} delivered to {', '.join(sent)}{also}", outputs=outputs
            )
        why = "; ".join(missed) or "nothing was sent"
        if params.confirm_by is None:
            return Outcome.failure(
                f"{params.template} not delivered: {why}", outputs=outputs, retryable=False
            )
        result = ctx.await_gate(
            GateRequest(
                kind="checklist",
                prompt=f"The {params.template} message was not delivered ({why}): post it by "
                "hand, then confirm",
                roles=[params.confirm_by],
                people=[],
                quorum=1,
                deadline_seconds=params.timeout,
                evidence={"not_delivered": missed},
            )
        )
        confirmed = [d.user for d in result.decisions if d.decision == "approve"]
        if result.approved:
            return Outcome.success(
                f"{params.template} not delivered ({why}); posted by hand, confirmed by "
                + ", ".join(confirmed),
                outputs={**outputs, "confirmed_by": confirmed},
            )
        return Outcome.failure(
            f"{params.template} not delivered ({why}) and not confirmed by hand",
            outputs=outputs,
            retryable=False,
        )


def _why(outcome: dict[str, Any]) -> str:
    """``channel: error``; only the error when there was no channel at all."""
    channel, error = str(outcome.get("channel") or ""), str(outcome.get("error") or "")
    return f"{channel}: {error}" if channel and not channel.startswith("(") else error
