"""The one client contract (issue 18): everything a person does with shipcaptain, in one
vocabulary, as one person.

Two classes implement it with the same signatures and records (a test compares them):

- ``shipcaptain.session.LocalSession``: the in-process :class:`~shipcaptain.client.Client`
  on the state database, bound to the person who acts (``Client.as_person``);
- ``shipcaptain.remote.RemoteClient``: a server's REST API, as the person its API token
  belongs to.

The CLI holds only this contract (``Obj.service``, chosen once: ``--server`` or not), so a
command is written once for both. What differs by nature stays inside the two classes: the
server's workers run what a server is asked to run (:meth:`Service.queue` answers True at
once).

The web layer holds the same contract, as each person who asks, and :class:`Host` for what
comes before a person (tokens, the dashboard's sessions, the engine the server runs).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from shipcaptain.actions.registry import Registry
    from shipcaptain.client import ReleaseView, ResumeAction, RollbackRequest, WorkerStatus
    from shipcaptain.engine.engine import Engine
    from shipcaptain.plan import RollbackEntry
    from shipcaptain.records import (
        AuditCheck,
        EventRecord,
        GateRecord,
        GateStanding,
        IncidentRecord,
        ReleaseFilter,
        ReleaseProgress,
        ReleaseRecord,
        StepRunRecord,
        TokenRecord,
    )
    from shipcaptain.rehearsals import RehearsalReport, RehearsalSummary
    from shipcaptain.settings import Settings
    from shipcaptain.store.access import WebSession


@runtime_checkable
class Service(Protocol):
    """What a person can do, as that person (:attr:`user`). Refusals are the same
    exceptions (hence the same messages and exit codes) on both implementations."""

    @property
    def user(self) -> str:
        """The person who acts (AuthenticationFailed without a valid token)."""
        ...

    # ---- releases ----

    def start(
        self,
        path: str | Path,
        given: dict[str, str],
        *,
        workdir: str | Path | None = None,
        on_server: bool = False,
    ) -> ReleaseRecord:
        """Check the runbook and record a release of it (pending). ``on_server``: ``path``
        names a runbook of the server's (a server only); ``workdir``: where its commands run
        (the state database only: a server decides)."""
        ...

    def warnings_for(self, release: ReleaseRecord) -> list[str]:
        """What the person who started ``release`` should know (announcements that would
        reach nobody)."""
        ...

    def queue(
        self,
        release_id: str,
        run: int,
        *,
        take_over: bool = False,
        rollback: RollbackRequest | None = None,
    ) -> bool:
        """Hand a run (or a requested ``rollback``) to the workers; True once they have it
        (a server's workers have what a server was asked already), False when it cannot be
        queued (a ``take_over``: whoever resumed it runs it)."""
        ...

    def get(self, release_id: str) -> ReleaseRecord: ...

    def list_releases(self, which: ReleaseFilter | None = None) -> list[ReleaseRecord]:
        """The releases ``which`` lets through, newest first (None: the newest 50)."""
        ...

    def show(self, release_id: str, *, events: bool = True) -> ReleaseView: ...

    def events(self, release_id: str, after: int = 0) -> list[EventRecord]:
        """The release's timeline after the event ``after``, oldest first."""
        ...

    def status(self, release_id: str) -> str: ...

    def progress(self, release_id: str) -> ReleaseProgress:
        """The release's status, its steps' and the gates waiting: cheap to poll."""
        ...

    def gate_parts(self, release: ReleaseRecord, gate: GateRecord) -> list[Any]:
        """Of a gate in parts, the parts that are the acting person's."""
        ...

    def decide(
        self,
        release_id: str,
        step_id: str,
        *,
        decision: str,
        comment: str = "",
        role: str | None = None,
    ) -> str:
        """Approve or reject a waiting gate: "recorded", or "sent" (no engine took it yet)."""
        ...

    def cancel(self, release_id: str, *, reason: str) -> ReleaseRecord: ...

    def resume(self, release_id: str) -> ResumeAction: ...

    def rollback_preview(self, release_id: str) -> tuple[list[RollbackEntry], list[str]]: ...

    def rollback(
        self,
        release_id: str,
        *,
        reason: str,
        forward_fix: str | None = None,
        restore_procedure: str | None = None,
    ) -> RollbackRequest:
        """Ask to roll a release back; the request's run is None when a forward fix was
        recorded instead."""
        ...

    def workers(self) -> list[WorkerStatus]: ...

    # ---- what the dashboard shows ----

    def step_runs(self, release_id: str) -> dict[str, StepRunRecord]:
        """Each step's newest try in the release (by step id)."""
        ...

    def active_releases(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[ReleaseRecord]:
        """Every release not finished yet, newest first (optionally of one environment,
        runbook and/or starter)."""
        ...

    def live_releases(
        self, *, environment: str | None = None, runbook: str | None = None
    ) -> list[ReleaseRecord]:
        """What is live: of each runbook in each environment, the newest release that
        succeeded, by environment then runbook."""
        ...

    def gates_waiting(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[tuple[ReleaseRecord, GateRecord]]:
        """The gates the acting person may decide and has not yet, newest release first."""
        ...

    def gate_standing(self, release: ReleaseRecord, gate: GateRecord) -> GateStanding:
        """A waiting gate as the acting person stands before it."""
        ...

    # ---- incidents ----

    def list_incidents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[IncidentRecord]: ...

    def get_incident(self, incident_id: str) -> IncidentRecord: ...

    def open_incident(
        self, *, severity: str, summary: str, release_id: str | None = None
    ) -> IncidentRecord: ...

    def incident_action(
        self, incident_id: str, action: str, *, note: str | None = None
    ) -> IncidentRecord: ...

    # ---- the team, tokens, permissions ----

    def team(self) -> dict[str, Any]:
        """The team and the permissions in force (as `team show --json` prints them)."""
        ...

    def apply_team(self, text: str, filename: str) -> dict[str, Any]:
        """Make the team file's text the team (admins only): people, admins, event."""
        ...

    def runbook_policy(self) -> dict[str, Any]:
        """The runbooks' allow-list and which environments are protected (as `team
        runbooks list --json` prints it)."""
        ...

    def create_token(
        self, person: str | None, *, expires_in: float | None, label: str
    ) -> tuple[str, TokenRecord]:
        """A new token (its secret, shown once, and its record) for ``person`` (None: the
        acting person)."""
        ...

    def list_tokens(self, person: str | None = None) -> list[TokenRecord]: ...

    def revoke_token(self, token_id: str) -> TokenRecord: ...

    def authorize(self, action: str, *, environment: str) -> str | None:
        """The role the acting person does ``action`` in, in ``environment``; raises
        PermissionDenied."""
        ...

    def record_migrations(
        self,
        outcome: str,
        what: dict[str, Any],
        summary: str,
        outputs: dict[str, Any] | None,
    ) -> int:
        """Record a `migrations apply` run in the audit log; the event's seq."""
        ...

    # ---- the audit log ----

    def verify_audit(self) -> AuditCheck: ...

    def audit_log(
        self, *, release_id: str | None = None, after: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        """The audit log after the event ``after``, oldest first, ``limit`` at a time
        (optionally one release's events)."""
        ...

    def last_event_seq(self) -> int:
        """The number of the newest audit event (0: none yet): every change of a release,
        a gate or an incident appends one."""
        ...

    def anchor_audit(self) -> dict[str, Any]:
        """Sign the log's head and anchor it: the anchor's document, ``written``, ``file``
        and ``problems``."""
        ...

    def audit_public_key(self) -> str: ...

    def evidence_bundle(self, release_id: str) -> dict[str, Any]: ...


@runtime_checkable
class Host(Protocol):
    """What a process that serves many people holds (the web layer: the dashboard and the
    API): the client contract as each person who signs in (:meth:`acting_as`), and what
    comes before a person or outside the state database's records: tokens and the
    dashboard's sessions, the engine this process may run, the server's own files
    (kept rehearsals), Slack's button presses. Implemented by the in-process
    :class:`~shipcaptain.client.Client`; the web layer holds only this and
    :class:`Service` (a test keeps it so)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> Registry: ...

    def open(self) -> None:
        """Open (and migrate) the state database now: a bad URL is an error at once."""
        ...

    def close(self) -> None: ...

    def acting_as(self, name: str) -> Service:
        """The client contract as the person ``name`` (authenticated already)."""
        ...

    def authenticate(self, token: str) -> str: ...

    def start_web_session(self, token: str, *, address: str) -> tuple[str, WebSession]: ...

    def web_session(self, session_id: str) -> WebSession: ...

    def end_web_session(self, id_hash: str, *, actor: str, why: str) -> bool: ...

    def host_engine(
        self,
        executor_id: str,
        *,
        settings: Settings | None = None,
        takes_over: bool = False,
        takes_queued: bool = True,
    ) -> Engine: ...

    def engine_functions(self) -> str:
        """The durable functions an engine process registers, as one line of a banner."""
        ...

    def answer_slack(self, headers: dict[str, str], body: bytes) -> str:
        """Check and apply a press of a gate's button in Slack; the text shown to whoever
        pressed it."""
        ...

    def list_rehearsals(self, limit: int = 100) -> list[RehearsalSummary]: ...

    def rehearsal(self, rehearsal_id: str) -> RehearsalReport: ...

    def rehearsal_file(self, rehearsal_id: str, name: str) -> Path: ...


#: the contract's operations (for the test that both clients keep its signatures)
OPERATIONS: tuple[str, ...] = tuple(
    name for name in vars(Service) if not name.startswith("_") and name not in ("user",)
)
