"""The ASGI application: the REST API under /api/v1, the dashboard's pages, their static
files, and one error shape for every failure of the API."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from shipcaptain import errors
from shipcaptain.client import Client
from shipcaptain.contract import Host
from shipcaptain.settings import Settings
from shipcaptain.web import api, live, pages, slack
from shipcaptain.web.auth import CsrfRefused, Sessions, SignInLimiter, TooManySignIns, is_https
from shipcaptain.web.pages import error_page
from shipcaptain.web.state import HERE, WebState

log = logging.getLogger("shipcaptain.web")
API_PREFIX = api.PREFIX

#: HTTP status of each kind of error (the most specific class that matches wins)
STATUS: list[tuple[type[errors.ShipError], int]] = [
    (errors.AuthenticationFailed, 401),
    (TooManySignIns, 429),
    (CsrfRefused, 403),
    (errors.NotFound, 404),
    (errors.PermissionDenied, 403),
    (errors.InvalidState, 409),
    (errors.InvalidRunbook, 422),
    (errors.UsageError, 422),
    (errors.RunbookProblem, 422),
    (errors.StoreError, 503),
    (errors.ActionError, 502),
]


#: on every answer: scripts and styles only from this server, no framing (a page with
#: approve buttons must not be overlaid by another site), no sniffing, no referrer outside
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

#: on every answer over https (or behind a trusted proxy that says https): browsers then
#: refuse plain http to this host for a year
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def status_of(exc: errors.ShipError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    if exc.exit_code == 2:  # any other invalid input (a team file, ...)
        return 422
    return 500


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": code, "message": message}
    if field:
        detail["field"] = field
    return {"error": detail}


def ship_error_body(exc: errors.ShipError) -> dict[str, Any]:
    location = exc.location
    if isinstance(exc, errors.InvalidRunbook) and exc.problems:
        location = exc.problems[0].location
    return error_body(exc.code, str(exc), location.field if location else None)


def wants_html(request: Request) -> bool:
    """A page (not the API, not the page's script asking for JSON)."""
    return not request.url.path.startswith(API_PREFIX) and "application/json" not in (
        request.headers.get("accept", "")
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.ShipError)
    async def ship_error(request: Request, exc: errors.ShipError) -> Response:
        if isinstance(exc, errors.AuthenticationFailed) and wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(
                str(request.url_for("login_form").include_query_params(next=target)), 303
            )
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if wants_html(request) and status != 401:
            return error_page(request, status, exc.code, str(exc))
        return JSONResponse(ship_error_body(exc), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return JSONResponse(
            error_body(errors.UsageError.code, message, where or None), status_code=422
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = {404: errors.NotFound.code, 401: errors.AuthenticationFailed.code}.get(
            exc.status_code, errors.UsageError.code if exc.status_code < 500 else "SC000"
        )
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("internal error serving %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body(
                errors.ShipError.code,
                f"internal error ({type(exc).__name__}); this is a bug in shipcaptain, "
                "the server's log has the traceback",
            ),
            status_code=500,
        )


def _allowed_methods(request: Request) -> list[str]:
    """The methods the routes of the request's path take (Starlette's 405 names only those
    of the first route that matched the path, one route per method here)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def _document_bearer_tokens(app: FastAPI) -> None:
    """Say in the OpenAPI document that every operation needs a bearer token (the
    dependency ``current_viewer`` checks it)."""
    plain = app.openapi

    def with_security() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = plain()
            document.setdefault("components", {})["securitySchemes"] = {
                "token": {"type": "http", "scheme": "bearer", "description": "An API token"}
            }
            document["security"] = [{"token": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = with_security  # type: ignore[method-assign]


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    """The routes of ``routers`` (made once, when their modules are imported) on ``app``,
    as they are. FastAPI's ``include_router`` builds every route of a router again for each
    application, at its first request (each response model's validator): about 80 ms of
    CPU a server, and an application per test in the tests. These routers' routes need
    nothing of an application: their prefix and dependencies are their routers'."""
    for router in routers:
        app.router.routes.extend(router.routes)


def create_app(
    settings: Settings,
    *,
    client: Host | None = None,
    run_workers: bool = False,
    runbook_root: Path | None = None,
    session_key: str | None = None,
) -> FastAPI:
    """The dashboard and the API on ``settings``' state database. ``run_workers``: this
    process also runs an engine (launched and stopped with the application). The in-process
    client (``client``, or one made here) is held as the contract only
    (:class:`~shipcaptain.contract.Host`): the pages and endpoints act through it as the
    person who asks."""
    key = session_key or settings.session_key or secrets.token_urlsafe(32)
    state = WebState(
        settings=settings,
        host=client or Client(settings),
        sessions=Sessions(key),
        runbook_root=(runbook_root or Path.cwd()).resolve(),
        run_workers=run_workers,
        limiter=SignInLimiter(settings.login_attempts, settings.login_window),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # open (and migrate) the state database now: a bad URL stops the server at once
        await run_in_threadpool(state.host.open)
        if state.run_workers:
            state.engine = state.host.host_engine(
                settings.worker_id_or_default("server"), takes_over=True
            )
            # DBOS's synchronous API refuses to run inside an event loop
            await run_in_threadpool(state.engine.launch)
        try:
            yield
        finally:
            state.stopping = True
            if state.engine is not None:
                await run_in_threadpool(state.engine.shutdown)
                state.engine = None
            if client is None:
                state.host.close()

    app = FastAPI(
        title="shipcaptain",
        summary="Start, watch and steer releases: the REST API of shipcaptain server.",
        description="Every endpoint needs `Authorization: Bearer <token>` (or the dashboard's "
        "session cookie). Errors have one shape: "
        '`{"error": {"code": "SC300", "message": "...", "field": "..."}}`; the codes are '
        "those of the CLI (docs/reference/cli.md).",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.web = state
    _install_error_handlers(app)
    _document_bearer_tokens(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if is_https(request, settings.trust_proxy):
            response.headers[HSTS[0]] = HSTS[1]
        return response

    add_routes(app, api.router, slack.router, live.router, pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the API (what /api/v1/openapi.json serves)."""
    from shipcaptain.settings import load_settings

    app = create_app(load_settings(), session_key="documentation")
    document: dict[str, Any] = app.openapi()
    return document
