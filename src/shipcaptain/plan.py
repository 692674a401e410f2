"""Plan, then apply: what a release would do, step by step, with nothing executed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipcaptain.actions.base import PlanContext
from shipcaptain.actions.registry import Registry
from shipcaptain.errors import ShipError
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import ReleaseInfo, build_context, render_params


@dataclass(frozen=True)
class PlannedStep:
    id: str
    phase: str
    title: str
    action: str
    needs: list[str]
    wave: int  # 0-based: steps of one wave can run at the same time
    description: str
    owner: str | None
    timeout: float
    attempts: int
    on_failure: str
    guards: list[str]
    idempotent: bool
    waits_for_people: bool


@dataclass(frozen=True)
class ReleasePlan:
    runbook: Runbook
    values: dict[str, Any]
    steps: list[PlannedStep]
    rollback: list[PlannedStep] = field(default_factory=list)

    @property
    def waves(self) -> list[list[PlannedStep]]:
        out: list[list[PlannedStep]] = []
        for step in self.steps:
            while len(out) <= step.wave:
                out.append([])
            out[step.wave].append(step)
        return out

    def to_dict(self) -> dict[str, Any]:
        def one(s: PlannedStep) -> dict[str, Any]:
            return {k: getattr(s, k) for k in PlannedStep.__dataclass_fields__}

        return {
            "runbook": self.runbook.name,
            "values": self.values,
            "steps": [one(s) for s in self.steps],
            "rollback": [one(s) for s in self.rollback],
        }


def _describe(
    registry: Registry,
    action_name: str,
    raw: dict[str, Any],
    context: dict[str, Any],
    pctx: PlanContext,
) -> tuple[str, bool, bool]:
    action = registry.get(action_name)
    try:
        rendered = render_params(raw, context)
    except ShipError:
        rendered = raw  # refers to outputs of earlier steps: show the template itself
    try:
        text = action.describe(action.parse_params(rendered), pctx)
    except ValueError:
        text = action.describe(action.parse_params(raw), pctx)
    return text, action.idempotent, action.waits_for_people


def make_plan(
    rb: Runbook,
    values: dict[str, Any],
    registry: Registry,
    *,
    release: dict[str, Any] | None = None,
    workdir: Path | None = None,
) -> ReleasePlan:
    release_info = ReleaseInfo(
        id="(planned)",
        started_by=str((release or {}).get("started_by", "")),
        environment=str(values.get("environment", "")),
    )
    context = build_context(rb, values, release_info, {})
    pctx = PlanContext(release_values=values, workdir=workdir or Path.cwd())
    deps = rb.dependencies
    wave: dict[str, int] = {}
    planned: list[PlannedStep] = []
    for sid in rb.topological_order():
        step = rb.steps[sid]
        wave[sid] = 1 + max((wave[d] for d in deps[sid] if d in wave), default=-1)
        text, idempotent, people = _describe(registry, step.action, dict(step.with_), context, pctx)
        planned.append(
            PlannedStep(
                id=sid,
                phase=rb.phase_of[sid],
                title=step.label,
                action=step.action,
                needs=list(deps[sid]),
                wave=wave[sid],
                description=text,
                owner=step.owner,
                timeout=rb.effective_timeout(step),
                attempts=rb.effective_retry(step).attempts,
                on_failure=rb.effective_on_failure(step).value,
                guards=list(step.guards),
                idempotent=idempotent,
                waits_for_people=people,
            )
        )
    rollback: list[PlannedStep] = []
    for i, step in enumerate(rb.rollback):
        text, idempotent, people = _describe(registry, step.action, dict(step.with_), context, pctx)
        rollback.append(
            PlannedStep(
                id=step.id,
                phase="rollback",
                title=step.label,
                action=step.action,
                needs=[],
                wave=i,
                description=text,
                owner=step.owner,
                timeout=rb.effective_timeout(step),
                attempts=rb.effective_retry(step).attempts,
                on_failure="halt",
                guards=[],
                idempotent=idempotent,
                waits_for_people=people,
            )
        )
    return ReleasePlan(runbook=rb, values=values, steps=planned, rollback=rollback)
