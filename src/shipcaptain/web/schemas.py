"""The REST API's request and response bodies. The OpenAPI document is generated from these
(docs/reference/api.json); a test checks it is current."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shipcaptain.client import ReleaseView, ResumeAction
from shipcaptain.store import DecisionRecord
from shipcaptain.store.incidents import IncidentRecord, NotificationRecord


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
    #: taken over by a worker and waiting on the release queue for a worker slot: queued,
    #: whatever ``status`` says, and nobody runs it yet
    queued_for_worker: bool = False


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
    release_id: str
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
    prev_hash: str = Field(description="the hash of the event before it in the audit chain")
    hash: str


class AuditCheck(Out):
    """The audit log verified: each event carries the hash of the one before it and a MAC
    made with the audit key; the signed checkpoints of the anchor file hold."""

    ok: bool
    events_checked: int
    broken_seq: int | None = Field(description="the first event where the chain breaks")
    reason: str | None
    anchors_checked: int = Field(0, description="signed checkpoints checked")
    anchored: int = Field(0, description="events the newest checkpoint covers")
    broken_anchor: int | None = Field(
        None, description="the line of the first checkpoint that does not hold"
    )
    keyed: bool = Field(False, description="whether each event's MAC was checked")


class Checkpoint(Out):
    """A signed checkpoint of the audit log (docs/reference/audit-format.md)."""

    format: str
    log: str = Field(description="hash of the log's first event")
    size: int = Field(description="events covered")
    head: str = Field(description="hash of the last event covered")
    at: str
    key_id: str
    release: str | None
    run: int | None


class Anchor(Out):
    """A checkpoint anchored: appended to the server's anchor file (and sent on)."""

    checkpoint: Checkpoint
    signature: str = Field(description="Ed25519 signature of the checkpoint, base64")
    written: bool = Field(description="false: the log had not grown since this checkpoint")
    file: str
    problems: list[str] = Field(description="what failed on the way out (Git, webhook)")


class EngineHealth(Out):
    """Whether anybody runs the release (the same as ``engine`` in ``release show --json``)."""

    state: Literal["running", "stopped", "queued", "finished"] = Field(
        description="stopped: the process running it sent no heartbeat within the takeover "
        "window; queued: no process has taken it yet"
    )
    executor_id: str | None
    last_heartbeat_at: datetime | None
    live_workers: list[str] = Field(description="the workers alive now (they take over)")
    message: str = Field(description="what to know and do when nobody runs it; empty if fine")


class ReleaseDetail(Out):
    """A release: the same document as `release show --json` (both are built by
    :meth:`of`). The runbook text and the working directory are left out."""

    release: Release
    steps: list[Step]
    gates: list[Gate]
    events: list[Event]
    # the store's own records: one definition each
    notifications: list[NotificationRecord]
    incidents: list[IncidentRecord]
    decisions: list[DecisionRecord]
    engine: EngineHealth | None = None

    @classmethod
    def of(cls, view: ReleaseView) -> ReleaseDetail:
        from shipcaptain.cli.render import view_dict

        return cls.model_validate(view_dict(view))


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


class TeamPerson(Out):
    name: str
    display_name: str
    roles: dict[str, list[str]] = Field(description="environment -> roles held there")
    surfaces: list[str]
    admin: bool
    active: bool


class PermissionRow(Out):
    action: str
    environment: str
    roles: list[str]


class Team(Out):
    """The team and the permissions in force (like `team show --json`)."""

    people: list[TeamPerson]
    permissions: list[PermissionRow]


class ApplyTeam(Body):
    """A team file's text (like `team apply FILE`); ``file`` is the name its mistakes and
    the audit log give it."""

    team_yaml: str = Field(max_length=1_000_000)
    file: str = Field(default="team.yaml", max_length=1000)


class TeamApplied(Out):
    people: list[str]
    admins: list[str]
    event: int = Field(description="the audit event that records the change")


class CreateToken(Body):
    person: str | None = Field(default=None, description="whose token [default: yours]")
    label: str = Field(default="", max_length=200)
    expires_in_s: float | None = Field(
        default=None, gt=0, le=100 * 366 * 86400, description="seconds [default: never]"
    )


class TokenCreated(Token):
    token: str = Field(description="the secret: shown in this answer only")


class Allowed(Out):
    """You may do ``action`` in ``environment``, in ``role``."""

    action: str
    environment: str
    person: str
    role: str | None


class MigrationRun(Body):
    """What a `migrations apply` outside a release did, for the audit log (it needs the
    migrations.apply permission in ``environment``)."""

    outcome: Literal["applied", "dry_run", "failed"]
    phase: Literal["expand", "contract"]
    directory: str = Field(max_length=4096)
    database: str = Field(max_length=4096, description="the database's URL, password masked")
    environment: str = Field(max_length=200)
    dry_run: StrictBool
    summary: str = Field(max_length=100_000)
    outputs: dict[str, Any] | None = Field(
        default=None, description="the migrate action's outputs (none when it could not run)"
    )


class Recorded(Out):
    event: int = Field(description="the audit event's seq")
