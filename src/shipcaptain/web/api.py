"""The REST API (/api/v1): every endpoint calls the same method of the client contract
(:class:`shipcaptain.contract.Service`, as the person who asks) as the CLI command of the
same name, so the permission checks are the same."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse

from shipcaptain.client import ACTIVE
from shipcaptain.codec import incident_dict, plain, release_dict, worker_dict
from shipcaptain.contract import Service
from shipcaptain.errors import InvalidState, NotFound, UsageError
from shipcaptain.identity import token_document
from shipcaptain.incidents import clock_text
from shipcaptain.records import IncidentRecord, ReleaseFilter, ReleaseRecord
from shipcaptain.records import ReleaseStatus as StatusName
from shipcaptain.runbook.loader import parse_runbook
from shipcaptain.urls import mask_url
from shipcaptain.web import schemas
from shipcaptain.web.auth import Viewer, current_viewer
from shipcaptain.web.state import WebState

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorOut, "description": what}
    for status, what in {
        400: "the request body cannot be read: not JSON, or not UTF-8 (SC200)",
        401: "no valid token (SC410)",
        403: "permission denied (SC400) or a missing CSRF token (SC411)",
        404: "no such release, step or gate (SC300)",
        405: "the path does not take this method; the Allow header lists those it takes (SC200)",
        409: "the release or gate is not in a state that allows this (SC500)",
        422: "invalid input: a bad runbook, parameter or field (SC1xx, SC2xx)",
    }.items()
}

#: an event's number: what both databases store (a 64-bit integer)
EventSeq = Annotated[int, Query(ge=0, le=2**63 - 1, description="only events after this seq")]

#: where the API lives; its routes carry it (see ``app.add_routes``)
PREFIX = "/api/v1"
router = APIRouter(prefix=PREFIX, dependencies=[Depends(current_viewer)], responses=ERRORS)
Who = Annotated[Viewer, Depends(current_viewer)]
ReleaseId = Annotated[str, "release id"]


def web(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def service_of(request: Request, viewer: Viewer) -> Service:
    """The client contract as the person who asks."""
    return web(request).service(viewer.name)


def release_out(r: ReleaseRecord) -> schemas.Release:
    return schemas.Release.model_validate(release_dict(r))


@router.get("/me", tags=["people"])
def me(viewer: Who) -> schemas.Me:
    """Who the token (or session) belongs to."""
    return schemas.Me(name=viewer.name)


@router.get("/tokens", tags=["people"])
def tokens(
    request: Request,
    viewer: Who,
    person: Annotated[str | None, Query(description="only this person's (admins)")] = None,
) -> list[schemas.Token]:
    """API tokens, never their secrets: yours, or anyone's for an admin (like `token list`)."""
    found = service_of(request, viewer).list_tokens(person)
    return [schemas.Token.model_validate(token_document(t)) for t in found]


def release_filter(
    status: StatusName | None = None,
    environment: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    runbook: Annotated[str | None, Query(description="only this runbook's (its name)")] = None,
    started_by: Annotated[str | None, Query(description="only those this person started")] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="skip the newest")] = 0,
) -> ReleaseFilter:
    """``GET /releases``'s query parameters, made into the filter once."""
    return ReleaseFilter(
        status=status,
        environment=environment,
        limit=limit,
        runbook=runbook,
        started_by=started_by,
        offset=offset,
    )


@router.get("/releases", tags=["releases"])
def list_releases(
    request: Request, viewer: Who, which: Annotated[ReleaseFilter, Depends(release_filter)]
) -> list[schemas.Release]:
    """Releases, newest first (like `release list`)."""
    return [release_out(r) for r in service_of(request, viewer).list_releases(which)]


def narrowed(
    environment: str | None = None, runbook: str | None = None, started_by: str | None = None
) -> dict[str, str | None]:
    """The releases of one environment, runbook (its name) and/or starter (None: any)."""
    return {"environment": environment, "runbook": runbook, "started_by": started_by}


Narrowed = Annotated[dict[str, str | None], Depends(narrowed)]


