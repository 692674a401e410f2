"""Live updates of the pages through server-sent events.

Each stream renders the live parts of a page (the same templates as the page) every
``INTERVAL`` seconds and sends a part only when it changed, as an SSE event named after the
element it replaces. A release's stream ends (event ``end``) once the release finished;
every stream ends after ``LIVE_FOR`` seconds and the browser's EventSource reconnects.

A release's stream sends only what changed: it first asks the store cheaply whether
anything did (the release, its steps' newest tries, new events), renders the page's parts
only then (and every ``REFRESH`` seconds: the engine's health ages), and sends one step, one
phase's heading (``patch``: the element's id on the first line, then its new HTML) or the
new timeline entries (``append``) rather than the whole graph; the whole graph only when its
shape changed (a rollback adds its steps).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from shipcaptain.contract import Service
from shipcaptain.web import api
from shipcaptain.web.auth import Viewer, current_viewer
from shipcaptain.web.pages import HomeFilters, home_parts, release_context, templates
from shipcaptain.web.state import WebState

router = APIRouter(include_in_schema=False)
Who = Annotated[Viewer, Depends(current_viewer)]
INTERVAL = 0.5
#: the home page looks at every waiting release: less often
HOME_INTERVAL = 2.0
LIVE_FOR = 300.0
RETRY_MS = 2000


def sse(event: str, data: str) -> str:
    lines = data.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def _part(name: str, context: dict[str, Any]) -> str:
    return templates.get_template(f"_{name}.html").render(context)


def stream(
    request: Request,
    parts: Callable[[], tuple[dict[str, str], bool]],
    interval: float = INTERVAL,
) -> StreamingResponse:
    state: WebState = request.app.state.web

    async def events() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        sent: dict[str, str] = {}
        until = time.monotonic() + LIVE_FOR
        while not state.stopping and time.monotonic() < until:
            if await request.is_disconnected():
                return
            found, done = await run_in_threadpool(parts)
            for name, html in found.items():
                if sent.get(name) != html:
                    sent[name] = html
                    # "patch:ID" and "append:ID#n": the element's id on the first line
                    kind, _, target = name.partition(":")
                    target = target.split("#")[0]
                    yield sse(kind, f"{target}\n{html}") if target else sse(name, html)
            if done:
                yield sse("end", "")
                return
            await asyncio.sleep(interval)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


#: a release's stream renders its parts at least this often (seconds), changed or not
REFRESH = 10.0


@dataclass
class ReleaseStream:
    """What one viewer's stream of one release last rendered and sent."""

    release_id: str
    viewer: Viewer
    service: Service
    seen: tuple[Any, ...] | None = None
    rendered_at: float = 0.0
    shape: list[tuple[str, list[str]]] | None = None
    pieces: dict[str, str] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)
    last_seq: int = 0

    def changed(self) -> bool:
        """Whether anything the page shows may have changed: three small reads."""
        service = self.service
        release = service.get(self.release_id)
        newer = service.audit_log(release_id=self.release_id, after=self.last_seq, limit=1)
        steps = service.step_runs(self.release_id)
        seen = (release, bool(newer), tuple(sorted(steps.items())))
        if seen == self.seen and time.monotonic() - self.rendered_at < REFRESH:
            return False
        self.seen = (release, False, seen[2])  # once rendered, those events are not new
        return True

    def parts(self) -> tuple[dict[str, str], bool]:
        if not self.changed():
            return {}, False
        self.rendered_at = time.monotonic()
        context = release_context(self.service.show(self.release_id), self.viewer, self.service)
        out = {"summary": _part("summary", context)}
        # a step is rendered again only when its newest try changed; its phase's heading
        # and the overview only when one of their steps did
        records = {s.id: s.record for p in context["phases"] for s in p.steps}
        moved = {k for k, v in records.items() if k not in self.records or self.records[k] != v}
        pieces: dict[str, str] = {}
        if moved or "overview" not in self.pieces:
            pieces["overview"] = _part("overview", context)
        for phase in context["phases"]:
            head = f"phase-head-{phase.id}"
            if head not in self.pieces or any(s.id in moved for s in phase.steps):
                pieces[head] = _part("phase_head", {**context, "p": phase})
            for step in phase.steps:
                key = f"step-{step.id}"
                if key not in self.pieces or step.id in moved:
                    pieces[key] = _part("step", {**context, "s": step})
        self.records = records
        shape = [(p.id, [s.id for s in p.steps]) for p in context["phases"]]
        if shape != self.shape:  # the first time, or a rollback added its steps
            out["dag"] = _part("dag", context)
        else:
            out.update({f"patch:{k}": v for k, v in pieces.items() if self.pieces.get(k) != v})
        self.shape = shape
        self.pieces = {**self.pieces, **pieces}
        out["gates"] = _part("gates", context)
        out["comms"] = _part("comms", context)
        events = context["view"].events
        if not self.last_seq:
            out["timeline"] = _part("timeline", context)
        else:
            new = [e for e in events if e.seq > self.last_seq]
            if new:
                out[f"append:timeline-list#{new[-1].seq}"] = _part(
                    "timeline_items", {"events": new}
                )
        self.last_seq = events[-1].seq if events else self.last_seq
        return out, bool(context["finished"])


