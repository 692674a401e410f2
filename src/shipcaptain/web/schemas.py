"""The REST API's request and response bodies. The OpenAPI document is generated from these
(docs/reference/api.json); a test checks it is current.

A response that answers with a record (a release, a gate, an event, a worker, a token, an
incident, a person) is built from the record's dataclass by :func:`model_of`: its fields,
types and descriptions come from ``shipcaptain.records``, never written again here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, StrictBool, create_model

from shipcaptain import records
from shipcaptain.client import ReleaseView, ResumeAction
from shipcaptain.codec import (
    EVENT_HIDDEN,
    RELEASE_HIDDEN,
    STEP_FIELDS,
    STEP_TRY_HIDDEN,
    view_dict,
)
from shipcaptain.records import DecisionRecord, IncidentRecord, NotificationRecord


class Body(BaseModel):
    """A request body: unknown fields are refused, and a value of another JSON type than
    the field's (``true`` for a number of seconds, ``1`` for a flag) is refused, not
    converted (pydantic's lax mode made ``"expires_in_s": true`` a token of one second)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Out(BaseModel):
    """A response body, validated from the same documents ``--json`` prints
    (``shipcaptain.codec``): what is not declared here (the runbook text, the working
    directory) is left out."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def _published(tp: Any, text_times: bool) -> Any:
    """A field's type as the API publishes it: a status (a ``Literal``) as a string, so a
    status added later does not break a client generated from the schema; with
    ``text_times``, a time as the ISO text the answer carries."""
    if get_origin(tp) is Literal:
        return str
    if text_times and tp is datetime:
        return str
    args = get_args(tp)
    if type(None) in args and len(args) == 2:
        inner = next(a for a in args if a is not type(None))
        return _published(inner, text_times) | None
    return tp


def model_of(
    record: type,
    name: str,
    doc: str | None = None,
    *,
    exclude: Collection[str] = (),
    defaults: Collection[str] = (),
    optional: Collection[str] = (),
    text_times: bool = False,
    first: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    order: Collection[str] = (),
) -> type[Out]:
    """The response model ``name`` of a record: its fields (less ``exclude``), each with
    the record's type and its ``doc`` as the description. An answer carries every field:
    each is required, but for those named in ``defaults`` (the record's default) and in
    ``optional`` (null when there is none). ``first`` and ``extra`` are fields of the
    answer that are not the record's (pydantic's ``(type, default)`` pairs), before and
    after the record's; the fields named in ``order`` come first, in that order."""
    hints = get_type_hints(record)
    fields: dict[str, Any] = dict(first or {})
    for f in dataclasses.fields(record):
        if f.name in exclude:
            continue
        tp = _published(hints[f.name], text_times)
        info: dict[str, Any] = {"description": f.metadata.get("doc")}
        if f.name in optional:
            tp, info["default"] = tp | None, None
        elif f.name in defaults and f.default is not dataclasses.MISSING:
            info["default"] = f.default
        elif f.name in defaults and f.default_factory is not dataclasses.MISSING:
            info["default_factory"] = f.default_factory
        fields[f.name] = (tp, Field(**info))
    fields.update(extra or {})
    fields = {name: fields[name] for name in (*order, *fields) if name in fields}
    model: type[Out] = create_model(name, __base__=Out, __doc__=doc, **fields)
    return model


class ErrorDetail(Out):
    code: str = Field(description="Stable error code, e.g. SC300 (see docs/reference/cli.md)")
    message: str
    field: str | None = Field(default=None, description="The field the error is about, if any")


class ErrorOut(Out):
    """Every error answer has this shape."""

    error: ErrorDetail


if TYPE_CHECKING:  # the type checker sees response models; they are made below
    Release: TypeAlias = Out
    Step: TypeAlias = Out
    Gate: TypeAlias = Out
    Event: TypeAlias = Out
    AuditCheck: TypeAlias = Out
    Worker: TypeAlias = Out
    Token: TypeAlias = Out
    TokenCreated: TypeAlias = Out
    Incident: TypeAlias = Out
    TeamPerson: TypeAlias = Out
    EngineHealth: TypeAlias = Out
    ReleaseStatus: TypeAlias = Out
    GateStanding: TypeAlias = Out
    RunbookRule: TypeAlias = Out
else:
    # the runbook text and the working directory stay on the server
    Release = model_of(
        records.ReleaseRecord,
        "Release",
        exclude=RELEASE_HIDDEN,
        defaults=("queued_for_worker",),
    )
    #: a step of the runbook with its newest try (the try's fields are null before it runs)
    Step = model_of(
        records.StepRunRecord,
        "Step",
        exclude=STEP_TRY_HIDDEN,
        optional=("run", "attempt"),
        defaults=("started_at", "ended_at", "summary", "detail", "outputs", "already_done"),
        first={name: (list[str] if name == "needs" else str, ...) for name in STEP_FIELDS},
    )
    Gate = model_of(records.GateRecord, "Gate")
    Event = model_of(records.EventRecord, "Event", exclude=EVENT_HIDDEN)
    AuditCheck = model_of(
        records.AuditCheck,
        "AuditCheck",
        "The audit log verified: each event carries the hash of the one before it and a "
        "MAC\nmade with the audit key; the signed checkpoints of the anchor file hold.",
        defaults=("anchors_checked", "anchored", "broken_anchor", "keyed"),
    )
    Worker = model_of(
        records.WorkerRecord,
        "Worker",
        extra={"alive": (bool, ...), "silent_for_s": (float, ...), "releases": (list[str], ...)},
    )
    Token = model_of(
        records.TokenRecord,
        "Token",
        "An API token as `token list --json` shows it: never its secret.",
        exclude=("secret_hash",),
        extra={"state": (str, Field(description="active, expired or revoked"))},
        order=("id", "person", "label", "state"),
    )
    TokenCreated = create_model(
        "TokenCreated",
        __base__=Token,
        token=(str, Field(description="the secret: shown in this answer only")),
    )
    Incident = model_of(
        records.IncidentRecord,
        "Incident",
        "An incident with its SLA deadlines and who did what when.",
        text_times=True,
        extra={"clocks": (str, Field(description="where each SLA clock stands, in words"))},
    )
    #: the team file's view of a person (no e-mail address or Slack id)
    TeamPerson = model_of(records.Person, "TeamPerson", exclude=("email", "slack_id"))
    EngineHealth = model_of(
        records.EngineHealth,
        "EngineHealth",
        "Whether anybody runs the release (the same as ``engine`` in ``release show --json``).",
    )
    ReleaseStatus = model_of(
        records.ReleaseProgress, "ReleaseStatus", "A release's status at a glance: cheap to poll."
    )
    GateStanding = model_of(
        records.GateStanding,
        "GateStanding",
        "A waiting gate as you stand before it: your parts, why you may not decide it, who may.",
    )
    RunbookRule = model_of(
        records.RunbookRule,
        "RunbookRule",
        "An entry of the allow-list: in ``environment``, the runbook whose text has the sha256 "
        "``value`` (``kind`` digest) or any runbook named ``value`` (``kind`` name).",
    )


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
        return cls.model_validate(view_dict(view))


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


class Me(Out):
    name: str


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


class OpenIncident(Body):
    severity: str = Field(
        min_length=1, max_length=20, description="a severity of the SLA table, e.g. P1"
    )
    summary: str = Field(min_length=1, max_length=10_000)
    release: str | None = Field(default=None, description="the release it comes from")


class IncidentNote(Body):
    note: str | None = Field(default=None, max_length=10_000)


class PermissionRow(Out):
    action: str
    environment: str
    roles: list[str]


class Team(Out):
    """The team and the permissions in force (like `team show --json`)."""

    people: list[TeamPerson]
    permissions: list[PermissionRow]


class EnvironmentRule(Out):
    protected: bool = Field(description="only the runbooks on its list may run there")


class RunbookPolicy(Out):
    """Which runbooks may run where (like `team runbooks list --json`): every environment
    the team file or the list names, and production."""

    environments: dict[str, EnvironmentRule]
    runbooks: list[RunbookRule]


class WaitingGate(Out):
    """A gate you may decide and have not yet, with its release."""

    release: Release
    gate: Gate


class AuditHead(Out):
    seq: int = Field(description="the newest audit event's number (0: none yet)")


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
