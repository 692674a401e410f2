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
once), and the allow-list of runbooks is read on the state database only
(:meth:`Service.runbook_policy`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from shipcaptain.client import ReleaseView, ResumeAction, RollbackRequest, WorkerStatus
    from shipcaptain.permissions import Policy
    from shipcaptain.plan import RollbackEntry
    from shipcaptain.records import (
        AuditCheck,
        EventRecord,
        GateRecord,
        IncidentRecord,
        ReleaseRecord,
        TokenRecord,
    )


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

    def list_releases(
        self, *, status: str | None = None, environment: str | None = None, limit: int = 50
    ) -> list[ReleaseRecord]: ...

    def show(self, release_id: str, *, events: bool = True) -> ReleaseView: ...

    def events(self, release_id: str, after: int = 0) -> list[EventRecord]:
        """The release's timeline after the event ``after``, oldest first."""
        ...

    def status(self, release_id: str) -> str: ...

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

    def runbook_policy(self) -> Policy | None:
        """The team's policy with the runbooks' allow-list, where it can be read (None
        through a server: it is kept on the server's state database)."""
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

    def anchor_audit(self) -> dict[str, Any]:
        """Sign the log's head and anchor it: the anchor's document, ``written``, ``file``
        and ``problems``."""
        ...

    def audit_public_key(self) -> str: ...

    def evidence_bundle(self, release_id: str) -> dict[str, Any]: ...


#: the contract's operations (for the test that both clients keep its signatures)
OPERATIONS: tuple[str, ...] = tuple(
    name for name in vars(Service) if not name.startswith("_") and name not in ("user",)
)
