"""The dashboard's pages: server-rendered templates; a small script (static/live.js) keeps
them current through server-sent events (``web.live``) and sends the forms without leaving
the page. Every page needs a signed-in viewer; every form carries the CSRF token."""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from shipcaptain.client import ACTIVE, FINISHED, RESUMABLE, ReleaseView, StepView
from shipcaptain.contract import Service
from shipcaptain.errors import AuthenticationFailed
from shipcaptain.plan import RollbackEntry
from shipcaptain.records import (
    RELEASE_STATUSES,
    DecisionRecord,
    GateRecord,
    ReleaseFilter,
    ReleaseRecord,
)
from shipcaptain.runbook.durations import format_between
from shipcaptain.runbook.model import Runbook
from shipcaptain.runbook.params import parse_params
from shipcaptain.web import api, schemas
from shipcaptain.web.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_HOURS,
    TooManySignIns,
    Viewer,
    client_address,
    current_viewer,
    is_https,
    same,
)
from shipcaptain.web.state import HERE, WebState

templates = Jinja2Templates(directory=HERE / "templates")
#: a URL in text (a CI run, a commit, an image, a dashboard): shown as a link
URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]")


def linkify(text: object) -> Markup:
    """``text`` escaped, its http(s) URLs as links that open apart from the dashboard."""
    plain = str(text)
    out, last = [], 0
    for found in URL.finditer(plain):
        out.append(escape(plain[last : found.start()]))
        out.append(Markup('<a href="{0}" rel="noopener noreferrer">{0}</a>').format(found.group(0)))
        last = found.end()
    out.append(escape(plain[last:]))
    return Markup("").join(out)


def table_columns(rows: object) -> list[str]:
    """A list of mappings is shown as a table: its columns (every key, first seen first);
    anything else is not a table (no columns)."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return []
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(str(k) for k in row))
    return list(columns)


templates.env.filters["linkify"] = linkify
templates.env.globals["table_columns"] = table_columns
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
        name = state.host.authenticate(token.strip())
        state.limiter.check(f"person:{name}", f"for {name}")
        session_id, _ = state.host.start_web_session(token.strip(), address=address)
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
        web(request).host.end_web_session(viewer.session, actor=viewer.name, why="signed out")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
    return response


# ---- releases -----------------------------------------------------------------------------


@router.get("/")
def home(viewer: Who) -> Response:
    return RedirectResponse("/releases", status_code=303)


#: releases a page of the home page's table
PAGE = 50


@dataclass(frozen=True)
class Filters:
    """The home page's filters (empty: any) and its page (from 1)."""

    runbook: str = ""
    environment: str = ""
    status: str = ""
    person: str = ""
    page: int = 1

    def of(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook or None,
            "environment": self.environment or None,
            "started_by": self.person or None,
        }

    def releases(self) -> ReleaseFilter:
        """The releases table's filter: this page's releases and one more (whether there
        is a next page)."""
        offset = (max(self.page, 1) - 1) * PAGE
        return ReleaseFilter(status=self.status or None, limit=PAGE + 1, offset=offset, **self.of())

    def query(self, page: int | None = None) -> str:
        return urlencode(
            {
                "runbook": self.runbook,
                "environment": self.environment,
                "status": self.status,
                "person": self.person,
                "page": self.page if page is None else page,
            }
        )


@dataclass(frozen=True)
class Waiting:
    """A gate the viewer may decide now, on the home page."""

    release: ReleaseRecord
    gate: GateRecord


def waiting_for(service: Service, filters: Filters) -> list[Waiting]:
    """The gates waiting for the viewer (``service``'s person): they may decide them and
    have not yet (of the releases the filters let through), every one of them."""
    if filters.status and filters.status != "waiting":
        return []
    return [Waiting(release, gate) for release, gate in service.gates_waiting(**filters.of())]


def live_now(service: Service, filters: Filters) -> list[ReleaseRecord]:
    """What is live: of each runbook in each environment (those the filters name), the
    newest release that succeeded (a rolled-back one is not live)."""
    return service.live_releases(
        runbook=filters.runbook or None, environment=filters.environment or None
    )


