"""Live updates of the pages through server-sent events.

Each stream renders the live parts of a page (the same templates as the page) every
``INTERVAL`` seconds and sends a part only when it changed, as an SSE event named after the
element it replaces. A release's stream ends (event ``end``) once the release finished;
every stream ends after ``LIVE_FOR`` seconds and the browser's EventSource reconnects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from shipcaptain.web import api
from shipcaptain.web.auth import Viewer, current_viewer
from shipcaptain.web.pages import release_context, templates
from shipcaptain.web.state import WebState

router = APIRouter(include_in_schema=False)
Who = Annotated[Viewer, Depends(current_viewer)]
INTERVAL = 0.5
LIVE_FOR = 300.0
RETRY_MS = 2000


def sse(event: str, data: str) -> str:
    lines = data.splitlines() or [""]
    return f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


def _part(name: str, context: dict[str, Any]) -> str:
    return templates.get_template(f"_{name}.html").render(context)


def stream(request: Request, parts: Callable[[], tuple[dict[str, str], bool]]) -> StreamingResponse:
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
                    yield sse(name, html)
            if done:
                yield sse("end", "")
                return
            await asyncio.sleep(INTERVAL)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/releases/{release_id}/live")
async def release_live(request: Request, release_id: str, viewer: Who) -> StreamingResponse:
    """The release page's live parts: header, DAG, waiting gates, comms, timeline."""
    state: WebState = request.app.state.web
    await run_in_threadpool(state.client.get, release_id)  # 404 before the stream starts

    def parts() -> tuple[dict[str, str], bool]:
        context = release_context(state.client.show(release_id), viewer, state.client)
        names = ("summary", "dag", "gates", "comms", "timeline")
        return {name: _part(name, context) for name in names}, bool(context["finished"])

    return stream(request, parts)


@router.get("/releases-live")
async def releases_live(
    request: Request, viewer: Who, environment: str = "", status: str = ""
) -> StreamingResponse:
    """The releases page's table."""
    state: WebState = request.app.state.web
    await run_in_threadpool(
        state.client.list_releases, status=status or None, environment=environment or None
    )  # a bad filter is an error before the stream starts

    def parts() -> tuple[dict[str, str], bool]:
        found = state.client.list_releases(
            status=status or None, environment=environment or None, limit=200
        )
        return {"rows": _part("rows", {"releases": found})}, False

    return stream(request, parts)


@router.get("/audit-live")
async def audit_live(
    request: Request, viewer: Who, after: api.EventSeq = 0, release: str = ""
) -> StreamingResponse:
    """The audit page's rows: new events appear while the page is not full."""
    from shipcaptain.web.pages import AUDIT_PAGE

    state: WebState = request.app.state.web

    def parts() -> tuple[dict[str, str], bool]:
        found = state.client.store.list_events(
            release_id=release or None, after_seq=max(after, 0), limit=AUDIT_PAGE
        )
        return {"events": _part("events", {"events": found})}, len(found) == AUDIT_PAGE

    return stream(request, parts)


@router.get("/incidents-live")
async def incidents_live(request: Request, viewer: Who) -> StreamingResponse:
    """The incidents page's rows (the countdowns tick in the page itself)."""
    state: WebState = request.app.state.web

    def parts() -> tuple[dict[str, str], bool]:
        found = state.client.store.list_incidents()
        return {"incidents": _part("incidents", {"incidents": found, "viewer": viewer})}, False

    return stream(request, parts)