@router.get("/active-releases", tags=["releases"])
def active_releases(request: Request, viewer: Who, where: Narrowed) -> list[schemas.Release]:
    """Every release not finished yet, newest first (the dashboard's "running")."""
    return [release_out(r) for r in service_of(request, viewer).active_releases(**where)]


@router.get("/live-releases", tags=["releases"])
def live_releases(
    request: Request, viewer: Who, environment: str | None = None, runbook: str | None = None
) -> list[schemas.Release]:
    """What is live: of each runbook in each environment, the newest release that
    succeeded, by environment then runbook (the dashboard's "live now")."""
    found = service_of(request, viewer).live_releases(environment=environment, runbook=runbook)
    return [release_out(r) for r in found]


@router.get("/me/gates", tags=["gates"])
def gates_waiting(request: Request, viewer: Who, where: Narrowed) -> list[schemas.WaitingGate]:
    """The gates you may decide and have not yet, newest release first (the dashboard's
    "waiting for you")."""
    found = service_of(request, viewer).gates_waiting(**where)
    return [
        schemas.WaitingGate(release=release_out(r), gate=schemas.Gate.model_validate(plain(g)))
        for r, g in found
    ]


def _runbook_file(state: WebState, body: schemas.StartRelease) -> Path:
    if (body.runbook_path is None) == (body.runbook_yaml is None):
        raise UsageError("give exactly one of runbook_path and runbook_yaml")
    if body.runbook_path is not None:
        if "\0" in body.runbook_path:
            raise UsageError("runbook_path must not contain a NUL character")
        path = (state.runbook_root / body.runbook_path).resolve()
        if not path.is_relative_to(state.runbook_root):
            raise UsageError(
                f"runbook_path {body.runbook_path!r} is outside the server's runbook "
                "directory; give a path relative to it"
            )
        return path
    assert body.runbook_yaml is not None
    text = body.runbook_yaml
    # checked before it is kept, so that a mistake names the field, not a server path
    parse_runbook(text, "runbook_yaml", registry=state.host.registry)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    directory = state.settings.data_dir / "uploaded-runbooks" / digest
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "runbook.yaml"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return path


@router.post("/releases", status_code=201, tags=["releases"])
def start_release(request: Request, body: schemas.StartRelease, viewer: Who) -> schemas.Release:
    """Validate the runbook and parameters, record the release and queue it for a worker
    (like `release start --detach`)."""
    service = service_of(request, viewer)
    record = service.start(_runbook_file(web(request), body), dict(body.params))
    service.queue(record.id, 1)
    return release_out(record)


@router.get("/releases/{release_id}", tags=["releases"])
def show_release(request: Request, release_id: ReleaseId, viewer: Who) -> schemas.ReleaseDetail:
    """A release: its steps, gates, timeline, comms, incidents and the decisions taken
    (the same document as `release show --json`)."""
    return schemas.ReleaseDetail.of(service_of(request, viewer).show(release_id))


@router.get("/releases/{release_id}/status", tags=["releases"])
def release_status(request: Request, release_id: ReleaseId, viewer: Who) -> schemas.ReleaseStatus:
    """Status of the release and of each step: cheap to poll."""
    progress = service_of(request, viewer).progress(release_id)
    return schemas.ReleaseStatus.model_validate(plain(progress))


@router.get("/releases/{release_id}/events", tags=["releases"])
def release_events(
    request: Request,
    release_id: ReleaseId,
    viewer: Who,
    after: EventSeq = 0,
) -> list[schemas.Event]:
    """The release's timeline (its audit events), oldest first."""
    service = service_of(request, viewer)
    service.get(release_id)  # an unknown release is a 404, not an empty timeline
    return [schemas.Event.model_validate(plain(e)) for e in service.events(release_id, after)]


@router.get("/releases/{release_id}/runbook", tags=["releases"])
def release_runbook(request: Request, release_id: ReleaseId, viewer: Who) -> schemas.RunbookText:
    """The exact runbook text the release runs."""
    r = service_of(request, viewer).get(release_id)
    return schemas.RunbookText(name=r.runbook_name, digest=r.runbook_digest, text=r.runbook_text)


