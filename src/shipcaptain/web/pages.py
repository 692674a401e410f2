"""The dashboard's pages: server-rendered templates; a small script (static/live.js) keeps
them current through server-sent events (``web.live``) and sends the forms without leaving
the page. Every page needs a signed-in viewer; every form carries the CSRF token."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from shipcaptain.cli.common import parse_params
from shipcaptain.cli.render import duration
from shipcaptain.client import ACTIVE, FINISHED, RESUMABLE, Client, ReleaseView
from shipcaptain.errors import AuthenticationFailed, PermissionDenied
from shipcaptain.permissions import GateRule
from shipcaptain.store import RELEASE_STATUSES, GateRecord
from shipcaptain.web import api, schemas
from shipcaptain.web.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_HOURS,
    TooManySignIns,
    Viewer,
    authenticate_token,
    client_address,
    current_viewer,
    is_https,
    same,
    start_session,
)
from shipcaptain.web.state import HERE, WebState

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
Who = Annotated[Viewer, Depends(current_viewer)]


def web(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def render(request: Request, name: str, http_status: int = 200, /, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=http_status)


def error_page(request: Request, status: int, code: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status, code=code, message=message, viewer=None)


def _secure(request: Request) -> bool:
    return is_https(request, web(request).settings.trust_proxy)


def _local(target: str) -> str:
    """Only a path on this server (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/releases"
    return target


# ---- signing in ---------------------------------------------------------------------------


@router.get("/login", name="login_form")
def login_form(request: Request, next: str = "/releases", problem: str = "") -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", next=_local(next), login_csrf=nonce, problem=problem, viewer=None
    )
    response.set_cookie(
        LOGIN_COOKIE,
        web(request).sessions.dump({"csrf": nonce}),
        max_age=600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/releases",
) -> Response:
    state = web(request)
    address = client_address(request, state.settings.trust_proxy)
    try:
        state.limiter.check(f"ip:{address}", f"from {address}")
    except TooManySignIns as exc:
        return _too_many(request, next, exc)
    cookie = state.sessions.load(request.cookies.get(LOGIN_COOKIE, ""), max_age=600)
    if cookie is None or not same(str(cookie.get("csrf", "")), csrf_token):
        return login_form(request, next, "The sign-in form expired; try again.")
    try:
        name = authenticate_token(state.client.store, token.strip())
        state.limiter.check(f"person:{name}", f"for {name}")
        session_id, _ = start_session(state.client.store, token.strip(), address=address)
    except TooManySignIns as exc:
        return _too_many(request, next, exc)
    except AuthenticationFailed as exc:
        return login_form(request, next, str(exc))
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


def _too_many(request: Request, next: str, exc: TooManySignIns) -> Response:
    response = login_form(request, next, str(exc))
    response.status_code = 429
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@router.post("/logout")
def logout(request: Request, viewer: Who) -> Response:
    if viewer.session:
        web(request).client.store.end_web_session(
            viewer.session, actor=viewer.name, why="signed out"
        )
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


# ---- releases -----------------------------------------------------------------------------


@router.get("/")
def home(viewer: Who) -> Response:
    return RedirectResponse("/releases", status_code=303)


@router.get("/releases", name="releases_page")
def releases_page(
    request: Request, viewer: Who, environment: str = "", status: str = ""
) -> HTMLResponse:
    found = web(request).client.list_releases(
        status=status or None, environment=environment or None, limit=200
    )
    return render(
        request,
        "releases.html",
        viewer=viewer,
        releases=found,
        environment=environment,
        status=status,
        statuses=RELEASE_STATUSES,
        runbook_root=web(request).runbook_root,
    )


@router.post("/releases")
def start_from_page(
    request: Request,
    viewer: Who,
    runbook: Annotated[str, Form()],
    params: Annotated[str, Form()] = "",
) -> Response:
    """The start form: a runbook path under the server's runbook directory and name=value
    lines."""
    body = schemas.StartRelease(
        runbook_path=runbook.strip(),
        params=parse_params(tuple(line.strip() for line in params.splitlines() if line.strip())),
    )
    record = api.start_release(request, body, viewer)
    return RedirectResponse(f"/releases/{record.id}", status_code=303)


@dataclass(frozen=True)
class GateChoice:
    """A waiting gate as the viewer sees it: may they decide it, and if not, why."""

    gate: GateRecord
    allowed: bool
    why_not: str
    parts: list[Any] = field(default_factory=list)
    """Of a gate in parts (a changelog sign-off), the viewer's own parts."""

    @property
    def who(self) -> str:
        g = self.gate
        return " or ".join([*(f"role {x}" for x in g.roles), *g.people]) or "anyone"


def gate_choices(view: ReleaseView, viewer: str, client: Client) -> list[GateChoice]:
    out = []
    for gate in view.waiting_gates:
        rule = GateRule.of(gate)
        parts = client.gate_parts_for(view.release, gate, viewer)
        try:
            client.authorize(
                viewer,
                "gate.decide",
                environment=view.release.environment,
                runbook=view.runbook,
                release=view.release,
                gate=rule,
                initiator=gate.evidence.get("initiated_by") if gate.evidence else None,
            )
            if gate.evidence.get("parts") and not parts:
                raise PermissionDenied(f"{viewer} may not decide this gate: no part is theirs")
        except PermissionDenied as exc:
            out.append(GateChoice(gate, False, str(exc)))
        else:
            out.append(GateChoice(gate, True, "", parts))
    return out