def home_parts(service: Service, viewer: Viewer, filters: Filters) -> dict[str, Any]:
    """The home page's live parts, from the viewer's gates down to the rest, paged."""
    mine = waiting_for(service, filters)
    running = [
        r
        for r in service.active_releases(**filters.of())
        if not filters.status or r.status == filters.status
    ]
    page = max(filters.page, 1)
    found = service.list_releases(filters.releases())
    return {
        "viewer": viewer,
        "mine": mine,
        "running": running,
        "releases": found[:PAGE],
        "more": len(found) > PAGE,
        "page": page,
        "filters": filters,
        "live_now": live_now(service, filters),
    }


def home_filters(
    environment: str = "",
    status: str = "",
    runbook: str = "",
    person: str = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Filters:
    """The home page's filters from its query (the page and its live stream)."""
    return Filters(runbook, environment, status, person, page)


HomeFilters = Annotated[Filters, Depends(home_filters)]


@router.get("/releases", name="releases_page")
def releases_page(request: Request, viewer: Who, filters: HomeFilters) -> HTMLResponse:
    """What needs me now: the gates waiting for the viewer, then what is running, what is
    live in each environment, then every release, newest first, a page at a time."""
    return render(
        request,
        "releases.html",
        statuses=RELEASE_STATUSES,
        runbook_root=web(request).runbook_root,
        **home_parts(web(request).service(viewer.name), viewer, filters),
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
    started = api.start_release(request, body, viewer).model_dump()
    return RedirectResponse(f"/releases/{started['id']}", status_code=303)


@dataclass(frozen=True)
class GateChoice:
    """A waiting gate as the viewer sees it: may they decide it, and if not, why; what they
    will be recorded as having seen; how far it is; who else may decide it."""

    gate: GateRecord
    allowed: bool
    why_not: str
    parts: list[Any] = field(default_factory=list)
    """Of a gate in parts (a changelog sign-off), the viewer's own parts."""
    decisions: list[DecisionRecord] = field(default_factory=list)
    """The decisions taken at this gate in this run, oldest first."""
    others: list[str] = field(default_factory=list)
    """Who else may still decide it (not the viewer, nobody who already did)."""
    refused: str = ""
    """The engine's latest refusal of the viewer's decision at this gate, if any."""
    plan: list[RollbackEntry] = field(default_factory=list)
    """Of a rollback gate: what the rollback will run once approved."""
    no_return: list[str] = field(default_factory=list)

    @property
    def who(self) -> str:
        g = self.gate
        return " or ".join([*(f"role {x}" for x in g.roles), *g.people]) or "anyone"

    @property
    def seen(self) -> dict[str, Any]:
        """The gate's stored evidence as the viewer's decision will keep it: of a gate in
        parts, only the viewer's parts (shown apart, so left out here)."""
        return {k: v for k, v in (self.gate.evidence or {}).items() if k != "parts"}

    @property
    def approvals(self) -> int:
        """Approvals so far; of a gate in parts, the parts confirmed (each decision keeps
        the parts that were the decider's)."""
        approved = [d for d in self.decisions if d.decision == "approve"]
        if not (self.gate.evidence or {}).get("parts"):
            return len(approved)
        return len({p.get("title") for d in approved for p in d.evidence.get("parts") or []})

    @property
    def needed(self) -> int:
        parts = (self.gate.evidence or {}).get("parts")
        return len(parts) if parts else self.gate.quorum


def gate_choices(view: ReleaseView, service: Service) -> list[GateChoice]:
    """The release's waiting gates as the viewer (``service``'s person) sees them."""
    viewer = service.user
    out = []
    for gate in view.waiting_gates:
        decided = [d for d in view.decisions if d.step_id == gate.step_id and d.run == gate.run]
        standing = service.gate_standing(view.release, gate)
        parts, why_not = standing.parts, standing.why_not
        mine = [d for d in decided if d.user == viewer]
        if mine and not why_not:
            d = mine[0]
            why_not = (
                f"you already decided ({d.decision}, {d.at.strftime('%H:%M:%S')} UTC); "
                "each person counts once"
            )
        # who may decide is worked out once per gate state, not on every render
        others = [
            name
            for name in standing.deciders
            if name != viewer and all(d.user != name for d in decided)
        ]
        refused = [
            e.message
            for e in view.events
            if e.kind == "gate.refused"
            and e.step_id == gate.step_id
            and e.actor == viewer
            and e.at >= gate.opened_at
        ]
        plan: list[RollbackEntry] = []
        no_return: list[str] = []
        if gate.kind == "rollback":
            plan, no_return = service.rollback_preview(view.release.id)
        out.append(
            GateChoice(
                gate,
                not why_not,
                why_not,
                parts if not why_not else [],
                decided,
                others,
                refused[-1] if refused else "",
                plan,
                no_return,
            )
        )
    return out


#: the step statuses of a finished step that went well, and of one that did not
DONE = frozenset({"succeeded", "skipped"})
BAD = frozenset({"failed", "timed_out", "cancelled"})


@dataclass(frozen=True)
class PhaseView:
    """A phase of the release page: its steps, its status at a glance and its times. A
    phase that went well is shown folded; the one at work or that failed is open."""

    id: str
    title: str
    steps: list[StepView]
    now: datetime

    @property
    def status(self) -> str:
        found = {s.status for s in self.steps}
        if found & {"failed", "timed_out"}:
            return "failed"
        if found & {"running", "waiting"}:
            return sorted(found & {"running", "waiting"})[0]
        if found <= DONE:
            return "succeeded"
        if found == {"pending"}:
            return "pending"
        if "cancelled" in found:
            return "cancelled"
        return "running" if found & DONE else "pending"

    @property
    def open(self) -> bool:
        return self.status != "succeeded"

    @property
    def done(self) -> int:
        return sum(1 for s in self.steps if s.status in DONE)

    @property
    def started(self) -> datetime | None:
        found = [s.record.started_at for s in self.steps if s.record and s.record.started_at]
        return min(found) if found else None

    @property
    def ended(self) -> datetime | None:
        if self.status in ("running", "waiting", "pending"):
            return None
        found = [s.record.ended_at for s in self.steps if s.record and s.record.ended_at]
        return max(found) if found else None

    @property
    def took(self) -> str:
        return format_between(self.started, self.ended, self.now)


@dataclass(frozen=True)
class Point:
    """One measurement of a metrics chart: where it is drawn and what it was."""

    x: float
    y: float
    round: int
    value: Any
    verdict: str
    reason: str


@dataclass(frozen=True)
class MetricsChart:
    """A ``metrics`` step's query drawn: each measurement against its threshold, the
    inconclusive ones marked (at the bottom, with why)."""

    name: str
    threshold: str
    line: float | None
    """The threshold's height in the drawing, when the runbook gives a number."""
    points: list[Point]

    WIDTH = 240
    HEIGHT = 64

    @property
    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "inconclusive": 0}
        for p in self.points:
            out[p.verdict] = out.get(p.verdict, 0) + 1
        return out


def _number(value: Any) -> float | None:
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) else None