def _decide(
    request: Request, release_id: str, step_id: str, body: schemas.Decision, who: Viewer, how: str
) -> schemas.DecisionOut:
    state = service_of(request, who).decide(
        release_id, step_id, decision=how, comment=body.comment, role=body.role
    )
    return schemas.DecisionOut(
        release=release_id, step=step_id, decision=how, user=who.name, state=state
    )


@router.post("/releases/{release_id}/gates/{step_id:path}/approve", tags=["gates"])
def approve(
    request: Request, release_id: ReleaseId, step_id: str, body: schemas.Decision, viewer: Who
) -> schemas.DecisionOut:
    """Approve a waiting gate, or confirm a checklist item (like `release approve`)."""
    return _decide(request, release_id, step_id, body, viewer, "approve")


@router.post("/releases/{release_id}/gates/{step_id:path}/reject", tags=["gates"])
def reject(
    request: Request, release_id: ReleaseId, step_id: str, body: schemas.Decision, viewer: Who
) -> schemas.DecisionOut:
    """Reject a waiting gate; the gate's step fails (like `release reject`)."""
    return _decide(request, release_id, step_id, body, viewer, "reject")


@router.get("/releases/{release_id}/gates/{step_id:path}/standing", tags=["gates"])
def gate_standing(
    request: Request, release_id: ReleaseId, step_id: str, viewer: Who
) -> schemas.GateStanding:
    """A waiting gate of the release's run as you stand before it: your parts of a gate in
    parts, why you may not decide it, and everyone who may."""
    service = service_of(request, viewer)
    view = service.show(release_id, events=False)
    gate = next((g for g in view.waiting_gates if g.step_id == step_id), None)
    if gate is None:
        raise NotFound(f"step {step_id!r} of release {release_id} is not a gate that waits")
    return schemas.GateStanding.model_validate(plain(service.gate_standing(view.release, gate)))


@router.post("/releases/{release_id}/cancel", tags=["releases"])
def cancel(
    request: Request, release_id: ReleaseId, body: schemas.Cancel, viewer: Who
) -> schemas.Release:
    """Cancel an active release (like `release cancel`)."""
    return release_out(service_of(request, viewer).cancel(release_id, reason=body.reason))


@router.post("/releases/{release_id}/resume", tags=["releases"])
def resume(request: Request, release_id: ReleaseId, viewer: Who) -> schemas.Resumed:
    """Resume a failed or cancelled release in a new run (queued for a worker), or take over
    one whose process died (in this server's engine) (like `release resume`)."""
    state, service = web(request), service_of(request, viewer)
    release = service.get(release_id)
    if release.status in ACTIVE and state.engine is None:
        raise InvalidState(
            f"release {release_id} is {release.status}; taking it over needs an engine and this "
            "server runs none (--no-workers): run `shipcaptain release resume` on a worker host"
        )
    action = service.resume(release_id)
    if action.kind == "new_run":
        service.queue(release_id, action.run)
    elif state.engine is not None:
        state.engine.take_over(release_id, action.run)
    return schemas.Resumed.of(release_id, action)


@router.get("/releases/{release_id}/rollback-plan", tags=["releases"])
def rollback_plan(request: Request, release_id: ReleaseId, viewer: Who) -> schemas.RollbackPlan:
    """What a rollback would run now, given what ran; changes nothing (like `release
    rollback --dry-run`)."""
    entries, blocked = service_of(request, viewer).rollback_preview(release_id)
    return schemas.RollbackPlan(
        release=release_id,
        plan=[schemas.RollbackStep.model_validate(e.__dict__) for e in entries],
        points_of_no_return=blocked,
    )


