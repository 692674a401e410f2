"""The audit log's event catalogue: one class per kind of event.

Every writer of the audit log names its event's kind through a class here (``kind`` is
the text stored in the event), never through a string of its own; a unit test
(``tests/unit/test_events_catalogue.py``) fails on a writer that does. The event table of
the audit reference (``docs/reference/team-and-audit.md``) is generated from this module.

A :class:`StatusChange` records a change of status: the store appends it in the
transaction that writes the status, with its ``before`` and ``after`` (the status read
there) added to the event's ``data``. Other events change no status and carry neither.

A kind that adds no field of its own (all of them but :class:`StatusChange`) is a plain
subclass, not a ``@dataclass`` again: the dataclass methods of its family serve it as they
are, and :meth:`Event.__init_subclass__` keeps it frozen. The store imports this module, so
every command that reads the state database paid for 67 dataclasses made at import (~20 ms,
a fifth of ``release list``, issue 27); a class that adds a field must be a ``@dataclass``
(a unit test checks that).

This module imports nothing of shipcaptain: any layer may use it.
"""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError, asdict, dataclass
from typing import Any, ClassVar

#: Every event kind by its text (filled as the classes below are defined).
CATALOGUE: dict[str, type[Event]] = {}

#: The rows of the reference table, in order: the group of each event and what it records.
GROUPS: dict[str, str] = {
    "release": "a release created, and its status changes",
    "step": "a step's tries, results and notes",
    "gate": "gates: opened, decided, refused, closed",
    "rollback": "rollbacks and forward fixes",
    "refusal": "starts refused, the allow-list",
    "comms": "comms and notifications",
    "incident": "incidents",
    "people": "the team, tokens, dashboard sessions",
    "process": "engine processes, migrations outside a release",
    "audit": "anchoring",
}


def _declares_fields(cls: type) -> bool:
    """Whether ``cls`` annotates fields of its own (not only class variables): then it is
    a ``@dataclass`` of its own, which makes its frozen methods."""
    own = inspect.get_annotations(cls)
    return any(not str(hint).startswith(("ClassVar", "typing.ClassVar")) for hint in own.values())


