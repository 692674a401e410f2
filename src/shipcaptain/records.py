"""shipcaptain's records: releases, step runs, gates, decisions, audit events, workers,
people, tokens, incidents and notifications, each defined once.

Records are frozen dataclasses (plain data, no I/O, nothing imported beyond the standard
library, so a read-only command stays cheap to start). Everything else is derived from
them: the store decodes its rows into them, the API's response models are built from their
fields (``web/schemas.py``), ``--json`` prints them through one serializer and the remote
client decodes the API's answers with the same decoder as the store (``shipcaptain.codec``).
A field's ``doc`` metadata (:func:`doc`) is its description in the API reference.

Timestamps are timezone-aware and normalised to UTC when a record is made; a naive
datetime is a bug in the caller and is refused. Status fields are checked against the
known values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

JsonObject = dict[str, Any]


def doc(text: str) -> dict[str, str]:
    """A field's metadata with its description (what the API reference says about it):
    ``field(metadata=doc("..."))``."""
    return {"doc": text}


ReleaseStatus = Literal[
    "pending",
    "running",
    "waiting",
    "failing",
    "succeeded",
    "failed",
    "cancelled",
    "rolling_back",
    "rolled_back",
]
StepStatus = Literal[
    "pending", "running", "waiting", "succeeded", "failed", "skipped", "cancelled", "timed_out"
]
GateStatus = Literal["waiting", "approved", "rejected", "timed_out", "cancelled"]

RELEASE_STATUSES: tuple[str, ...] = get_args(ReleaseStatus)
STEP_STATUSES: tuple[str, ...] = get_args(StepStatus)
GATE_STATUSES: tuple[str, ...] = get_args(GateStatus)

#: A step run in one of these states is finished; a replayed write never moves it back.
FINISHED_STEP_STATUSES: tuple[str, ...] = (
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "timed_out",
)
#: A gate in one of these states is closed.
CLOSED_GATE_STATUSES: tuple[str, ...] = ("approved", "rejected", "timed_out", "cancelled")
INCIDENT_STATUSES = ("open", "acknowledged", "mitigated", "resolved")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_release_id() -> str:
    """A fresh release id: short enough to type, random enough not to collide."""
    import secrets  # here: a command that only reads records never needs it (issue 27)

    return "rel-" + secrets.token_hex(8)


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _normalise(record: object, *names: str) -> None:
    for name in names:
        value = _utc(getattr(record, name), name)
        object.__setattr__(record, name, value)


def _check_status(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} status {value!r} (expected one of {', '.join(allowed)})")


@dataclass(frozen=True, kw_only=True)
class ReleaseRecord:
    """One release: a runbook run against an environment with parameters."""

    id: str = field(default_factory=new_release_id)
    runbook_name: str
    runbook_digest: str
    runbook_text: str
    runbook_path: str | None = None
    workdir: str | None = None
    environment: str
    started_by: str
    params: JsonObject = field(default_factory=dict)
    status: ReleaseStatus = "pending"
    run: int = 1
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str | None = None
    executor_id: str | None = None
    #: a worker took it over from a stopped one and it waits on the release queue for a
    #: worker with room (set by the client's reads, not stored: ``awaiting_pickup``)
    queued_for_worker: bool = False

    def __post_init__(self) -> None:
        _check_status(self.status, RELEASE_STATUSES, "release")
        _normalise(self, "created_at", "started_at", "ended_at")


@dataclass(frozen=True, kw_only=True)
class ReleaseFilter:
    """Which releases a list holds: newest first, of one status, environment, runbook and/or
    starter when given, ``limit`` of them after skipping the ``offset`` newest. Made once
    where a request comes in (``release list``'s options, ``GET /releases``'s query
    parameters, the dashboard's filters) and handed as it is through the session, the
    clients and the store; a bad value is refused here (:class:`UsageError`)."""

    # the names, order and defaults of GET /releases's query parameters (a test checks)
    status: str | None = None
    environment: str | None = None
    limit: int = 50
    runbook: str | None = None  # its name
    started_by: str | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        from shipcaptain.errors import UsageError

        if self.status is not None and self.status not in RELEASE_STATUSES:
            raise UsageError(
                f"unknown status {self.status!r}; one of: {', '.join(RELEASE_STATUSES)}"
            )
        if self.limit < 1:
            raise UsageError(f"the limit must be at least 1, not {self.limit}")
        if self.offset < 0:
            raise UsageError(f"the offset must be 0 or more, not {self.offset}")


@dataclass(frozen=True, kw_only=True)
class StepRunRecord:
    """One try (``attempt``) of a step in one run of a release."""

    release_id: str
    step_id: str
    run: int
    attempt: int
    status: StepStatus
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = ""
    detail: str = ""
    outputs: JsonObject = field(default_factory=dict)
    already_done: bool = False

    def __post_init__(self) -> None:
        _check_status(self.status, STEP_STATUSES, "step")
        _normalise(self, "started_at", "ended_at")


@dataclass(frozen=True, kw_only=True)
class GateRecord:
    """A step that waits for people (approval, checklist sign-off) in one run of a release."""

    release_id: str
    step_id: str
    run: int
    kind: str
    prompt: str
    roles: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    quorum: int = 1
    deadline_at: datetime | None = None
    evidence: JsonObject = field(default_factory=dict)
    status: GateStatus = "waiting"
    opened_at: datetime = field(default_factory=utcnow)
    closed_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_status(self.status, GATE_STATUSES, "gate")
        _normalise(self, "deadline_at", "opened_at", "closed_at")


@dataclass(frozen=True, kw_only=True)
class DecisionRecord:
    """One person's decision at a gate (approve, reject, sign off)."""

    release_id: str
    step_id: str
    run: int
    user: str
    decision: str
    role: str | None = None
    comment: str = ""
    at: datetime = field(default_factory=utcnow)
    evidence: JsonObject = field(default_factory=dict, hash=False)
    """What the gate showed the person when they decided."""

    def __post_init__(self) -> None:
        _normalise(self, "at")


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """One entry of the append-only, hash-chained audit log."""

    seq: int
    at: datetime
    release_id: str | None
    step_id: str | None
    kind: str
    actor: str
    message: str
    data: JsonObject
    prev_hash: str = field(metadata=doc("the hash of the event before it in the audit chain"))
    hash: str
    mac: str | None = None
    """HMAC of ``hash`` with the audit key (None: written before the chain was keyed)."""

    def __post_init__(self) -> None:
        _normalise(self, "at")

    @property
    def change(self) -> str:
        """The status change the event records (``running → succeeded``; ``new`` for no
        status before), or "" for an event that records none."""
        return status_change(self.data)


def status_change(data: Mapping[str, Any]) -> str:
    """``before → after`` from an event's data, or "" when it records no status after: a
    decision at a gate keeps only the status it was made in (``before``: waiting), as it
    changes none."""
    if "after" not in data:
        return ""
    before, after = data.get("before"), data.get("after")
    return f"{before or 'new'} → {after or '?'}"


@dataclass(frozen=True, kw_only=True)
class WorkerRecord:
    """A process that runs releases (or serves the UI), and when it last said it was alive."""

    executor_id: str
    pid: int
    hostname: str
    kind: str
    started_at: datetime
    heartbeat_at: datetime

    def __post_init__(self) -> None:
        _normalise(self, "started_at", "heartbeat_at")


@dataclass(frozen=True, kw_only=True)
class Person:
    """Someone on the team: their roles in each environment and the surfaces they own.

    ``roles`` maps an environment name, or ``"*"`` for every environment, to the roles the
    person holds there. ``admin`` people manage the team and other people's tokens.
    """

    name: str
    display_name: str = ""
    email: str = ""
    slack_id: str = ""  # Slack member id (U..., W...): comms mention them with <@id>
    roles: dict[str, tuple[str, ...]] = field(
        default_factory=dict, hash=False, metadata=doc("environment -> roles held there")
    )
    surfaces: tuple[str, ...] = ()
    admin: bool = False
    active: bool = True

    def roles_in(self, environment: str | None) -> tuple[str, ...]:
        """The roles held in ``environment`` (those of ``"*"`` included), without repeats;
        with no environment, every role held anywhere."""
        keys = list(self.roles) if environment is None else ["*", environment]
        found: list[str] = []
        for key in keys:
            for role in self.roles.get(key, ()):
                if role not in found:
                    found.append(role)
        return tuple(found)


@dataclass(frozen=True)
class RunbookRule:
    """One entry of the allow-list: in ``environment``, the runbook whose text has this
    sha256 ``digest`` (``kind="digest"``: that exact content), or any runbook called
    ``value`` (``kind="name"``: whoever may start a release chooses its content)."""

    environment: str
    kind: str  # "digest" or "name"
    value: str
    added_by: str = ""
    note: str = ""

    def matches(self, name: str, digest: str) -> bool:
        return self.value == (digest if self.kind == "digest" else name)

    def describe(self) -> str:
        return f"{self.kind} {self.value[:16] if self.kind == 'digest' else self.value}"


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    """An API token as stored: never the secret, only its hash."""

    id: str
    person: str
    label: str
    secret_hash: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def __post_init__(self) -> None:
        _normalise(self, "created_at", "expires_at", "revoked_at")

    def state(self, now: datetime | None = None) -> str:
        """``active``, ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"


@dataclass(frozen=True)
class AuditCheck:
    """The result of verifying the audit chain.

    ``ok`` is true when every event checked is intact. Otherwise ``broken_seq`` is the first
    sequence number where the chain breaks (a changed event, or the first missing one) and
    ``reason`` says why. A removed *tail* of the log cannot be seen from the chain alone:
    it shows against a signed checkpoint kept outside the database (an anchor).
    ``broken_anchor`` is the line of the first anchor that does not hold, ``anchored``
    how many events the newest anchor checked covers, ``keyed`` whether the events' MACs
    were checked.
    """

    ok: bool
    events_checked: int
    broken_seq: int | None = field(
        default=None, metadata=doc("the first event where the chain breaks")
    )
    reason: str | None = None
    anchors_checked: int = field(default=0, metadata=doc("signed checkpoints checked"))
    anchored: int = field(default=0, metadata=doc("events the newest checkpoint covers"))
    broken_anchor: int | None = field(
        default=None, metadata=doc("the line of the first checkpoint that does not hold")
    )
    keyed: bool = field(default=False, metadata=doc("whether each event's MAC was checked"))


@dataclass(frozen=True, kw_only=True)
class StepStart:
    """What the engine reads, in one transaction, before a step starts."""

    release: ReleaseRecord
    # the tries without their times and ``detail`` (see ``Store.step_start``)
    succeeded: StepRunRecord | None  # the step's newest successful try, in any run
    latest: dict[str, StepRunRecord] | None  # each step's newest try (None: not read)


@dataclass(frozen=True, kw_only=True)
class IncidentRecord:
    """An incident: severity, summary, its SLA deadlines and who did what when."""

    id: str
    release_id: str | None
    severity: str
    summary: str
    status: str
    owners: list[str]
    opened_by: str
    opened_at: datetime
    acknowledge_by: datetime
    mitigate_by: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    mitigated_at: datetime | None = None
    mitigated_by: str | None = None
    mitigation: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None

    @property
    def time_to_acknowledge(self) -> float | None:
        if self.acknowledged_at is None:
            return None
        return (self.acknowledged_at - self.opened_at).total_seconds()

    @property
    def time_to_mitigate(self) -> float | None:
        if self.mitigated_at is None:
            return None
        return (self.mitigated_at - self.opened_at).total_seconds()


def opened_within(
    incidents: list[IncidentRecord], since: datetime | None, until: datetime | None
) -> list[IncidentRecord]:
    """The incidents opened in ``[since, until)`` (either end open), in their order."""
    return [
        i
        for i in incidents
        if (since is None or i.opened_at >= since) and (until is None or i.opened_at < until)
    ]


@dataclass(frozen=True, kw_only=True)
class NotificationRecord:
    """A message sent to a channel (or given up on), never with a webhook's URL."""

    id: str
    release_id: str | None
    incident_id: str | None
    kind: str
    channel: str
    text: str
    status: str  # "sent" or "failed"
    attempts: int
    error: str | None
    at: datetime


EngineState = Literal["running", "stopped", "queued", "finished"]


@dataclass(frozen=True)
class EngineHealth:
    """Whether anybody runs a release: who runs it, whether that process is alive, and
    (``message``) what a person should know and do when nobody runs it; empty while all
    is well (the same as ``engine`` in ``release show --json``; worked out by
    :func:`shipcaptain.liveness.engine_health`)."""

    state: EngineState = field(
        metadata=doc(
            "stopped: the process running it sent no heartbeat within the takeover window; "
            "queued: no process has taken it yet"
        )
    )
    executor_id: str | None = field(metadata=doc("the engine process that runs it"))
    last_heartbeat_at: datetime | None = field(metadata=doc("that process's last heartbeat"))
    live_workers: list[str] = field(metadata=doc("the workers alive now (they take over)"))
    message: str = field(metadata=doc("what to know and do when nobody runs it; empty if fine"))

    def __post_init__(self) -> None:
        _normalise(self, "last_heartbeat_at")


@dataclass(frozen=True, kw_only=True)
class ReleaseProgress:
    """A release's status at a glance, cheap to poll: its status and run, each step's
    newest try's status and the gates of the run that wait for people."""

    id: str
    status: str
    run: int
    reason: str | None
    steps: dict[str, str] = field(metadata=doc("step id -> status of its latest try"))
    waiting: list[str] = field(metadata=doc("gates of the current run waiting for people"))


@dataclass(frozen=True, kw_only=True)
class GateStanding:
    """A waiting gate as one person stands before it: their own parts of a gate in parts,
    why they may not decide it ("" if they may) and everyone who may."""

    parts: list[Any] = field(metadata=doc("of a gate in parts, the parts that are yours"))
    why_not: str = field(metadata=doc("why you may not decide it; empty if you may"))
    deciders: list[str] = field(metadata=doc("everyone on the team who may decide it"))
