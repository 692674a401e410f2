"""The ``smoke_sign_off`` action: each feature owner validates the smoke results of the
surfaces they own, as ``changelog_sign_off`` does for the changelog.

Its ``results`` are a ``smoke`` step's ``by_surface`` output (passed through a template as
JSON: ``"{{ steps.smoke_api.by_surface | tojson }}"``): per surface, how many tests ran,
passed and which failed. The step opens one gate in parts, a part per surface, for the
people the team file gives that surface (holders of the ``owners`` role with it in their
``surfaces``). Each part needs one validation from its own owners: nobody validates a
surface they do not own, so a failed test is judged by the owner of its surface and by no
one else. Results of a surface nobody owns (and tests that matched no surface,
``unassigned``) go to the ``unassigned_to`` role. One rejection ends the step.

The split is recorded once, so a replay after a crash asks the same people.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, field_validator

from shipcaptain.actions.base import (
    ActionOutputs,
    ActionParams,
    DurableAction,
    DurableContext,
    GatePart,
    Outcome,
    PlanContext,
)
from shipcaptain.actions.changelog_sign_off import SurfaceOwnersParams, await_parts


class SurfaceResults(ActionParams):
    """One surface's smoke results (a ``smoke`` step's ``by_surface`` entry)."""

    tests: int = Field(default=0, ge=0, description="Tests of the surface that ran.")
    failed: list[str] = Field(default_factory=list, description="Its failed tests.")
    passed: int = Field(default=0, ge=0, description="Its passed tests.")


class SmokeSignOffParams(SurfaceOwnersParams):
    """Parameters of the ``smoke_sign_off`` action."""

    results: dict[str, SurfaceResults] = Field(
        description="Smoke results per surface: a smoke step's `by_surface`, written "
        '`"{{ steps.smoke_api.by_surface | tojson }}"`.'
    )
    item: str = Field(
        default="Validate the smoke results of the surfaces you own",
        description="The question put to each owner.",
    )

    @field_validator("results", mode="before")
    @classmethod
    def _from_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"results must be JSON (use `| tojson`): {exc}") from exc
        return value


class SmokeSignOffOutputs(ActionOutputs):
    """Outputs of the ``smoke_sign_off`` action."""

    parts: dict[str, list[str]] = Field(description="Each surface's part and who validates it.")
    failed_surfaces: list[str] = Field(description="Surfaces with failed tests.")
    validated_by: list[str] = Field(default_factory=list, description="Who validated.")


def _title(surface: str, result: SurfaceResults) -> str:
    shown = f"{surface}: {result.passed} of {result.tests} passed"
    if result.failed:
        names = ", ".join(result.failed[:5]) + (" ..." if len(result.failed) > 5 else "")
        shown += f", failed: {names}"
    return shown


def surface_parts(
    results: dict[str, SurfaceResults], owners: dict[str, list[str]], unassigned_to: str
) -> list[dict[str, Any]]:
    """A gate part per surface with results, for the people who own it (else the role)."""
    parts = []
    for surface, result in results.items():
        if result.tests == 0:
            continue
        people = sorted(name for name, surfaces in owners.items() if surface in surfaces)
        text = "\n".join([f"{result.passed} of {result.tests} passed", *result.failed])
        parts.append(
            GatePart(
                title=_title(surface, result),
                text=text,
                people=people,
                roles=[] if people else [unassigned_to],
            ).as_evidence()
        )
    return parts


class SmokeSignOffAction(DurableAction[SmokeSignOffParams]):
    """Have the owner of each surface validate its smoke results (one gate, a part per
    surface; a failed test's surface only by its own owners); results nobody owns go to
    ``unassigned_to``. Outputs: ``validated_by``, ``parts``, ``failed_surfaces``."""

    name = "smoke_sign_off"
    changes_world = False
    waits_for_people = True
    role_params = ("owners", "unassigned_to")
    summary = "Each feature owner validates the smoke results of the surfaces they own."
    Params = SmokeSignOffParams
    Outputs = SmokeSignOffOutputs

    def describe(self, params: SmokeSignOffParams, ctx: PlanContext) -> str:
        return (
            f"ask the {params.owners} of each surface to validate its smoke results; results "
            f"of surfaces nobody owns go to {params.unassigned_to}"
        )

    def run_durable(self, params: SmokeSignOffParams, ctx: DurableContext) -> Outcome:
        def split() -> dict[str, Any]:
            members = sorted(ctx.members(params.owners), key=lambda m: m.name)
            owners = {m.name: list(m.surfaces) for m in members if m.surfaces}
            return {"parts": surface_parts(params.results, owners, params.unassigned_to)}

        parts: list[dict[str, Any]] = ctx.record("smoke_split", split)["parts"]
        failed = [s for s, r in params.results.items() if r.failed]
        outputs: dict[str, Any] = {
            "parts": {p["title"]: p["people"] or [f"role {r}" for r in p["roles"]] for p in parts},
            "failed_surfaces": failed,
        }
        if not parts:
            return Outcome.failure("no smoke results to validate", outputs=outputs, retryable=False)
        ctx.progress(
            f"{len(parts)} surface(s) to validate: " + "; ".join(p["title"] for p in parts)
        )
        return await_parts(
            ctx, parts, params.item, params.timeout, {}, outputs, output="validated_by"
        )
