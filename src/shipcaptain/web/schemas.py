"""The REST API's request and response bodies. The OpenAPI document is generated from these
(docs/reference/api.json); a test checks it is current."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shipcaptain.client import ResumeAction


class Body(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Out(BaseModel):
    """A response body, built from the CLI's JSON renderings (``cli.render``): what is not
    declared here (the runbook text, the working directory) is left out."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ErrorDetail(Out):
    code: str = Field(description="Stable error code, e.g. SC300 (see docs/reference/cli.md)")
    message: str
    field: str | None = Field(default=None, description="The field the error is about, if any")


class ErrorOut(Out):
    """Every error answer has this shape."""

    error: ErrorDetail


class Release(Out):
    id: str
    runbook_name: str
    runbook_digest: str
    runbook_path: str | None
    environment: str
    started_by: str
    params: dict[str, Any]
    status: str
    run: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    reason: str | None
    executor_id: str | None


class Step(Out):
    id: str
    phase: str
    title: str
    action: str
    needs: list[str]
    status: str
    run: int | None = None
    attempt: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = ""
    detail: str = ""
    outputs: dict[str, Any] = Field(default_factory=dict)
    already_done: bool = False


class Gate(Out):
    step_id: str
    run: int
    kind: str
    prompt: str
    roles: list[str]
    people: list[str]
    quorum: int
    deadline_at: datetime | None
    evidence: dict[str, Any]
    status: str
    opened_at: datetime
    closed_at: datetime | None


class Event(Out):
    seq: int
    at: datetime
    release_id: str | None
    step_id: str | None
    kind: str
    actor: str
    message: str
    data: dict[str, Any]
    hash: str


class AuditCheck(Out):
    """The audit chain verified: each event carries the hash of the one before it."""

    ok: bool
    events_checked: int
    broken_seq: int | None = Field(description="the first event where the chain breaks")
    reason: str | None


class ReleaseDetail(Out):
    release: Release
    steps: list[Step]
    gates: list[Gate]
    events: list[Event]


class ReleaseStatus(Out):
    """A release's status at a glance: cheap to poll."""

    id: str
    status: str
    run: int
    reason: str | None
    steps: dict[str, str] = Field(description="step id -> status of its latest try")
    waiting: list[str] = Field(description="gates of the current run waiting for people")


class RunbookText(Out):
    name: str
    digest: str
    text: str


class StartRelease(Body):
    """Start a release from a runbook file on the server (``runbook_path``, inside the
    server's runbook directory) or from the YAML itself (``runbook_yaml``): one of the two."""

    runbook_path: str | None = None
    runbook_yaml: str | None = Field(default=None, max_length=1_000_000)
    params: dict[str, str] = Field(default_factory=dict)


class Decision(Body):
    comment: str = Field(default="", max_length=10_000)
    role: str | None = Field(default=None, description="The role you act in, if you hold several")


class DecisionOut(Out):
    release: str
    step: str
    decision: str
    user: str
    state: str = Field(description="recorded, or sent (no engine has picked it up yet)")


class Cancel(Body):
    reason: str = Field(min_length=1, max_length=10_000)


class Resumed(Out):
    id: str
    kind: str = Field(description="new_run or take_over")
    run: int
    reason: str

    @classmethod
    def of(cls, release_id: str, a: ResumeAction) -> Resumed:
        return cls(id=release_id, kind=a.kind, run=a.run, reason=a.reason)


class Worker(Out):
    executor_id: str
    pid: int
    hostname: str
    kind: str
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    silent_for_s: float
    releases: list[str]


class Me(Out):
    name: str


class Token(Out):
    """An API token as `token list --json` shows it: never its secret."""

    id: str
    person: str
    label: str
    state: str = Field(description="active, expired or revoked")
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class Rollback(Body):
    """Roll a release back (like `release rollback`): an on-call SRE other than you approves
    it; past the point of no return, name a forward fix or a restore procedure."""

    reason: str = Field(min_length=1, max_length=10_000)
    forward_fix: str | None = Field(default=None, max_length=10_000)
    restore_procedure: str | None = Field(default=None, max_length=10_000)


class RollbackStep(Out):
    key: str = Field(
        description="the rollback's own step: undo-<step>, a rollback step, or validate-<step>"
    )
    kind: str = Field(description="undo, rollback, validate, or no_undo (nothing undoes it)")
    step: str | None = Field(description="the forward step it undoes or validates again")
    action: str
    description: str


class RollbackPlan(Out):
    """What a rollback of the release would run now, given what ran (like `release rollback
    --dry-run`), and the steps past the point of no return."""

    release: str
    plan: list[RollbackStep]
    points_of_no_return: list[str]


class RollbackOut(Out):
    id: str
    run: int | None = Field(description="the rollback's run; null when a forward fix was chosen")
    status: str = Field(description="queued (waits for its approval), or forward_fix")
    approve_with: str | None = Field(description="the gate an on-call SRE approves")


class Incident(Out):
    """An incident with its SLA deadlines and who did what when."""

    id: str
    release_id: str | None
    severity: str
    summary: str
    status: str
    owners: list[str]
    opened_by: str
    opened_at: str
    acknowledge_by: str
    mitigate_by: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    mitigated_at: str | None
    mitigated_by: str | None
    mitigation: str | None
    resolved_at: str | None
    resolved_by: str | None
    clocks: str = Field(description="where each SLA clock stands, in words")


class OpenIncident(Body):
    severity: str = Field(
        min_length=1, max_length=20, description="a severity of the SLA table, e.g. P1"
    )
    summary: str = Field(min_length=1, max_length=10_000)
    release: str | None = Field(default=None, description="the release it comes from")


class IncidentNote(Body):
    note: str | None = Field(default=None, max_length=10_000)