def metrics_charts(step: StepView, runbook: Runbook) -> list[MetricsChart]:
    """The charts of a ``metrics`` step that measured something (else none)."""
    measured = (step.record.outputs.get("measurements") if step.record else None) or []
    if step.action != "metrics" or not isinstance(measured, list):
        return []
    queries = runbook.steps[step.id].with_.get("queries") if step.id in runbook.steps else None
    limits = {
        str(q.get("name")): q for q in (queries if isinstance(queries, list) else [])
        if isinstance(q, dict)
    }  # fmt: skip
    names = list(dict.fromkeys(str(m.get("name")) for m in measured if isinstance(m, dict)))
    charts = []
    for name in names:
        rows = [m for m in measured if isinstance(m, dict) and str(m.get("name")) == name]
        q = limits.get(name, {})
        unit = str(q.get("unit") or "")
        bounds = [b for b in (_number(q.get("below")), _number(q.get("above"))) if b is not None]
        parts = [f"{word} {q[k]}{unit}" for k, word in (("below", "<"), ("above", ">")) if k in q]
        values = [v for v in (_number(m.get("value")) for m in rows) if v is not None]
        low = min([*values, *bounds, 0.0])
        high = max([*values, *bounds]) if values or bounds else 1.0
        span = (high - low) or 1.0
        top, bottom = 6.0, MetricsChart.HEIGHT - 10.0

        def y(v: float, top: float = top, bottom: float = bottom, low: float = low,
              span: float = span) -> float:  # fmt: skip
            return round(bottom - (v - low) / span * (bottom - top), 1)

        step_x = (MetricsChart.WIDTH - 20) / max(len(rows) - 1, 1)
        points = []
        for i, m in enumerate(rows):
            v = _number(m.get("value"))
            points.append(
                Point(
                    x=round(10 + i * step_x, 1),
                    y=y(v) if v is not None and m.get("verdict") != "inconclusive" else bottom + 4,
                    round=int(m.get("round") or i + 1),
                    value=m.get("value"),
                    verdict=str(m.get("verdict") or "inconclusive"),
                    reason=str(m.get("reason") or ""),
                )
            )
        charts.append(
            MetricsChart(
                name=name,
                threshold=" and ".join(parts) or "no threshold in the runbook",
                line=y(bounds[0]) if bounds else None,
                points=points,
            )
        )
    return charts


