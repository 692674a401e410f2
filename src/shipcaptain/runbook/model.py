"""The runbook model: what a release is, as frozen pydantic models.

Pure data: no I/O, no drivers. Loading from YAML with file/line errors lives in
``loader``; checks that need the action registry (action types, their parameters) live
in ``checks``. The JSON Schema of the format is generated from these classes
(``shipcaptain schema``), never written by hand.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shipcaptain.runbook.durations import Duration
from shipcaptain.runbook.outline import (
    OutlineStep,
    dependencies,
    outline,
    phase_after,
    topological_order,
)

Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$", max_length=64),
    Field(
        description="Lower-case identifier: letters, digits, '_' and '-', starting with a letter."
    ),
]

API_VERSION: Literal["shipcaptain/v1"] = "shipcaptain/v1"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class FailurePolicy(StrEnum):
    """What a step's failure does to the release."""

    HALT = "halt"  # no new step starts; the release ends failed (resumable)
    ROLLBACK = "rollback"  # halt, then run the runbook's rollback plan
    CONTINUE = (
        "continue"  # tolerate it: recorded and shown, and the release goes on as if it passed
    )


class SourceRef(Frozen):
    """Where a step came from in a Markdown runbook (set by the importer)."""

    file: str | None = None
    line: int | None = Field(default=None, ge=1)


class Role(Frozen):
    """A role of the runbook: who may own, approve or confirm steps."""

    title: str = Field(description="Human name of the role, e.g. 'Release Captain'.")
    description: str = ""
    members: list[str] = Field(
        default_factory=list,
        description="Narrows the role to these people (user names): of those the team file "
        "gives it to, only these hold it; it never grants the role. Empty: everyone the team "
        "gives it to (without a team: anyone).",
    )
    surfaces: list[str] = Field(
        default_factory=list,
        description="For feature owners: the product surfaces they own (e.g. 'billing').",
    )
    responsibilities: list[str] = Field(default_factory=list)


class Parameter(Frozen):
    """A value given when a release starts (``--param version=1.4.0``)."""

    description: str = ""
    type: Literal["string", "integer", "boolean"] = "string"
    required: bool = False
    default: str | int | bool | None = None
    choices: list[str | int] | None = None
    pattern: str | None = Field(
        default=None, description="Regular expression the value must match."
    )

    @model_validator(mode="after")
    def _pattern_compiles(self) -> Parameter:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return self


class Retry(Frozen):
    """How often and how patiently a failed step is tried again."""

    attempts: int = Field(default=1, ge=1, le=100, description="Total tries, including the first.")
    backoff: Duration = Field(default=5.0, description="Wait before the second try.")
    factor: float = Field(
        default=2.0, ge=1.0, description="Each further wait is multiplied by this."
    )
    max_backoff: Duration = Field(default=300.0, description="Upper bound of one wait.")

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before try number ``attempt`` (2 is the first retry)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_backoff, self.backoff * self.factor ** (attempt - 2)))


