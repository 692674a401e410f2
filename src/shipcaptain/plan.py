"""Plan, then apply: what a release would do, step by step, with nothing executed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipcaptain.actions.base import PlanContext
from shipcaptain.actions.registry import Registry
from shipcaptain.errors import ShipError
from shipcaptain.runbook.conditions import condition_holds, skip_reason
from shipcaptain.runbook.environment import release_environment
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.templating import (
    CONTEXT_ROOTS,
    ReleaseInfo,
    build_context,
    render_params,
)


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
    when: str | None = None  # the step's condition
    skipped: str | None = None  # why the step will not run, when the plan can tell already


@dataclass(frozen=True)
class RollbackEntry:
    """One line of a rollback plan, in the order the rollback goes."""

    key: str  # the rollback's own step key: undo-<step>, a rollback step, validate-<step>
    kind: str  # undo | rollback | validate | no_undo (changes something, nothing undoes it)
    step: str | None  # the forward step it undoes or validates again
    action: str
    description: str


@dataclass(frozen=True)
class ReleasePlan:
    runbook: Runbook
    values: dict[str, Any]
    steps: list[PlannedStep]
    rollback: list[PlannedStep] = field(default_factory=list)
    rollback_plan: list[RollbackEntry] = field(default_factory=list)
    points_of_no_return: list[str] = field(default_factory=list)

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
            "rollback_plan": [
                {k: getattr(e, k) for k in RollbackEntry.__dataclass_fields__}
                for e in self.rollback_plan
            ],
            "points_of_no_return": self.points_of_no_return,
        }


def _environment(rb: Runbook, values: dict[str, Any]) -> str:
    try:
        return release_environment(rb, values)
    except ShipError:
        return ""


def _skipped(when: str | None, context: dict[str, Any]) -> str | None:
    """The reason a step will be skipped, if its condition reads only what the plan knows
    (the parameters) and is false; None when it will run or the plan cannot tell yet."""
    if when is None:
        return None
    try:
        holds = condition_holds(when, context)
    except ShipError:
        return None  # it reads outputs of earlier steps: decided when the release runs
    if holds:
        return None
    shown = {k: v for k, v in context.items() if k in when and k not in CONTEXT_ROOTS}
    values = ", ".join(f"{k}={v}" for k, v in shown.items())
    return skip_reason(when) + (f" ({values})" if values else "")


def _describe(
    registry: Registry,
    action_name: str,
    raw: dict[str, Any],
    context: dict[str, Any],
    pctx: PlanContext,
) -> tuple[str, bool, bool]:
    action = registry.get(action_name)
    try:
        rendered = render_params(raw, context, shell_fields=action.shell_params)
    except ShipError:
        rendered = raw  # refers to outputs of earlier steps: show the template itself
    try:
        text = action.describe(action.parse_params(rendered), pctx)
    except ValueError:
        try:
            text = action.describe(action.parse_params(raw), pctx)
        except ValueError:  # a typed parameter filled in only when the release runs
            text = f"{action_name} (its parameters are filled in when the release runs)"
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
        environment=_environment(rb, values),
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
                when=step.when,
                skipped=_skipped(step.when, context),
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
    return ReleasePlan(
        runbook=rb,
        values=values,
        steps=planned,
        rollback=rollback,
        rollback_plan=describe_rollback(rb, registry, values, None, workdir=workdir),
        points_of_no_return=[s for s in rb.contract_migrations if rb.steps[s].undo is None],
    )


def _ran(results: dict[str, dict[str, Any]] | None, sid: str) -> bool:
    return results is None or results.get(sid, {}).get("status") == "succeeded"


def rollback_plan(
    rb: Runbook, results: dict[str, dict[str, Any]]
) -> list[tuple[str, str, dict[str, Any], float]]:
    """What a rollback runs: the undo of every succeeded step that has one, in reverse
    dependency order, then the runbook's rollback steps. Steps that never ran are skipped.
    (The ``rollback_validation`` steps run after these.)"""
    plan: list[tuple[str, str, dict[str, Any], float]] = []
    for sid in reversed(rb.topological_order()):
        step = rb.steps[sid]
        if step.undo is not None and _ran(results, sid):
            plan.append(
                (
                    f"undo-{sid}",
                    step.undo.action,
                    dict(step.undo.with_),
                    step.undo.timeout or rb.defaults.timeout,
                )
            )
    for step in rb.rollback:
        plan.append((step.id, step.action, dict(step.with_), rb.effective_timeout(step)))
    return plan


def points_of_no_return(rb: Runbook, results: dict[str, dict[str, Any]]) -> list[str]:
    """Contract migrations that ran and applied something, with no ``undo`` to restore the
    schema: after them, rolling the app back breaks the previous version. An expand step
    that applied contract migrations (on a database with nothing applied, everything runs
    in version order) is one too."""
    passed = []
    for sid, step in rb.steps.items():
        result = results.get(sid, {})
        outputs = result.get("outputs", {})
        if sid in rb.contract_migrations:
            if result.get("status") != "succeeded" or outputs.get("applied") == []:
                continue  # never ran, or dropped nothing
        elif step.action != "migrate" or not outputs.get("contract_applied"):
            continue
        if step.undo is None:
            passed.append(sid)
    return passed


def describe_rollback(
    rb: Runbook,
    registry: Registry,
    values: dict[str, Any],
    results: dict[str, dict[str, Any]] | None,
    *,
    workdir: Path | None = None,
) -> list[RollbackEntry]:
    """The rollback plan as people read it: for each forward step that changed something
    (and ran, when ``results`` says what ran), the step that undoes it, or a flag that
    nothing does; then the rollback steps and the validation run after them."""
    release_info = ReleaseInfo(id="(planned)", started_by="", environment=_environment(rb, values))
    outputs = {sid: dict(r.get("outputs", {})) for sid, r in (results or {}).items()}
    context = build_context(rb, values, release_info, outputs)
    pctx = PlanContext(release_values=values, workdir=workdir or Path.cwd())
    entries: list[RollbackEntry] = []
    for sid in reversed(rb.topological_order()):
        step = rb.steps[sid]
        if not _ran(results, sid):
            continue
        if step.undo is not None:
            text = _describe(registry, step.undo.action, dict(step.undo.with_), context, pctx)[0]
            entries.append(RollbackEntry(f"undo-{sid}", "undo", sid, step.undo.action, text))
        elif registry.get(step.action).changes_world:
            entries.append(
                RollbackEntry(
                    f"undo-{sid}",
                    "no_undo",
                    sid,
                    step.action,
                    f"{sid} ({step.action}) changes something and has no undo of its own"
                    + (" (point of no return)" if sid in rb.contract_migrations else ""),
                )
            )
    for step in rb.rollback:
        text = _describe(registry, step.action, dict(step.with_), context, pctx)[0]
        entries.append(RollbackEntry(step.id, "rollback", None, step.action, text))
    for sid in rb.rollback_validation:
        step = rb.steps[sid]
        text = _describe(registry, step.action, dict(step.with_), context, pctx)[0]
        entries.append(RollbackEntry(f"validate-{sid}", "validate", sid, step.action, text))
    return entries