def release_context(view: ReleaseView, viewer: Viewer, service: Service) -> dict[str, Any]:
    """What the release page and its live parts are rendered from."""
    now = datetime.now(UTC)
    phases: dict[str, list[StepView]] = {}
    for step in view.steps:
        phases.setdefault(step.phase, []).append(step)
    titles = {p.id: p.title or p.id for p in view.runbook.phases}
    r = view.release
    return {
        "view": view,
        "events": view.events,
        "r": r,
        "viewer": viewer,
        "phases": [
            PhaseView(pid, titles.get(pid, pid), steps, now) for pid, steps in phases.items()
        ],
        "gates": gate_choices(view, service),
        "duration": lambda rec: format_between(rec.started_at, rec.ended_at, now) if rec else "",
        "took": format_between(r.started_at, r.ended_at, now),
        "charts": lambda step: metrics_charts(step, view.runbook),
        "active": r.status in ACTIVE,
        "resumable": r.status in RESUMABLE,
        "finished": r.status in FINISHED,
    }


@router.get("/releases/{release_id}", name="release_page")
def release_page(request: Request, release_id: str, viewer: Who) -> HTMLResponse:
    service = web(request).service(viewer.name)
    view = service.show(release_id)
    return render(request, "release.html", **release_context(view, viewer, service))


def _back(request: Request, release_id: str, message: str = "") -> Response:
    """After a form: back to the release page, or (the page's script sent it and stays on
    the page) a plain answer saying what happened; the live view shows the change."""
    return _after_form(request, f"/releases/{release_id}", message)


def _after_form(request: Request, page: str, message: str = "") -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"ok": True, "message": message})
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
        out = api.approve(request, release_id, step_id, body, viewer)
    elif decision == "reject":
        out = api.reject(request, release_id, step_id, body, viewer)
    else:
        return error_page(request, 404, "SC300", f"no such decision {decision!r}")
    done = "approval" if decision == "approve" else "rejection"
    if out.state == "recorded":
        said = f"Your {done} of {step_id} is recorded."
    else:  # no engine took it yet: it checks it when it runs the release again
        said = (
            f"Your {done} of {step_id} is sent; no engine has taken it yet. The engine checks "
            "it when it runs the release, and this page shows its answer."
        )
    return _back(request, release_id, said)


@router.post("/releases/{release_id}/cancel")
def cancel_from_page(
    request: Request, release_id: str, viewer: Who, reason: Annotated[str, Form()]
) -> Response:
    api.cancel(request, release_id, schemas.Cancel(reason=reason), viewer)
    return _back(request, release_id)


