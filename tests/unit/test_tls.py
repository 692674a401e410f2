"""The one TLS context the HTTP clients share checks certificates as httpx's default did:
a server whose CA it does not know is refused, ``verify(False)`` (a step's
``verify_tls: false``) is not checked, and ``SSL_CERT_FILE`` names the CAs it trusts."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from shipcaptain import tls
from shipcaptain.sandbox.doubles.kubernetes_auth import Pki


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def pki() -> Iterator[Pki]:
    made = Pki()
    yield made
    made.remove()


@pytest.fixture
def https_url(pki: Pki) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.socket = pki.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def fresh_context() -> Iterator[None]:
    """The shared context made again in the test, and again after it."""
    tls._verifying.cache_clear()
    yield
    tls._verifying.cache_clear()


def test_a_server_signed_by_an_unknown_ca_is_refused(https_url: str, fresh_context: None) -> None:
    with httpx.Client(verify=tls.verify()) as client, pytest.raises(httpx.ConnectError) as no:
        client.get(https_url)
    assert "CERTIFICATE_VERIFY_FAILED" in str(no.value)


def test_not_checking_reaches_it(https_url: str) -> None:
    assert tls.verify(False) is False
    with httpx.Client(verify=tls.verify(False)) as client:
        assert client.get(https_url).text == "ok"


def test_ssl_cert_file_names_the_cas_trusted_and_the_context_is_made_once(
    https_url: str, pki: Pki, monkeypatch: pytest.MonkeyPatch, fresh_context: None
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_crt))
    shared = tls.verify()
    assert tls.verify() is shared
    # two clients, one after the other and side by side, on the one context
    with httpx.Client(verify=shared) as one, httpx.Client(verify=tls.verify()) as two:
        assert one.get(https_url).text == two.get(https_url).text == "ok"