def _assign(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _delete(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


@dataclass(frozen=True)
class Event:
    """A kind of audit event. ``kind`` is the text stored; ``data`` says what the event's
    ``data`` holds; ``group`` is its row group in the reference."""

    kind: ClassVar[str]
    group: ClassVar[str]
    data: ClassVar[str] = "(nothing)"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not _declares_fields(cls):  # frozen, as a @dataclass(frozen=True) of its own is
            cls.__setattr__ = _assign  # type: ignore[method-assign]
            cls.__delattr__ = _delete  # type: ignore[method-assign]
        kind = cls.__dict__.get("kind")
        if kind is None:
            return  # an abstract family (StatusChange, ReleaseChange, ...)
        if kind in CATALOGUE:
            raise TypeError(f"two event classes of kind {kind!r}")
        if cls.group not in GROUPS:
            raise TypeError(f"{cls.__name__}: unknown group {cls.group!r}")
        CATALOGUE[kind] = cls


@dataclass(frozen=True)
class StatusChange(Event):
    """An event that changes a status: ``before`` and ``after`` are that status, read in
    the transaction that writes it (``before`` is None when the thing is new)."""

    status_of: ClassVar[str]
    before: str | None
    after: str | None

    def status_data(self) -> dict[str, Any]:
        """What the event's ``data`` gets: ``before`` and ``after``."""
        return asdict(self)


# -- the release's status ----------------------------------------------------------------


class ReleaseChange(StatusChange):
    """A change of the release's status (``step_id`` is null)."""

    status_of = "the release (`step_id` is null)"
    group = "release"
    data = "`run`, `before`, `after`"


class ReleaseCreated(ReleaseChange):
    """A release created (``before`` is null)."""

    kind = "release.created"
    data = (
        "`params`, `runbook`, `runbook_digest`, `environment`, `steps` (each step's `id`, "
        "`phase`, `action`), `before` (null), `after`"
    )


class ReleaseRunning(ReleaseChange):
    """A run started, or no gate is open any more."""

    kind = "release.running"
    data = "`run` (none when the last open gate closed), `before`, `after`"


class ReleaseWaiting(ReleaseChange):
    """A gate opened on a running release."""

    kind = "release.waiting"
    data = "`before`, `after`"


class ReleaseFailing(ReleaseChange):
    """A step failed; the release goes on to its end (or its rollback)."""

    kind = "release.failing"


class ReleaseSucceeded(ReleaseChange):
    """The release finished: every step done."""

    kind = "release.succeeded"


class ReleaseFailed(ReleaseChange):
    """The release finished failed (the reason in ``message``)."""

    kind = "release.failed"


class ReleaseCancelled(ReleaseChange):
    """The release cancelled (by a person: the ``actor``)."""

    kind = "release.cancelled"


class ReleaseRolledBack(ReleaseChange):
    """The release rolled back."""

    kind = "release.rolled_back"


class ReleaseResumed(ReleaseChange):
    """A new run of a failed or cancelled release."""

    kind = "release.resumed"


class ReleaseQueued(ReleaseChange):
    """The release waits for its environment's lock (its status kept)."""

    kind = "release.queued"
    data = "`before` = `after`"


class ReleaseLockTaken(ReleaseChange):
    """The release took its environment's lock (its status kept)."""

    kind = "release.lock_taken"
    data = "`before` = `after`"


class ReleaseTakenOver(ReleaseChange):
    """A release whose process died taken over by another (its status kept)."""

    kind = "release.taken_over"
    data = (
        "`run`, `from` (the process gone), `to` (a worker that took it over: the release "
        "waits on the release queue until a worker has room), `handed` (true when `release "
        "start` in a terminal handed it to the workers while it waited at a gate; `to` is "
        "then `the release queue`), `before` = `after`"
    )


class ReleasePickedUp(ReleaseChange):
    """A release a worker took over left the release queue: a worker had room and runs it."""

    kind = "release.picked_up"
    data = "`run`, `by` (the worker that runs it now), `before` = `after`"


class RollbackRequested(ReleaseChange):
    """A person asked to roll the release back (it shows as rolling back)."""

    kind = "rollback.requested"
    group = "rollback"
    data = (
        "`run`, `reason`, `initiator`, `initiator_role`, `automatic`, `previous_status`, "
        "`requested_at` (and `restore_procedure`, `past`), `before`, `after`"
    )


class RollbackStarted(ReleaseChange):
    """The rollback's steps start."""

    kind = "rollback.started"
    group = "rollback"
    data = "the rollback's request, `before`, `after`"


class RollbackNotApproved(ReleaseChange):
    """A requested rollback nobody approved: the release is as it was."""

    kind = "rollback.not_approved"
    group = "rollback"
    data = "`before`, `after`"


#: The event of ``release.<status>`` for each status a release run ends or goes on with.
_RELEASE_STATUS: dict[str, type[ReleaseChange]] = {
    "running": ReleaseRunning,
    "waiting": ReleaseWaiting,
    "failing": ReleaseFailing,
    "succeeded": ReleaseSucceeded,
    "failed": ReleaseFailed,
    "cancelled": ReleaseCancelled,
    "rolled_back": ReleaseRolledBack,
}


def release_became(status: str) -> type[ReleaseChange]:
    """The event of a release that became ``status`` (``release.<status>``)."""
    try:
        return _RELEASE_STATUS[status]
    except KeyError:
        raise ValueError(f"no event for a release that became {status!r}") from None


# -- steps -------------------------------------------------------------------------------


class StepChange(StatusChange):
    """A change of a step's status in its run: ``pending`` before any try, ``running``
    while it has a try and no result (between retries too), ``waiting`` at an open gate,
    then its result."""

    status_of = (
        "the step in its run: `pending` before any try, `running` while it has a try and "
        "no result (between retries too), `waiting` at an open gate, then its result"
    )
    group = "step"
    data = "`run`, `outputs`, `attempts`, `already_done`, `before`, `after`"


class StepStarted(StepChange):
    """A try of a step started (each try)."""

    kind = "step.started"
    data = "`run`, `attempt`, `before`, `after`"


class StepSucceeded(StepChange):
    """A step's result: succeeded."""

    kind = "step.succeeded"


class StepFailed(StepChange):
    """A step's result: failed."""

    kind = "step.failed"


class StepTimedOut(StepChange):
    """A step's result: it overran its timeout."""

    kind = "step.timed_out"


class StepSkipped(StepChange):
    """A step's result: skipped (its condition false, or blocked)."""

    kind = "step.skipped"


class StepCancelled(StepChange):
    """A step's result: cancelled (with its release)."""

    kind = "step.cancelled"
    data = "`run`, `attempt` (or the step's result), `before`, `after`"


_STEP_STATUS: dict[str, type[StepChange]] = {
    "succeeded": StepSucceeded,
    "failed": StepFailed,
    "timed_out": StepTimedOut,
    "skipped": StepSkipped,
    "cancelled": StepCancelled,
}


def step_ended(status: str) -> type[StepChange]:
    """The event of a step's result ``status`` (``step.<status>``)."""
    try:
        return _STEP_STATUS[status]
    except KeyError:
        raise ValueError(f"no event for a step that ended {status!r}") from None


class StepRetry(Event):
    """A step tries again after a delay."""

    kind = "step.retry"
    group = "step"


class StepProgress(Event):
    """A note of a step's progress (a gate's decision counted, say)."""

    kind = "step.progress"
    group = "step"


class StepRecovered(Event):
    """A try interrupted by a crash runs again."""

    kind = "step.recovered"
    group = "step"


class PointOfNoReturn(Event):
    """A step whose contract migrations drop schema the previous version needs."""

    kind = "release.point_of_no_return"
    group = "step"


# -- gates -------------------------------------------------------------------------------

_GATE_OPENED_DATA = (
    "`run`, `kind`, `prompt`, `roles`, `people`, `quorum`, `evidence` (what deciders are "
    "shown), `deadline`, `before`, `after`"
)


class GateOpened(StepChange):
    """A gate opened at a step (the step is ``waiting``)."""

    group = "gate"
    data = _GATE_OPENED_DATA


class ApprovalOpened(GateOpened):
    """An approval gate opened."""

    kind = "gate.approval.opened"


class ChecklistOpened(GateOpened):
    """A checklist gate opened."""

    kind = "gate.checklist.opened"


class RollbackGateOpened(GateOpened):
    """A rollback's approval gate opened."""

    kind = "gate.rollback.opened"


_GATE_OPENED: dict[str, type[GateOpened]] = {
    "approval": ApprovalOpened,
    "checklist": ChecklistOpened,
    "rollback": RollbackGateOpened,
}


def gate_opened(gate_kind: str) -> type[GateOpened]:
    """The event of a gate of ``gate_kind`` opened (``gate.<kind>.opened``)."""
    try:
        return _GATE_OPENED[gate_kind]
    except KeyError:
        raise ValueError(f"no event for a gate of kind {gate_kind!r}") from None


_DECISION_DATA = (
    "`run`, `decision`, `role`, `comment`, `at`, `evidence` (what the gate showed this "
    "person), `before`"
)


class Decision(Event):
    """A person's decision at a gate (the decider is the ``actor``); no status changes."""

    group = "gate"
    data = _DECISION_DATA


class GateApproved(Decision):
    """An approval."""

    kind = "gate.approved"


class GateRejected(Decision):
    """A rejection."""

    kind = "gate.rejected"


class GateConfirmed(Decision):
    """A checklist confirmed."""

    kind = "gate.confirmed"


_DECISION: dict[str, type[Decision]] = {
    "approved": GateApproved,
    "rejected": GateRejected,
    "confirmed": GateConfirmed,
}


def decided(verb: str) -> type[Decision]:
    """The event of a decision ``verb`` (``gate.<verb>``: approved, rejected, confirmed)."""
    try:
        return _DECISION[verb]
    except KeyError:
        raise ValueError(f"no event for a decision {verb!r}") from None


class GateRefused(Event):
    """A decision refused (why, in ``message``)."""

    kind = "gate.refused"
    group = "gate"


class GateClosed(StatusChange):
    """A gate closed: ``waiting`` becomes approved, rejected, timed_out or cancelled."""

    kind = "gate.closed"
    status_of = "the gate: `waiting` → `approved`, `rejected`, `timed_out` or `cancelled`"
    group = "gate"
    data = "`run`, `status`, `before`, `after`"


# -- rollbacks ---------------------------------------------------------------------------


class RollbackRestored(Event):
    """A rollback restored the previous version (against the P1 mitigate SLA)."""

    kind = "rollback.restored"
    group = "rollback"
    data = "`restore_seconds`, `sla_seconds`, `within_sla`"


class ForwardFix(Event):
    """Past the point of no return, a person chose a forward fix instead of a rollback."""

    kind = "rollback.forward_fix"
    group = "rollback"
    data = "`forward_fix`, `reason`, `past`"


# -- refusals and the allow-list ---------------------------------------------------------


class ReleaseRefused(Event):
    """A start refused by the client or a worker."""

    kind = "release.refused"
    group = "refusal"
    data = "`runbook`, `digest`, `environment` (a worker's: `run`, `digest`); why, in `message`"


class RunbookAllowed(Event):
    """A runbook put on the allow-list of an environment."""

    kind = "runbook.allowed"
    group = "refusal"
    data = "`environment`, `kind` (`digest` or `name`), `value`, `note`"


class RunbookDisallowed(Event):
    """A runbook taken off the allow-list of an environment."""

    kind = "runbook.disallowed"
    group = "refusal"
    data = "`environment`, `kind` (`digest` or `name`), `value`, `note`"


# -- comms -------------------------------------------------------------------------------


class CommsSent(Event):
    """A comms template sent (``comms.<template>``: one kind per template of the runbook,
    ``comms.start`` say); the channels that did not get it have a notification.failed."""

    kind = "comms.<template>"
    group = "comms"
    data = "`template`, `channels` (each channel and how it went), `delivered`"

    @staticmethod
    def of(template: str) -> str:
        """The kind of the event of ``template`` sent."""
        return f"comms.{template}"


class NotificationFailed(Event):
    """A message not delivered to a channel (never fatal, never dropped silently)."""

    kind = "notification.failed"
    group = "comms"
    data = "`channel`, `kind` (what the message was), `attempts`"


# -- incidents ---------------------------------------------------------------------------


class IncidentChange(StatusChange):
    """A change of an incident's status."""

    status_of = "the incident: `open`, `acknowledged`, `mitigated`, `resolved`"
    group = "incident"
    data = "`incident`, `before`, `after`"


class IncidentOpened(IncidentChange):
    """An incident opened (by a person or the engine: the ``actor``; ``before`` is null)."""

    kind = "incident.opened"
    data = "`incident`, `severity`, `acknowledge_by`, `mitigate_by`, `before` (null), `after`"


class IncidentActed(IncidentChange):
    """A person acted on an incident (the mitigation, if any, in ``message``)."""


class IncidentAcknowledged(IncidentActed):
    """An incident acknowledged."""

    kind = "incident.acknowledged"


class IncidentMitigated(IncidentActed):
    """An incident mitigated."""

    kind = "incident.mitigated"


class IncidentResolved(IncidentActed):
    """An incident resolved."""

    kind = "incident.resolved"


_INCIDENT_ACTED: dict[str, type[IncidentActed]] = {
    "acknowledged": IncidentAcknowledged,
    "mitigated": IncidentMitigated,
    "resolved": IncidentResolved,
}


def incident_acted(done: str) -> type[IncidentActed]:
    """The event of an incident ``done`` (acknowledged, mitigated or resolved)."""
    try:
        return _INCIDENT_ACTED[done]
    except KeyError:
        raise ValueError(f"no event for an incident {done!r}") from None


class IncidentReminder(Event):
    """A reminder of an incident's deadline to its owners."""

    kind = "incident.reminder"
    group = "incident"
    data = "`incident`, `deadline` (acknowledge or mitigate)"


class IncidentBreached(Event):
    """An incident's deadline passed (SLA breached): an escalation."""

    kind = "incident.breached"
    group = "incident"
    data = "`incident`, `deadline` (acknowledge or mitigate)"


class IncidentRefused(Event):
    """An operation on an incident refused."""

    kind = "incident.refused"
    group = "incident"
    data = "`action`, `release`; why, in `message`"


# -- people ------------------------------------------------------------------------------


class TeamApplied(Event):
    """A team file applied."""

    kind = "team.applied"
    group = "people"
    data = (
        "`file`, `people` (roles, surfaces, admin), `permissions`, `changes` (`added`, "
        "`removed`, `changed`: who joined, left, or got other roles, surfaces or admin rights)"
    )


class TokenCreated(Event):
    """An API token created (its secret is never recorded)."""

    kind = "token.created"
    group = "people"
    data = "`token` (its id, never the secret), `person`, `label`, `expires_at`"


class TokenRevoked(Event):
    """An API token revoked, and the dashboard sessions it ended."""

    kind = "token.revoked"
    group = "people"
    data = "`token` (its id), `person`, `sessions_ended`"


class SessionStarted(Event):
    """A dashboard session signed in."""

    kind = "session.started"
    group = "people"
    data = "`person`, `token` (its id, never the session id or the token), `address`"


class SessionEnded(Event):
    """A dashboard session ended (sign-out, or its token revoked)."""

    kind = "session.ended"
    group = "people"
    data = "`person`, `token` (its id, never the session id or the token), `why`"


# -- processes and migrations ------------------------------------------------------------


class WorkerStarted(Event):
    """A process that runs releases started."""

    kind = "worker.started"
    group = "process"
    data = (
        "`process`, `hostname`, `pid`, `audit_key` (the id of its audit key), "
        "`audit_key_rotated` (started with --rotate-audit-key)"
    )


class WorkerStopped(Event):
    """A worker stopped."""

    kind = "worker.stopped"
    group = "process"
    data = "`process`"


class MigrationsRun(Event):
    """A ``migrations apply`` run outside a release."""

    group = "process"
    data = "what ran (`phase`, `database`, `environment`, ...), `ok`, `outputs`"


class MigrationsApplied(MigrationsRun):
    """Migrations applied."""

    kind = "migrations.applied"


class MigrationsDryRun(MigrationsRun):
    """Migrations checked with a dry run."""

    kind = "migrations.dry_run"


class MigrationsFailed(MigrationsRun):
    """Migrations that failed (or could not run)."""

    kind = "migrations.failed"


_MIGRATIONS: dict[str, type[MigrationsRun]] = {
    "applied": MigrationsApplied,
    "dry_run": MigrationsDryRun,
    "failed": MigrationsFailed,
}


def migrations_ran(outcome: str) -> type[MigrationsRun]:
    """The event of a ``migrations apply`` run's ``outcome`` (applied, dry_run, failed)."""
    try:
        return _MIGRATIONS[outcome]
    except KeyError:
        raise ValueError(f"no event for migrations {outcome!r}") from None


# -- the audit log itself ----------------------------------------------------------------


class AnchorFailed(Event):
    """A release's end not anchored (the log did not verify), or the Git push or webhook
    failed."""

    kind = "audit.anchor_failed"
    group = "audit"
    data = "(none: why, in `message`)"