def release_context(view: ReleaseView, viewer: Viewer, client: Client) -> dict[str, Any]:
    """What the release page and its live parts are rendered from."""
    now = datetime.now(UTC)
    phases: dict[str, list[Any]] = {}
    for step in view.steps:
        phases.setdefault(step.phase, []).append(step)
    titles = {p.id: p.title or p.id for p in view.runbook.phases}
    return {
        "view": view,
        "r": view.release,
        "viewer": viewer,
        "phases": [(pid, titles.get(pid, pid), steps) for pid, steps in phases.items()],
        "gates": gate_choices(view, viewer.name, client),
        "duration": lambda rec: duration(rec.started_at, rec.ended_at, now) if rec else "",
        "active": view.release.status in ACTIVE,
        "resumable": view.release.status in RESUMABLE,
        "finished": view.release.status in FINISHED,
    }


@router.get("/releases/{release_id}", name="release_page")
def release_page(request: Request, release_id: str, viewer: Who) -> HTMLResponse:
    client = web(request).client
    view = client.show(release_id)
    return render(request, "release.html", **release_context(view, viewer, client))


def _back(request: Request, release_id: str) -> Response:
    """After a form: back to the release page, or (the page's script sent it and stays on
    the page) a plain answer; the live view shows the change."""
    return _after_form(request, f"/releases/{release_id}")


def _after_form(request: Request, page: str) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"ok": True})
    return RedirectResponse(page, status_code=303)


@router.post("/releases/{release_id}/gates/{step_id:path}/{decision}")
def decide_from_page(
    request: Request,
    release_id: str,
    step_id: str,
    decision: str,
    viewer: Who,
    comment: Annotated[str, Form()] = "",
) -> Response:
    body = schemas.Decision(comment=comment)
    if decision == "approve":
        api.approve(request, release_id, step_id, body, viewer)
    elif decision == "reject":
        api.reject(request, release_id, step_id, body, viewer)
    else:
        return error_page(request, 404, "SC300", f"no such decision {decision!r}")
    return _back(request, release_id)


@router.post("/releases/{release_id}/cancel")
def cancel_from_page(
    request: Request, release_id: str, viewer: Who, reason: Annotated[str, Form()]
) -> Response:
    api.cancel(request, release_id, schemas.Cancel(reason=reason), viewer)
    return _back(request, release_id)


@router.post("/releases/{release_id}/resume")
def resume_from_page(request: Request, release_id: str, viewer: Who) -> Response:
    api.resume(request, release_id, viewer)
    return _back(request, release_id)


@router.post("/releases/{release_id}/rollback")
def rollback_from_page(
    request: Request, release_id: str, viewer: Who, reason: Annotated[str, Form()]
) -> Response:
    api.rollback(request, release_id, schemas.Rollback(reason=reason), viewer)
    return _back(request, release_id)


@router.get("/incidents", name="incidents_page")
def incidents_page(request: Request, viewer: Who) -> HTMLResponse:
    """Incidents, newest first, with their SLA clocks counting down."""
    found = web(request).client.store.list_incidents()
    return render(request, "incidents.html", viewer=viewer, incidents=found)


@router.post("/incidents")
def open_incident_from_page(
    request: Request,
    viewer: Who,
    severity: Annotated[str, Form()],
    summary: Annotated[str, Form()],
    release: Annotated[str, Form()] = "",
) -> Response:
    body = schemas.OpenIncident(severity=severity, summary=summary, release=release or None)
    api.open_incident(request, body, viewer)
    return _after_form(request, "/incidents")


@router.post("/incidents/{incident_id}")
def incident_from_page(
    request: Request,
    incident_id: str,
    viewer: Who,
    action: Annotated[api.IncidentAction, Form()],
    note: Annotated[str, Form()] = "",
) -> Response:
    api.incident_action(
        request, incident_id, action, schemas.IncidentNote(note=note or None), viewer
    )
    return _after_form(request, "/incidents")


AUDIT_PAGE = 100


@router.get("/audit", name="audit_page")
def audit_page(
    request: Request, viewer: Who, after: api.EventSeq = 0, release: str = "", verify: bool = False
) -> HTMLResponse:
    """The audit log, oldest first, a hundred events a page; the chain checked on demand."""
    store = web(request).client.store
    events = store.list_events(
        release_id=release or None, after_seq=max(after, 0), limit=AUDIT_PAGE
    )
    return render(
        request,
        "audit.html",
        viewer=viewer,
        events=events,
        after=max(after, 0),
        release=release,
        full=len(events) == AUDIT_PAGE,
        check=web(request).client.verify_audit() if verify else None,
    )


@router.get("/workers", name="workers_page")
def workers_page(request: Request, viewer: Who) -> HTMLResponse:
    state = web(request)
    return render(
        request,
        "workers.html",
        viewer=viewer,
        workers=state.client.workers(),
        takeover_after=state.settings.takeover_after,
    )