@router.post("/releases/{release_id}/rollback", status_code=202, tags=["releases"])
def rollback(
    request: Request, release_id: ReleaseId, body: schemas.Rollback, viewer: Who
) -> schemas.RollbackOut:
    """Roll a finished or failed release back (like `release rollback --detach`): queued for a
    worker, it waits for an on-call SRE other than you to approve `rollback/approval`."""
    service = service_of(request, viewer)
    asked = service.rollback(
        release_id,
        reason=body.reason,
        forward_fix=body.forward_fix,
        restore_procedure=body.restore_procedure,
    )
    if asked.run is None:
        return schemas.RollbackOut(id=release_id, run=None, status="forward_fix", approve_with=None)
    service.queue(release_id, asked.run, rollback=asked)
    return schemas.RollbackOut(
        id=release_id, run=asked.run, status="queued", approve_with="rollback/approval"
    )


def incident_out(inc: IncidentRecord) -> schemas.Incident:
    return schemas.Incident.model_validate(
        {**incident_dict(inc), "clocks": clock_text(inc, datetime.now(UTC))}
    )


@router.get("/incidents", tags=["incidents"])
def incidents(request: Request, viewer: Who) -> list[schemas.Incident]:
    """Every incident, newest first, with where its SLA clocks stand (like `incident list`)."""
    return [incident_out(i) for i in service_of(request, viewer).list_incidents()]


@router.get("/incidents/{incident_id}", tags=["incidents"])
def incident(request: Request, incident_id: str, viewer: Who) -> schemas.Incident:
    """One incident (like `incident show`)."""
    return incident_out(service_of(request, viewer).get_incident(incident_id))


@router.post("/incidents", status_code=201, tags=["incidents"])
def open_incident(request: Request, body: schemas.OpenIncident, viewer: Who) -> schemas.Incident:
    """Open an incident: its deadlines come from the SLA table, the channels are notified
    and a worker runs its SLA clock (like `incident open`)."""
    return incident_out(
        service_of(request, viewer).open_incident(
            severity=body.severity, summary=body.summary, release_id=body.release
        )
    )


IncidentAction = Literal["acknowledge", "mitigate", "resolve"]


@router.post("/incidents/{incident_id}/{action}", tags=["incidents"])
def incident_action(
    request: Request,
    incident_id: str,
    action: IncidentAction,
    body: schemas.IncidentNote,
    viewer: Who,
) -> schemas.Incident:
    """Acknowledge, mitigate or resolve an incident; who and when are recorded (like
    `incident ack|mitigate|resolve`)."""
    return incident_out(
        service_of(request, viewer).incident_action(incident_id, action, note=body.note)
    )


@router.get("/audit", tags=["audit"])
def audit_log(
    request: Request,
    viewer: Who,
    after: EventSeq = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    release: Annotated[str | None, Query(description="only this release's events")] = None,
) -> list[schemas.Event]:
    """The audit log (every release's events and the others), oldest first, a page at a
    time: ask again with ``after`` = the last ``seq``."""
    found = service_of(request, viewer).audit_log(release_id=release, after=after, limit=limit)
    return [schemas.Event.model_validate(plain(e)) for e in found]


@router.get("/audit/head", tags=["audit"])
def audit_head(request: Request, viewer: Who) -> schemas.AuditHead:
    """The number of the newest audit event (0: none yet): every change of a release, a
    gate or an incident appends one, so a client that saw this number has seen it all."""
    return schemas.AuditHead(seq=service_of(request, viewer).last_event_seq())


@router.get("/audit/verify", tags=["audit"])
def verify_audit_log(request: Request, viewer: Who) -> schemas.AuditCheck:
    """Check the whole audit log (like `audit verify`): hashes, links, each event's MAC
    with the server's audit key, and the signed checkpoints of its anchor file."""
    check = service_of(request, viewer).verify_audit()
    return schemas.AuditCheck.model_validate(plain(check))


@router.post("/audit/anchor", tags=["audit"])
def anchor_audit_log(request: Request, viewer: Who) -> schemas.Anchor:
    """Sign the audit log's head and append it to the server's anchor file (like
    `audit anchor`); a log that has not grown gets no new checkpoint."""
    return schemas.Anchor.model_validate(service_of(request, viewer).anchor_audit())


