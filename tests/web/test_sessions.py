"""The dashboard's sessions live in the state database (both backends): the cookie holds
only a random id, never the token; signing out and revoking the token end the session on
the server (an old cookie is refused); sign-ins are rate-limited per address and per
person (429 with Retry-After); HSTS over https, or behind a trusted proxy that says so."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from helpers.releases import Harness
from helpers.web import csrf_in, sign_in, token_for
from shipcaptain.identity import hash_token, revoke_token
from shipcaptain.web.app import create_app
from shipcaptain.web.auth import SESSION_COOKIE


@contextmanager
def dashboard(h: Harness, tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    base_url = settings.pop("base_url", "http://testserver")
    app = create_app(h.settings.model_copy(update=settings), client=h.client, runbook_root=tmp_path)
    with TestClient(app, base_url=base_url) as client:
        yield client


def events(h: Harness, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in h.client.store.list_events() if e.kind == kind]


def test_the_cookie_holds_a_session_id_kept_on_the_server(h: Harness, tmp_path: Path) -> None:
    token = token_for(h.client.store, "sam")
    with dashboard(h, tmp_path) as web:
        sign_in(web, token)
        session_id = web.cookies[SESSION_COOKIE]
        assert token not in session_id
        assert token.removeprefix("sct_") not in session_id
        session = h.client.store.get_web_session(hash_token(session_id))
        assert session is not None
        assert (session.person, session.ended_at) == ("sam", None)
        [record] = [t for t in h.client.store.list_tokens("sam") if t.state() == "active"]
        assert session.token_id == record.id
        assert web.get("/workers", follow_redirects=False).status_code == 200
        # an id the server never gave out is refused
        web.cookies.clear()
        web.cookies.set(SESSION_COOKIE, session_id[:-2] + "xx")
        assert web.get("/workers", follow_redirects=False).status_code == 303
    assert [e["person"] for e in events(h, "session.started")] == ["sam"]


def test_signing_out_ends_the_session_on_the_server(h: Harness, tmp_path: Path) -> None:
    with dashboard(h, tmp_path) as web:
        sign_in(web, token_for(h.client.store, "sam"))
        session_id = web.cookies[SESSION_COOKIE]
        page = web.get("/workers")
        out = web.post("/logout", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False)
        assert out.status_code == 303
        # the old cookie, sent again (a copy an attacker kept), no longer works
        web.cookies.clear()
        web.cookies.set(SESSION_COOKIE, session_id)
        refused = web.get("/api/v1/me")
        assert refused.status_code == 401
        assert "your session ended" in refused.json()["error"]["message"]
    session = h.client.store.get_web_session(hash_token(session_id))
    assert session is not None
    assert session.ended_by == "sam"
    assert [e["why"] for e in events(h, "session.ended")] == ["signed out"]


def test_revoking_the_token_ends_its_sessions(h: Harness, tmp_path: Path) -> None:
    with dashboard(h, tmp_path) as web:
        sign_in(web, token_for(h.client.store, "fola"))
        session_id = web.cookies[SESSION_COOKIE]
        assert web.get("/api/v1/me").json() == {"name": "fola"}
        [record] = [t for t in h.client.store.list_tokens("fola") if t.state() == "active"]
        revoked = revoke_token(h.client.store, record.id, by=h.client.store.get_person("admin"))
        refused = web.get("/api/v1/me")
        assert refused.status_code == 401
        assert "your session ended" in refused.json()["error"]["message"]
    assert revoked.state() == "revoked"
    session = h.client.store.get_web_session(hash_token(session_id))
    assert session is not None
    assert session.ended_by == "admin"
    assert [e["sessions_ended"] for e in events(h, "token.revoked")] == [1]


def _attempt(web: TestClient, token: str, **headers: str) -> Any:
    form = web.get("/login")
    return web.post(
        "/login",
        data={"token": token, "csrf_token": csrf_in(form.text), "next": "/releases"},
        headers=headers,
        follow_redirects=False,
    )


def test_sign_in_is_rate_limited_per_address_and_per_person(h: Harness, tmp_path: Path) -> None:
    sam = token_for(h.client.store, "sam")
    with dashboard(h, tmp_path, login_attempts=3, login_window=600, trust_proxy=True) as web:
        for _ in range(3):
            assert (
                _attempt(web, "sct_guess", **{"X-Forwarded-For": "198.51.100.7"}).status_code == 200
            )
        blocked = _attempt(web, sam, **{"X-Forwarded-For": "198.51.100.7"})
        assert blocked.status_code == 429
        assert 0 < int(blocked.headers["retry-after"]) <= 600
        assert "too many sign-ins from 198.51.100.7" in blocked.text
        assert SESSION_COOKIE not in blocked.headers.get("set-cookie", "")
        # another address may still sign in; one person, from anywhere, only so often
        for n in range(3):
            ok = _attempt(web, sam, **{"X-Forwarded-For": f"203.0.113.{n}"})
            assert ok.status_code == 303, ok.text
        again = _attempt(web, sam, **{"X-Forwarded-For": "203.0.113.99"})
        assert again.status_code == 429
        assert "too many sign-ins for sam" in again.text
    assert len(events(h, "session.started")) == 3


def test_hsts_over_https_and_behind_a_proxy_that_is_trusted(h: Harness, tmp_path: Path) -> None:
    hsts = "strict-transport-security"
    with dashboard(h, tmp_path) as web:
        assert hsts not in web.get("/login").headers
        # a proxy's word is not taken unless the server was told to trust it
        assert hsts not in web.get("/login", headers={"X-Forwarded-Proto": "https"}).headers
    with dashboard(h, tmp_path, trust_proxy=True) as web:
        proxied = web.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert proxied.headers[hsts] == "max-age=31536000; includeSubDomains"
        assert "Secure" in proxied.headers["set-cookie"]
        assert hsts not in web.get("/login", headers={"X-Forwarded-Proto": "http"}).headers
    with dashboard(h, tmp_path, base_url="https://testserver") as web:
        assert web.get("/login").headers[hsts].startswith("max-age=31536000")
