"""The in-process client as one person: the client contract
(:class:`shipcaptain.contract.Service`) on the state database.

:class:`~shipcaptain.client.Client` serves everyone (the web layer acts for whoever signed
in, a worker for the engine), so its methods take the acting person. A ``LocalSession``
binds that person once, found lazily (authenticating a token costs a read of the store,
and a command that is refused before it acts must not need one), and then speaks exactly
as ``shipcaptain.remote.RemoteClient`` does through a server.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipcaptain.errors import UsageError

if TYPE_CHECKING:
    from shipcaptain.client import (
        Client,
        ReleaseView,
        ResumeAction,
        RollbackRequest,
        WorkerStatus,
    )
    from shipcaptain.plan import RollbackEntry
    from shipcaptain.records import (
        AuditCheck,
        EventRecord,
        GateRecord,
        GateStanding,
        IncidentRecord,
        Person,
        ReleaseFilter,
        ReleaseProgress,
        ReleaseRecord,
        StepRunRecord,
        TokenRecord,
    )


class LocalSession:
    """``client`` acting as the person ``who()`` returns (called once, when first needed;
    None: a ``--bootstrap`` call, which may only load the team or make an admin's token)."""

    def __init__(self, client: Client, who: Callable[[], Person | None]) -> None:
        self.client = client
        self._who = who
        self._found = False
        self._person: Person | None = None

    def _acting(self) -> Person | None:
        if not self._found:
            self._person = self._who()
            self._found = True
        return self._person

    @property
    def person(self) -> Person:
        """The acting person (authenticated on first use)."""
        person = self._acting()
        if person is None:
            raise UsageError("--bootstrap loads the team or makes a token, nothing else")
        return person

    @property
    def user(self) -> str:
        return self.person.name

    # ---- releases ----

    def start(
        self,
        path: str | Path,
        given: dict[str, str],
        *,
        workdir: str | Path | None = None,
        on_server: bool = False,
    ) -> ReleaseRecord:
        if on_server:
            raise UsageError("--on-server needs --server (or SHIPCAPTAIN_SERVER)")
        return self.client.create_release(path, given, user=self.user, workdir=workdir)

    def warnings_for(self, release: ReleaseRecord) -> list[str]:
        return self.client.comms_warnings(self.client.runbook_of(release), release.environment)

    def queue(
        self,
        release_id: str,
        run: int,
        *,
        take_over: bool = False,
        rollback: RollbackRequest | None = None,
    ) -> bool:
        if take_over:
            return False
        if rollback is not None:
            self.client.enqueue_rollback(rollback)
        else:
            self.client.enqueue(release_id, run)
        return True

    def get(self, release_id: str) -> ReleaseRecord:
        self.person  # noqa: B018 - every read of the state is someone's
        return self.client.get(release_id)

    def list_releases(self, which: ReleaseFilter | None = None) -> list[ReleaseRecord]:
        self.person  # noqa: B018
        return self.client.list_releases(which)

    def show(self, release_id: str, *, events: bool = True) -> ReleaseView:
        self.person  # noqa: B018
        return self.client.show(release_id, events=events)

    def events(self, release_id: str, after: int = 0) -> list[EventRecord]:
        self.person  # noqa: B018
        return self.client.list_events(release_id=release_id, after_seq=after)

    def status(self, release_id: str) -> str:
        return self.get(release_id).status

    def progress(self, release_id: str) -> ReleaseProgress:
        self.person  # noqa: B018
        return self.client.progress(release_id)

    def gate_parts(self, release: ReleaseRecord, gate: GateRecord) -> list[Any]:
        return self.client.gate_parts_for(release, gate, self.user)

    def decide(
        self,
        release_id: str,
        step_id: str,
        *,
        decision: str,
        comment: str = "",
        role: str | None = None,
    ) -> str:
        return self.client.decide(
            release_id, step_id, user=self.user, decision=decision, comment=comment, role=role
        )

    def cancel(self, release_id: str, *, reason: str) -> ReleaseRecord:
        return self.client.cancel(release_id, user=self.user, reason=reason)

    def resume(self, release_id: str) -> ResumeAction:
        return self.client.prepare_resume(release_id, user=self.user)

    def rollback_preview(self, release_id: str) -> tuple[list[RollbackEntry], list[str]]:
        self.person  # noqa: B018
        return self.client.rollback_preview(release_id)

    def rollback(
        self,
        release_id: str,
        *,
        reason: str,
        forward_fix: str | None = None,
        restore_procedure: str | None = None,
    ) -> RollbackRequest:
        return self.client.request_rollback(
            release_id,
            user=self.user,
            reason=reason,
            forward_fix=forward_fix,
            restore_procedure=restore_procedure,
        )

    def workers(self) -> list[WorkerStatus]:
        self.person  # noqa: B018
        return self.client.workers()

    # ---- what the dashboard shows ----

    def step_runs(self, release_id: str) -> dict[str, StepRunRecord]:
        self.person  # noqa: B018
        return self.client.latest_step_runs(release_id)

    def active_releases(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[ReleaseRecord]:
        self.person  # noqa: B018
        return self.client.active_releases(
            environment=environment, runbook=runbook, started_by=started_by
        )

    def live_releases(
        self, *, environment: str | None = None, runbook: str | None = None
    ) -> list[ReleaseRecord]:
        self.person  # noqa: B018
        return self.client.live_releases(environment=environment, runbook=runbook)

    def gates_waiting(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[tuple[ReleaseRecord, GateRecord]]:
        return self.client.gates_waiting_for(
            self.user, environment=environment, runbook=runbook, started_by=started_by
        )

    def gate_standing(self, release: ReleaseRecord, gate: GateRecord) -> GateStanding:
        return self.client.gate_standing(release, gate, self.user)

    # ---- incidents ----

    def list_incidents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[IncidentRecord]:
        self.person  # noqa: B018
        return self.client.list_incidents(since, until)

    def get_incident(self, incident_id: str) -> IncidentRecord:
        self.person  # noqa: B018
        return self.client.get_incident(incident_id)

    def open_incident(
        self, *, severity: str, summary: str, release_id: str | None = None
    ) -> IncidentRecord:
        return self.client.open_incident(
            severity=severity, summary=summary, user=self.user, release_id=release_id
        )

    def incident_action(
        self, incident_id: str, action: str, *, note: str | None = None
    ) -> IncidentRecord:
        return self.client.incident_action(incident_id, action, user=self.user, note=note)

    # ---- the team, tokens, permissions ----

    def team(self) -> dict[str, Any]:
        from shipcaptain.team import team_document

        self.person  # noqa: B018 - reading the team needs a token
        return team_document(self.client.store)

    def apply_team(self, text: str, filename: str) -> dict[str, Any]:
        from shipcaptain.team import apply_team, parse_team

        loaded = parse_team(text, filename)
        event = apply_team(self.client.store, loaded, by=self._acting())
        people = [p.name for p in loaded.people]
        return {"people": people, "admins": loaded.admins, "event": event.seq}

    def runbook_policy(self) -> dict[str, Any]:
        from shipcaptain.team import runbooks_document

        self.person  # noqa: B018 - reading the allow-list needs a token
        return runbooks_document(self.client.store)

    def create_token(
        self, person: str | None, *, expires_in: float | None, label: str
    ) -> tuple[str, TokenRecord]:
        from shipcaptain.identity import create_token

        by = self._acting()
        owner = person or (by.name if by else None)
        if owner is None:
            raise UsageError("--bootstrap needs --for PERSON (an admin in the team file)")
        return create_token(self.client.store, owner, expires_in=expires_in, label=label, by=by)

    def list_tokens(self, person: str | None = None) -> list[TokenRecord]:
        from shipcaptain.identity import list_tokens

        return list_tokens(self.client.store, by=self.person, person=person)

    def revoke_token(self, token_id: str) -> TokenRecord:
        from shipcaptain.identity import revoke_token

        return revoke_token(self.client.store, token_id, by=self.person)

    def authorize(self, action: str, *, environment: str) -> str | None:
        return self.client.authorize(self.user, action, environment=environment)

    def record_migrations(
        self,
        outcome: str,
        what: dict[str, Any],
        summary: str,
        outputs: dict[str, Any] | None,
    ) -> int:
        return self.client.record_migrations(self.user, outcome, what, summary, outputs)

    # ---- the audit log ----

    def verify_audit(self) -> AuditCheck:
        self.person  # noqa: B018 - reading the audit log needs a token
        return self.client.verify_audit()

    def audit_log(
        self, *, release_id: str | None = None, after: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        self.person  # noqa: B018
        return self.client.list_events(release_id=release_id, after_seq=after, limit=limit)

    def last_event_seq(self) -> int:
        self.person  # noqa: B018
        return self.client.last_event_seq()

    def anchor_audit(self) -> dict[str, Any]:
        self.person  # noqa: B018 - anchoring needs a token
        done = self.client.anchor_audit()
        return {
            **done.anchor.document(),
            "written": done.written,
            "file": done.anchor.source,
            "problems": done.problems,
        }

    def audit_public_key(self) -> str:
        """The public half needs no token: it is what anyone checks anchors with."""
        return self.client.audit_public_key()

    def evidence_bundle(self, release_id: str) -> dict[str, Any]:
        return self.client.evidence_bundle(release_id, user=self.user)