@router.get(
    "/audit/public-key",
    tags=["audit"],
    response_class=PlainTextResponse,
    # the key is text; an error is the API's JSON error document, as everywhere else
    responses={
        status: {**answer, "content": {"application/json": {}}} for status, answer in ERRORS.items()
    },
)
def audit_public_key(request: Request, viewer: Who) -> str:
    """The audit public key (PEM): what checkpoints and evidence bundles are checked with."""
    return service_of(request, viewer).audit_public_key()


@router.get("/releases/{release_id}/evidence", tags=["audit"])
def release_evidence(request: Request, release_id: str, viewer: Who) -> dict[str, Any]:
    """A release's evidence bundle (like `audit export`): made from the audit log, with the
    stretch of the chain and the signed checkpoint that prove it
    (docs/reference/audit-format.md)."""
    return service_of(request, viewer).evidence_bundle(release_id)


@router.get("/team", tags=["people"])
def team(request: Request, viewer: Who) -> schemas.Team:
    """The team and the permissions in force (like `team show`)."""
    return schemas.Team.model_validate(service_of(request, viewer).team())


@router.get("/team/runbooks", tags=["people"])
def team_runbooks(request: Request, viewer: Who) -> schemas.RunbookPolicy:
    """Which runbooks may run in which environment, and which environments are protected
    (like `team runbooks list`)."""
    return schemas.RunbookPolicy.model_validate(service_of(request, viewer).runbook_policy())


@router.put("/team", tags=["people"])
def apply_team(request: Request, body: schemas.ApplyTeam, viewer: Who) -> schemas.TeamApplied:
    """Make a team file the team (admins only; like `team apply`). A mistake names the
    file, line and field, and nothing is applied."""
    applied = service_of(request, viewer).apply_team(body.team_yaml, body.file)
    return schemas.TeamApplied.model_validate(applied)


@router.post("/tokens", status_code=201, tags=["people"])
def create_token(request: Request, body: schemas.CreateToken, viewer: Who) -> schemas.TokenCreated:
    """Make a token: yours, or anyone's for an admin (like `token create`). Its secret is
    in this answer only; only its hash is stored."""
    secret, record = service_of(request, viewer).create_token(
        body.person, expires_in=body.expires_in_s, label=body.label
    )
    return schemas.TokenCreated.model_validate({**token_document(record), "token": secret})


@router.post("/tokens/{token_id}/revoke", tags=["people"])
def revoke_token(request: Request, token_id: str, viewer: Who) -> schemas.Token:
    """Revoke a token: yours, or anyone's for an admin (like `token revoke`)."""
    record = service_of(request, viewer).revoke_token(token_id)
    return schemas.Token.model_validate(token_document(record))


#: the permissions a client may ask about before it acts outside a release
ASKABLE = Literal["release.start", "migrations.apply", "worker.run"]


@router.get("/permissions/{action}", tags=["people"])
def allowed(
    request: Request, action: ASKABLE, viewer: Who, environment: str = "*"
) -> schemas.Allowed:
    """May you do ``action`` in ``environment``? 200 with the role you act in, else 403
    (what `migrations apply --server` asks before it touches a database)."""
    role = service_of(request, viewer).authorize(action, environment=environment)
    return schemas.Allowed(action=action, environment=environment, person=viewer.name, role=role)


@router.post("/migrations/runs", status_code=201, tags=["audit"])
def record_migrations(
    request: Request, body: schemas.MigrationRun, viewer: Who
) -> schemas.Recorded:
    """Record a `migrations apply` run outside a release in the audit log, as you (you need
    migrations.apply in its environment)."""
    what = {
        "phase": body.phase,
        "directory": body.directory,
        "database": mask_url(body.database),
        "environment": body.environment,
        "dry_run": body.dry_run,
    }
    seq = service_of(request, viewer).record_migrations(
        body.outcome, what, body.summary, body.outputs
    )
    return schemas.Recorded(event=seq)


@router.get("/workers", tags=["workers"])
def workers(request: Request, viewer: Who) -> list[schemas.Worker]:
    """Engine processes: heartbeats, alive or gone, what they run (like `workers`)."""
    found = service_of(request, viewer).workers()
    return [schemas.Worker.model_validate(worker_dict(w)) for w in found]