class ActionCall(Frozen):
    """An action with its parameters, used by guards' checks and rollback undo steps."""

    action: str = Field(description="Action type, e.g. 'shell' or 'http'.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    timeout: Duration | None = None


class Guard(Frozen):
    """A named condition that must hold before a step that lists it may start.

    ``after_steps`` makes the listed steps dependencies and requires them to have
    succeeded. ``check`` is an action run right before the guarded step; it is tried
    every ``every`` until it passes or ``within`` runs out, then the guarded step fails.
    """

    description: str = ""
    after_steps: list[Identifier] = Field(default_factory=list)
    check: ActionCall | None = None
    within: Duration = Field(
        default=0.0, description="How long to keep re-checking before failing."
    )
    every: Duration = Field(default=10.0, description="Pause between two checks.")

    @model_validator(mode="after")
    def _something_to_check(self) -> Guard:
        if not self.after_steps and self.check is None:
            raise ValueError("a guard needs 'after_steps', 'check' or both")
        return self


class Step(Frozen):
    """One thing a release does: an action with parameters, placed in the DAG."""

    id: Identifier
    title: str = ""
    description: str = ""
    action: str = Field(description="Action type (see `shipcaptain actions`).")
    with_: dict[str, Any] = Field(
        default_factory=dict,
        alias="with",
        description="The action's parameters. Text may use {{ version }} and other release values.",
    )
    needs: list[Identifier] = Field(
        default_factory=list, description="Steps that must finish successfully before this one."
    )
    guards: list[Identifier] = Field(
        default_factory=list, description="Named guards that must hold before this step starts."
    )
    owner: Identifier | None = Field(default=None, description="Role that owns this step.")
    timeout: Duration | None = Field(default=None, description="Limit for one try of the step.")
    retry: Retry | None = None
    on_failure: FailurePolicy | None = None
    undo: ActionCall | None = Field(
        default=None, description="How to undo this step if the release rolls back."
    )
    when: str | None = Field(
        default=None,
        description="Run the step only if this condition holds: a Jinja expression over the "
        "parameters and the outputs of earlier steps, e.g. `environment == 'production'` or "
        "`steps.changelog.migrations`. False skips the step (recorded with the reason); the "
        "steps after it run as if it had succeeded. For the runbook's 'if applicable' items.",
    )
    source: SourceRef | None = None

    @property
    def label(self) -> str:
        return self.title or self.id


class Phase(Frozen):
    """A group of steps (pre-flight, migrations, rollout ...), run after the phases in ``after``."""

    id: Identifier
    title: str = ""
    description: str = ""
    after: list[Identifier] | None = Field(
        default=None,
        description="Phases whose steps must all finish first. Default: the phase before this one.",
    )
    steps: list[Step] = Field(min_length=1)


class Sla(Frozen):
    """Response times for an incident severity."""

    description: str = ""
    acknowledge: Duration
    mitigate: Duration


class Comms(Frozen):
    """Where release announcements go and what they say."""

    channel: str | None = Field(default=None, description="Release channel, e.g. '#releases'.")
    expected_duration: Duration | None = None
    smoke_tests: list[Identifier] | None = Field(
        default=None,
        description="Steps whose success counts as a smoke test passed "
        "(release.smoke_tests_passed). Default: every smoke and health step.",
    )
    templates: dict[Identifier, str] = Field(
        default_factory=dict,
        description="Message templates by name, Jinja syntax. The engine sends 'start' "
        "(when the deploy begins), 'failed' (a halted release, with release.reason and "
        "release.url), 'rollback' and 'complete' (at the end, unless an announce step sends "
        "it); any template can be sent by an announce step.",
    )
    start_after: list[Identifier] | None = Field(
        default=None,
        description="Phases that must pass before the start message is sent (the deploy "
        "begins after them). Default: the phase 'preflight' if there is one, else none.",
    )


class IncidentRules(Frozen):
    """When a release opens an incident by itself, and whose it is."""

    customer_facing: list[str] = Field(
        default_factory=lambda: ["production"],
        description="Environments customers use: a failed post-deploy check there opens an "
        "incident.",
    )
    post_deploy_phases: list[Identifier] = Field(
        default_factory=lambda: ["post_deploy"],
        description="Phases whose failed steps count as failed post-deploy checks.",
    )
    severity: str = Field(
        default="P1",
        description="Severity of the incident a failed post-deploy check opens (a key of slas).",
    )
    owners: list[Identifier] = Field(
        default_factory=list,
        description="Roles whose members own incidents: reminded before each SLA deadline.",
    )


class Defaults(Frozen):
    """Step settings used where a step does not set its own."""

    timeout: Duration = 1800.0
    retry: Retry = Field(default_factory=Retry)
    on_failure: FailurePolicy = FailurePolicy.HALT


class Runbook(Frozen):
    """A whole runbook: roles, parameters, phases of steps, rollback plan, SLAs and comms."""

    api_version: Literal["shipcaptain/v1"] = Field(default=API_VERSION, alias="apiVersion")
    name: Identifier
    title: str = ""
    description: str = ""
    environment: str | None = Field(
        default=None,
        description="The release's environment: a name (`production`) or a template over "
        "the parameters (`{{ env }}`). The lock of `exclusive_environments`, the team's roles "
        "and permissions per environment and the incident rules follow it. Not set: every "
        "release is in the environment `default`; a parameter's name never decides it.",
    )
    roles: dict[Identifier, Role] = Field(default_factory=dict)
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    guards: dict[Identifier, Guard] = Field(default_factory=dict)
    phases: list[Phase] = Field(min_length=1)
    rollback: list[Step] = Field(
        default_factory=list,
        description="Steps run in order when the release rolls back (after each step's own undo).",
    )
    rollback_validation: list[Identifier] = Field(
        default_factory=list,
        description="Forward steps (health, smoke, metrics ...) run again after a rollback "
        "to show the previous version is healthy; a failure fails the rollback.",
    )
    slas: dict[str, Sla] = Field(default_factory=dict)
    comms: Comms = Field(default_factory=Comms)
    incidents: IncidentRules = Field(default_factory=IncidentRules)
    exclusive_environments: list[str] = Field(
        default_factory=lambda: ["production"],
        description="Environments where one release of this runbook (the service, by its "
        "name) runs at a time; the others wait their turn in the order they were started. "
        "Releases to other environments run in parallel.",
    )

    # ---- derived views (no validation here: see shipcaptain.runbook.checks) ----

    @cached_property
    def steps(self) -> dict[str, Step]:
        """Every forward step by id, in file order."""
        return {s.id: s for p in self.phases for s in p.steps}

    @cached_property
    def contract_migrations(self) -> list[str]:
        """Steps that apply breaking (contract) migrations: the point of no return."""
        return [
            s.id
            for s in self.steps.values()
            if s.action == "migrate" and s.with_.get("phase") == "contract"
        ]

    @cached_property
    def phase_of(self) -> dict[str, str]:
        return {s.id: p.id for p in self.phases for s in p.steps}

    def phase_after(self, index: int) -> list[str]:
        return phase_after(self.phases, index)

    @cached_property
    def dependencies(self) -> dict[str, list[str]]:
        """Every step's effective dependencies: its ``needs``, its guards' ``after_steps``,
        and every step of the phases its phase runs after. Unknown ids are kept (checks
        report them)."""
        return dependencies(self.phases, self.guards)

    def topological_order(self) -> list[str]:
        """Step ids in an order where every step comes after its dependencies; file order
        breaks ties so the order is stable. Raises ValueError on a cycle."""
        return topological_order(self.steps, self.dependencies)

    def outline(self) -> list[OutlineStep]:
        """The steps in the order they run, with their phases, labels, actions and
        dependencies (what ``release show`` lists)."""
        labels = {sid: (s.label, s.action) for sid, s in self.steps.items()}
        return outline(self.phases, self.guards, labels)

    def effective_timeout(self, step: Step) -> float:
        return step.timeout if step.timeout is not None else self.defaults.timeout

    def effective_retry(self, step: Step) -> Retry:
        return step.retry or self.defaults.retry

    def effective_on_failure(self, step: Step) -> FailurePolicy:
        return step.on_failure or self.defaults.on_failure