@router.post("/releases/{release_id}/resume")
def resume_from_page(request: Request, release_id: str, viewer: Who) -> Response:
    out = api.resume(request, release_id, viewer)
    return _back(request, release_id, f"Resumed: run {out.run} ({out.reason}).")


@router.post("/releases/{release_id}/rollback")
def rollback_from_page(
    request: Request, release_id: str, viewer: Who, reason: Annotated[str, Form()]
) -> Response:
    out = api.rollback(request, release_id, schemas.Rollback(reason=reason), viewer)
    return _back(
        request,
        release_id,
        f"Rollback asked for (run {out.run}): an on-call SRE other than you approves "
        f"{out.approve_with} on this page.",
    )


@router.get("/incidents", name="incidents_page")
def incidents_page(request: Request, viewer: Who) -> HTMLResponse:
    """Incidents, newest first, with their SLA clocks counting down."""
    found = web(request).service(viewer.name).list_incidents()
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


@router.post("/incidents/{incident_id}/{action}")
def incident_from_page(
    request: Request,
    incident_id: str,
    action: api.IncidentAction,
    viewer: Who,
    note: Annotated[str, Form()] = "",
) -> Response:
    """Each of the row's buttons posts to its own address (``formaction``): a field named
    ``action`` would hide the form's own ``action`` from the page's script."""
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
    service = web(request).service(viewer.name)
    events = service.audit_log(release_id=release or None, after=max(after, 0), limit=AUDIT_PAGE)
    return render(
        request,
        "audit.html",
        viewer=viewer,
        events=events,
        after=max(after, 0),
        release=release,
        full=len(events) == AUDIT_PAGE,
        check=service.verify_audit() if verify else None,
    )


@router.get("/workers", name="workers_page")
def workers_page(request: Request, viewer: Who) -> HTMLResponse:
    state = web(request)
    return render(
        request,
        "workers.html",
        viewer=viewer,
        workers=state.service(viewer.name).workers(),
        takeover_after=state.settings.takeover_after,
    )


# ---- rehearsals (kept by `shipcaptain rehearse`; shipcaptain.rehearsals) -----------------

VERDICT_CLASS = {"caught": "succeeded", "caught late": "waiting", "missed": "failed"}


def verdict_class(verdict: str) -> str:
    """A verdict's badge: caught green, caught late yellow, missed red, else plain."""
    return VERDICT_CLASS.get(verdict, "skipped")


templates.env.globals["verdict_class"] = verdict_class


@router.get("/rehearsals", name="rehearsals_page")
def rehearsals_page(request: Request, viewer: Who) -> HTMLResponse:
    """The kept rehearsals, newest first."""
    state = web(request)
    return render(
        request,
        "rehearsals.html",
        viewer=viewer,
        rehearsals=state.host.list_rehearsals(),
        folder=state.settings.rehearsals_path,
    )


@router.get("/rehearsals/{rehearsal_id}", name="rehearsal_page")
def rehearsal_page(request: Request, rehearsal_id: str, viewer: Who) -> HTMLResponse:
    """One rehearsal: its scorecard, the checks that would have caught what it missed, its
    evidence bundles and its Markdown report."""
    report = web(request).host.rehearsal(rehearsal_id)
    return render(request, "rehearsal.html", viewer=viewer, r=report)


@router.get("/rehearsals/{rehearsal_id}/report.json")
def rehearsal_json(request: Request, rehearsal_id: str, viewer: Who) -> JSONResponse:
    return JSONResponse(web(request).host.rehearsal(rehearsal_id).report)


@router.get("/rehearsals/{rehearsal_id}/{name:path}")
def rehearsal_evidence(request: Request, rehearsal_id: str, name: str, viewer: Who) -> Response:
    """An evidence file of the rehearsal, as text (JSON or Markdown), never as a page."""
    path = web(request).host.rehearsal_file(rehearsal_id, name)
    media = "application/json" if path.suffix == ".json" else "text/plain; charset=utf-8"
    return Response(path.read_bytes(), media_type=media)
