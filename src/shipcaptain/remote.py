"""The client of a remote ``shipcaptain server``: the release commands of the CLI through
the REST API, with an API token (``--server`` / ``SHIPCAPTAIN_SERVER`` and
``SHIPCAPTAIN_TOKEN``).

It answers with the same records as ``shipcaptain.client.Client`` so the CLI renders both
the same way, and turns the API's errors back into the same exceptions (hence the same
messages and exit codes). Who acts is the person the token belongs to.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from shipcaptain import errors, tls
from shipcaptain.actions.registry import Registry
from shipcaptain.actions.registry import registry as default_registry
from shipcaptain.client import ReleaseView, ResumeAction, RollbackRequest, StepView, WorkerStatus
from shipcaptain.codec import decode
from shipcaptain.plan import RollbackEntry
from shipcaptain.records import (
    AuditCheck,
    DecisionRecord,
    EngineHealth,
    EventRecord,
    GateRecord,
    GateStanding,
    IncidentRecord,
    NotificationRecord,
    ReleaseFilter,
    ReleaseProgress,
    ReleaseRecord,
    StepRunRecord,
    TokenRecord,
    WorkerRecord,
)
from shipcaptain.runbook.loader import load_runbook_file, parse_runbook

if TYPE_CHECKING:
    from shipcaptain.runbook.model import Runbook

API = "/api/v1"
#: the exception each error code comes back as (the first whose code the answer's starts with)
ERRORS: list[tuple[str, type[errors.ShipError]]] = [
    ("SC410", errors.AuthenticationFailed),
    ("SC41", errors.PermissionDenied),
    ("SC1", errors.UsageError),
    ("SC2", errors.UsageError),
    ("SC3", errors.NotFound),
    ("SC4", errors.PermissionDenied),
    ("SC5", errors.InvalidState),
    ("SC6", errors.ActionError),
    ("SC7", errors.StoreError),
]


def _incident_of(data: dict[str, Any]) -> IncidentRecord:
    return decode(IncidentRecord, data)  # its "clocks" (text) left out


def _token_of(data: dict[str, Any]) -> TokenRecord:
    return decode(TokenRecord, data, secret_hash="")  # never sent; its "state" left out


def _release_of(data: dict[str, Any]) -> ReleaseRecord:
    return decode(ReleaseRecord, data, runbook_text="")  # GET /releases/{id}/runbook has it


class RemoteClient:
    """The client contract (:class:`shipcaptain.contract.Service`) through a server's API,
    as the person the token belongs to."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        registry: Registry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise errors.UsageError(
                f"talking to the server {url} needs an API token: set SHIPCAPTAIN_TOKEN "
                "(or save one in the token file that `shipcaptain login` writes)"
            )
        self.url = url.rstrip("/")
        self.registry = registry or default_registry
        self._http = httpx.Client(
            base_url=self.url + API,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=30.0,
            transport=transport,
            verify=tls.verify(),
        )
        self._me: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise errors.StoreError(f"cannot reach the server {self.url}: {exc}") from exc

    def _get(self, path: str, **query: Any) -> Any:
        """GET ``path`` with the query's parameters that are not None."""
        return self._call("GET", path, params={k: v for k, v in query.items() if v is not None})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.is_success:
            return response.json()
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "SC000", f"the server answered {response.status_code}"
        cls = next((c for prefix, c in ERRORS if code.startswith(prefix)), errors.ShipError)
        refused = cls(message)
        refused.code = code  # the server's own code, shown as it said it
        raise refused

    # ---- the release commands ----

    @property
    def user(self) -> str:
        """The person the token belongs to: who acts."""
        if self._me is None:
            self._me = str(self._call("GET", "/me")["name"])
        return self._me

    def start(
        self,
        path: str | Path,
        given: dict[str, str],
        *,
        workdir: str | Path | None = None,
        on_server: bool = False,
    ) -> ReleaseRecord:
        """Check the runbook here (mistakes name the local file), then send its text; or,
        ``on_server``, name a runbook under the server's runbook directory (the release
        then runs in that runbook's directory there). The server queues it for its workers."""
        if workdir is not None:
            raise errors.UsageError("--workdir cannot be used with --server: the server decides")
        body: dict[str, Any] = {"runbook_path": str(path), "params": given}
        if not on_server:
            loaded = load_runbook_file(path, registry=self.registry)
            body = {"runbook_yaml": loaded.text, "params": given}
        return _release_of(self._call("POST", "/releases", json=body))

    def warnings_for(self, release: ReleaseRecord) -> list[str]:
        """None here: the server checks the announcements of what it runs."""
        return []

    def queue(
        self,
        release_id: str,
        run: int,
        *,
        take_over: bool = False,
        rollback: RollbackRequest | None = None,
    ) -> bool:
        """Nothing to do: the server queued what it was asked to run for its workers."""
        return True

    def get(self, release_id: str) -> ReleaseRecord:
        return self.show(release_id, events=False).release

    def _releases(self, path: str, **query: Any) -> list[ReleaseRecord]:
        return [_release_of(r) for r in self._get(path, **query)]

    def list_releases(self, which: ReleaseFilter | None = None) -> list[ReleaseRecord]:
        # GET /releases takes the filter's fields as its query parameters, of the same names
        query = dataclasses.asdict(which or ReleaseFilter())
        return self._releases("/releases", **query | {"offset": query["offset"] or None})

    def show(self, release_id: str, *, events: bool = True) -> ReleaseView:
        data = self._call("GET", f"/releases/{release_id}")
        release = _release_of(data["release"])

        @functools.cache
        def runbook() -> Runbook:  # fetched and parsed only for who asks for the model
            text = self._call("GET", f"/releases/{release_id}/runbook")
            name = release.runbook_path or release.runbook_name
            return parse_runbook(text["text"], name, registry=self.registry)

        steps = [
            StepView(
                id=s["id"],
                phase=s["phase"],
                title=s["title"],
                action=s["action"],
                needs=s["needs"],
                record=decode(StepRunRecord, s, release_id=release_id, step_id=s["id"])
                if s.get("run") is not None
                else None,
            )
            for s in data["steps"]
        ]
        return ReleaseView(
            release=release,
            parse_runbook=runbook,
            steps=steps,
            gates=[decode(GateRecord, g) for g in data["gates"]],
            events=[decode(EventRecord, e) for e in data["events"]] if events else [],
            notifications=[decode(NotificationRecord, n) for n in data["notifications"]],
            incidents=[decode(IncidentRecord, i) for i in data["incidents"]],
            decisions=[decode(DecisionRecord, d) for d in data["decisions"]],
            engine=decode(EngineHealth, data["engine"]) if data.get("engine") else None,
        )

    def events(self, release_id: str, after: int = 0) -> list[EventRecord]:
        found = self._get(f"/releases/{release_id}/events", after=after)
        return [decode(EventRecord, e) for e in found]

    def status(self, release_id: str) -> str:
        return self.progress(release_id).status

    def progress(self, release_id: str) -> ReleaseProgress:
        return decode(ReleaseProgress, self._call("GET", f"/releases/{release_id}/status"))

    def gate_parts(self, release: ReleaseRecord, gate: GateRecord) -> list[Any]:
        """The server's answer has every part of a gate; the ones naming you are yours."""
        return [p for p in gate.evidence["parts"] if self.user in p["people"]]

    def decide(
        self,
        release_id: str,
        step_id: str,
        *,
        decision: str,
        comment: str = "",
        role: str | None = None,
    ) -> str:
        verb = "approve" if decision == "approve" else "reject"
        answer = self._call(
            "POST",
            f"/releases/{release_id}/gates/{step_id}/{verb}",
            json={"comment": comment, "role": role},
        )
        return str(answer["state"])

    def cancel(self, release_id: str, *, reason: str) -> ReleaseRecord:
        return _release_of(
            self._call("POST", f"/releases/{release_id}/cancel", json={"reason": reason})
        )

    def resume(self, release_id: str) -> ResumeAction:
        answer = self._call("POST", f"/releases/{release_id}/resume")
        return ResumeAction(kind=answer["kind"], run=answer["run"], reason=answer["reason"])

    def workers(self) -> list[WorkerStatus]:
        return [
            WorkerStatus(
                worker=decode(WorkerRecord, w),
                alive=w["alive"],
                silent_for=w["silent_for_s"],
                releases=w["releases"],
            )
            for w in self._call("GET", "/workers")
        ]

    def rollback_preview(self, release_id: str) -> tuple[list[RollbackEntry], list[str]]:
        """What a rollback would run now, and the steps past the point of no return."""
        answer = self._call("GET", f"/releases/{release_id}/rollback-plan")
        return [RollbackEntry(**e) for e in answer["plan"]], list(answer["points_of_no_return"])

    def rollback(
        self,
        release_id: str,
        *,
        reason: str,
        forward_fix: str | None = None,
        restore_procedure: str | None = None,
    ) -> RollbackRequest:
        """Ask the server to roll a release back; the rollback's run (None: a forward fix
        was recorded instead). A worker of the server runs it once an SRE approves."""
        body = {
            "reason": reason,
            "forward_fix": forward_fix,
            "restore_procedure": restore_procedure,
        }
        answer = self._call("POST", f"/releases/{release_id}/rollback", json=body)
        run = None if answer["run"] is None else int(answer["run"])
        return RollbackRequest(release_id, run, {})

    # ---- what the dashboard shows ----

    def step_runs(self, release_id: str) -> dict[str, StepRunRecord]:
        """The release's steps with a try, from the release's document."""
        view = self.show(release_id, events=False)
        return {s.id: s.record for s in view.steps if s.record is not None}

    def active_releases(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[ReleaseRecord]:
        return self._releases(
            "/active-releases", environment=environment, runbook=runbook, started_by=started_by
        )

    def live_releases(
        self, *, environment: str | None = None, runbook: str | None = None
    ) -> list[ReleaseRecord]:
        return self._releases("/live-releases", environment=environment, runbook=runbook)

    def gates_waiting(
        self,
        *,
        environment: str | None = None,
        runbook: str | None = None,
        started_by: str | None = None,
    ) -> list[tuple[ReleaseRecord, GateRecord]]:
        found = self._get(
            "/me/gates", environment=environment, runbook=runbook, started_by=started_by
        )
        return [(_release_of(w["release"]), decode(GateRecord, w["gate"])) for w in found]

    def gate_standing(self, release: ReleaseRecord, gate: GateRecord) -> GateStanding:
        path = f"/releases/{release.id}/gates/{gate.step_id}/standing"
        return decode(GateStanding, self._call("GET", path))

    # ---- the audit log ----

    def audit_log(
        self, *, release_id: str | None = None, after: int = 0, limit: int = 100
    ) -> list[EventRecord]:
        found = self._get("/audit", release=release_id, after=after, limit=limit)
        return [decode(EventRecord, e) for e in found]

    def last_event_seq(self) -> int:
        return int(self._call("GET", "/audit/head")["seq"])

    def verify_audit(self) -> AuditCheck:
        return decode(AuditCheck, self._call("GET", "/audit/verify"))

    def anchor_audit(self) -> dict[str, Any]:
        return dict(self._call("POST", "/audit/anchor"))

    def audit_public_key(self) -> str:
        response = self._request("GET", "/audit/public-key", headers={"Accept": "text/plain"})
        if not response.is_success:
            return str(self._call("GET", "/audit/public-key"))  # raises the server's error
        return response.text

    def evidence_bundle(self, release_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/releases/{release_id}/evidence"))

    def open_incident(
        self,
        *,
        severity: str,
        summary: str,
        release_id: str | None = None,
    ) -> IncidentRecord:
        body = {"severity": severity, "summary": summary, "release": release_id}
        return _incident_of(self._call("POST", "/incidents", json=body))

    def incident_action(
        self, incident_id: str, action: str, *, note: str | None = None
    ) -> IncidentRecord:
        answer = self._call("POST", f"/incidents/{incident_id}/{action}", json={"note": note})
        return _incident_of(answer)

    def get_incident(self, incident_id: str) -> IncidentRecord:
        return _incident_of(self._call("GET", f"/incidents/{incident_id}"))

    def list_incidents(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[IncidentRecord]:
        """The incidents opened in ``[since, until)``, newest first."""
        from shipcaptain.records import opened_within

        found = [_incident_of(i) for i in self._call("GET", "/incidents")]
        return opened_within(found, since, until)

    # ---- people ----

    def team(self) -> dict[str, Any]:
        """The team and the permissions in force (as `team show --json` prints them)."""
        return dict(self._call("GET", "/team"))

    def apply_team(self, text: str, filename: str) -> dict[str, Any]:
        """Make the team file's text the team (admins only): people, admins, event."""
        return dict(self._call("PUT", "/team", json={"team_yaml": text, "file": filename}))

    def runbook_policy(self) -> dict[str, Any]:
        return dict(self._call("GET", "/team/runbooks"))

    def create_token(
        self, person: str | None, *, expires_in: float | None, label: str
    ) -> tuple[str, TokenRecord]:
        body = {"person": person, "label": label, "expires_in_s": expires_in}
        answer = self._call("POST", "/tokens", json=body)
        return str(answer["token"]), _token_of(answer)

    def revoke_token(self, token_id: str) -> TokenRecord:
        return _token_of(self._call("POST", f"/tokens/{token_id}/revoke"))

    def authorize(self, action: str, *, environment: str) -> str | None:
        """The role the token's person does ``action`` in, in ``environment``; raises
        PermissionDenied (the server's check)."""
        answer = self._get(f"/permissions/{action}", environment=environment)
        return None if answer["role"] is None else str(answer["role"])

    def record_migrations(
        self,
        outcome: str,
        what: dict[str, Any],
        summary: str,
        outputs: dict[str, Any] | None,
    ) -> int:
        """Record a `migrations apply` run in the server's audit log, as the token's person."""
        body = {**what, "outcome": outcome, "summary": summary, "outputs": outputs}
        return int(self._call("POST", "/migrations/runs", json=body)["event"])

    def list_tokens(self, person: str | None = None) -> list[TokenRecord]:
        """Tokens (never their secrets): the token's person's, or anyone's for an admin."""
        found = self._get("/tokens", person=person or None)
        return [_token_of(t) for t in found]
