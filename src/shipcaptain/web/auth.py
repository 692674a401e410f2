"""Who is asking: the one dependency every page and endpoint goes through.

A request is authenticated by a bearer token (``Authorization: Bearer <token>``: the API,
the CLI's ``--server``) or by the dashboard's session cookie, which the sign-in form sets
after checking a token. The cookie is signed (itsdangerous), ``HttpOnly``,
``SameSite=Strict`` and ``Secure`` when the server is reached over TLS; it carries the
token, so a token that expires or is revoked ends the session too. A request that changes
something with the cookie must carry the session's CSRF token (a form field or the
``X-CSRF-Token`` header); a bearer token needs none (a browser never sends one by itself).

The token itself is checked by ``shipcaptain.identity.authenticate`` (``authenticate_token``
is the only place that asks it).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from shipcaptain.errors import AuthenticationFailed, ShipError
from shipcaptain.identity import authenticate
from shipcaptain.store import Store

SESSION_COOKIE = "shipcaptain_session"
LOGIN_COOKIE = "shipcaptain_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_HOURS = 12


class CsrfRefused(ShipError, PermissionError):
    """A form or request sent with the session cookie without the session's CSRF token."""

    code = "SC411"
    exit_code = 4


@dataclass(frozen=True)
class Viewer:
    """The person behind a request."""

    name: str
    csrf: str  # the session's CSRF token ("" for a bearer token: it needs none)
    via: str  # "token" or "session"


class Sessions:
    """Signs and reads the session and sign-in cookies."""

    def __init__(self, key: str) -> None:
        self._signer = URLSafeTimedSerializer(key, salt="shipcaptain.web.session")

    def dump(self, data: dict[str, str]) -> str:
        return self._signer.dumps(data)

    def load(self, value: str, max_age: int = SESSION_HOURS * 3600) -> dict[str, Any] | None:
        try:
            data = self._signer.loads(value, max_age=max_age)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def new_csrf() -> str:
        return secrets.token_urlsafe(24)


def authenticate_token(store: Store, token: str) -> str:
    """The name of the person ``token`` belongs to (AuthenticationFailed if it is unknown,
    expired or revoked, or its person left the team)."""
    return authenticate(store, token).name


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


async def current_viewer(request: Request) -> Viewer:
    """The dependency of every page and endpoint (except sign-in and the static files)."""
    state = request.app.state.web
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("the Authorization header must be: Bearer <token>")
        name = await run_in_threadpool(authenticate_token, state.client.store, token.strip())
        return Viewer(name=name, csrf="", via="token")
    cookie = request.cookies.get(SESSION_COOKIE)
    session = state.sessions.load(cookie) if cookie else None
    if session is None or not isinstance(session.get("token"), str):
        raise AuthenticationFailed("sign in with a token, or send Authorization: Bearer <token>")
    name = await run_in_threadpool(authenticate_token, state.client.store, session["token"])
    csrf = str(session.get("csrf", ""))
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            sent = str((await request.form()).get(CSRF_FIELD, ""))
        if not same(sent, csrf):
            raise CsrfRefused("this form is stale or was not sent by the dashboard; reload it")
    return Viewer(name=name, csrf=csrf, via="session")
