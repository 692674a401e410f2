"""Who is asking: the one dependency every page and endpoint goes through.

A request is authenticated by a bearer token (``Authorization: Bearer <token>``: the API,
the CLI's ``--server``) or by the dashboard's session cookie, which the sign-in form sets
after checking a token. The cookie holds only a random session id (``HttpOnly``,
``SameSite=Strict``, ``Secure`` over https); the session lives in the state database
(``sc_web_sessions``: the hash of the id, the person, the id of the token that opened it,
its CSRF token and its end), never the token. Signing out ends it; so does revoking or the
expiry of the token that opened it, or the person leaving the team. A request that changes
something with the cookie must carry the session's CSRF token (a form field or the
``X-CSRF-Token`` header); a bearer token needs none (a browser never sends one by itself).

Sign-ins are rate-limited per client address and per person (:class:`SignInLimiter`).

The token itself is checked by ``shipcaptain.identity.authenticate`` (``authenticate_token``
is the only place that asks it).
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from shipcaptain.errors import AuthenticationFailed, ShipError
from shipcaptain.identity import SESSION_HOURS

SESSION_COOKIE = "shipcaptain_session"
LOGIN_COOKIE = "shipcaptain_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
__all__ = ["SESSION_HOURS"]


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
    session: str = ""  # the hash of the session's id (a session only)


class TooManySignIns(ShipError, PermissionError):
    """Too many sign-ins from one address, or for one person, within the window."""

    code = "SC412"
    exit_code = 4

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class SignInLimiter:
    """At most ``attempts`` sign-ins per key (``ip:<address>``, ``person:<name>``) within
    ``window`` seconds (a sliding window, in this process's memory)."""

    attempts: int
    window: float
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, key: str, what: str) -> None:
        """Count one attempt for ``key``; TooManySignIns (with the seconds to wait) if it
        is one too many."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.attempts:
                wait = max(1, math.ceil(seen[0] + self.window - now))
                raise TooManySignIns(
                    f"too many sign-ins {what}: {self.attempts} in {self.window:g}s; "
                    f"try again in {wait}s",
                    wait,
                )
            seen.append(now)


class Sessions:
    """Signs and reads the sign-in form's cookie."""

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


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def is_https(request: Request, trust_proxy: bool) -> bool:
    """Was the request made over https (by the proxy's word, when it is trusted)?"""
    if trust_proxy:
        forwarded = request.headers.get("x-forwarded-proto", "")
        if forwarded:
            return forwarded.split(",")[0].strip().lower() == "https"
    return request.url.scheme == "https"


def client_address(request: Request, trust_proxy: bool) -> str:
    """Who is asking: the connection's address, or the first one the trusted proxy names."""
    if trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded.strip():
            return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


async def current_viewer(request: Request) -> Viewer:
    """The dependency of every page and endpoint (except sign-in and the static files)."""
    state = request.app.state.web
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("the Authorization header must be: Bearer <token>")
        name = await run_in_threadpool(state.host.authenticate, token.strip())
        return Viewer(name=name, csrf="", via="token")
    cookie = request.cookies.get(SESSION_COOKIE, "")
    session = await run_in_threadpool(state.host.web_session, cookie)
    name, csrf = session.person, session.csrf
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            sent = str((await request.form()).get(CSRF_FIELD, ""))
        if not same(sent, csrf):
            raise CsrfRefused("this form is stale or was not sent by the dashboard; reload it")
    return Viewer(name=name, csrf=csrf, via="session", session=session.id_hash)