@router.get("/releases/{release_id}/live")
async def release_live(request: Request, release_id: str, viewer: Who) -> StreamingResponse:
    """The release page's live parts: header, graph (step by step), waiting gates, comms,
    timeline (new entries)."""
    state: WebState = request.app.state.web
    service = state.service(viewer.name)
    await run_in_threadpool(service.get, release_id)  # 404 before the stream starts
    return stream(request, ReleaseStream(release_id, viewer, service).parts)


@router.get("/releases-live")
async def releases_live(request: Request, viewer: Who, filters: HomeFilters) -> StreamingResponse:
    """The home page's parts: waiting for you, running, what is live, the table's page."""
    state: WebState = request.app.state.web
    service = state.service(viewer.name)
    # a bad filter is an error before the stream starts
    await run_in_threadpool(service.list_releases, filters.releases())
    seen: dict[str, Any] = {"seq": None, "at": 0.0}

    def parts() -> tuple[dict[str, str], bool]:
        # every change of a release or a gate is an event: nothing new, nothing to render
        seq = service.last_event_seq()
        if seq == seen["seq"] and time.monotonic() - seen["at"] < REFRESH:
            return {}, False
        seen.update(seq=seq, at=time.monotonic())
        context = home_parts(service, viewer, filters)
        names = ("mine", "running", "live-now", "rows")
        return {name: _part(name, context) for name in names}, False

    return stream(request, parts, HOME_INTERVAL)


@router.get("/audit-live")
async def audit_live(
    request: Request, viewer: Who, after: api.EventSeq = 0, release: str = ""
) -> StreamingResponse:
    """The audit page's rows: new events appear while the page is not full."""
    from shipcaptain.web.pages import AUDIT_PAGE

    state: WebState = request.app.state.web
    service = state.service(viewer.name)

    def parts() -> tuple[dict[str, str], bool]:
        found = service.audit_log(release_id=release or None, after=max(after, 0), limit=AUDIT_PAGE)
        return {"events": _part("events", {"events": found})}, len(found) == AUDIT_PAGE

    return stream(request, parts)


@dataclass
class IncidentsStream:
    """What one viewer's stream of the incidents page last rendered and sent: the rows are
    rendered only after a new event (every incident change appends one; at least every
    ``REFRESH`` seconds), and only a row that changed is sent (``patch``); the whole table
    only when its rows are not the same incidents in the same order (one opened)."""

    viewer: Viewer
    service: Service
    seq: int | None = None
    rendered_at: float = 0.0
    rows: dict[str, str] = field(default_factory=dict)
    order: list[str] | None = None

    def parts(self) -> tuple[dict[str, str], bool]:
        seq = self.service.last_event_seq()
        if seq == self.seq and time.monotonic() - self.rendered_at < REFRESH:
            return {}, False
        self.seq, self.rendered_at = seq, time.monotonic()
        found = self.service.list_incidents()
        order = [i.id for i in found]
        if order != self.order:
            self.order = order
            self.rows = {i.id: _part("incident", {"i": i, "viewer": self.viewer}) for i in found}
            return {
                "incidents": _part("incidents", {"incidents": found, "viewer": self.viewer})
            }, False
        out: dict[str, str] = {}
        for incident in found:
            html = _part("incident", {"i": incident, "viewer": self.viewer})
            if self.rows.get(incident.id) != html:
                self.rows[incident.id] = html
                out[f"patch:incident-{incident.id}#{seq}"] = html
        return out, False


@router.get("/incidents-live")
async def incidents_live(request: Request, viewer: Who) -> StreamingResponse:
    """The incidents page's rows, a changed row at a time (the countdowns tick in the page
    itself)."""
    state: WebState = request.app.state.web
    return stream(request, IncidentsStream(viewer, state.service(viewer.name)).parts)


@router.get("/workers-live")
async def workers_live(request: Request, viewer: Who) -> StreamingResponse:
    """The workers page's rows: heartbeats, processes that start or go."""
    state: WebState = request.app.state.web
    takeover_after = state.settings.takeover_after
    service = state.service(viewer.name)

    def parts() -> tuple[dict[str, str], bool]:
        context = {"workers": service.workers(), "takeover_after": takeover_after}
        return {"workers": _part("workers", context)}, False

    return stream(request, parts, HOME_INTERVAL)
