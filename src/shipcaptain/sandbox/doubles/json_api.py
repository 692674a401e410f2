"""What the JSON API doubles (PagerDuty, Opsgenie) share: a loopback server on port 0,
answers decided by a ``handle`` method, and failures queued from Python (a rate limit
with ``Retry-After``, a server error) the way the real service sends them."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shipcaptain.sandbox.service import Service


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    payload: Any
    headers: tuple[tuple[str, str], ...] = ()


class JsonApiDouble(Service):
    """Subclasses answer in :meth:`handle`; :meth:`rate_limited` is the service's 429."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fail_next: list[tuple[str, int]] = []
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the double is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, kind: str, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` requests get ``kind``: "rate_limited" (429) or "500"."""
        with self.lock:
            self.fail_next.extend((kind, retry_after) for _ in range(times))

    def handle(self, request: Request) -> Answer:
        raise NotImplementedError

    def rate_limited(self, retry_after: int) -> Answer:
        return Answer(429, {"message": "Too many requests"}, (("Retry-After", str(retry_after)),))

    def _answer(self, request: Request) -> Answer:
        with self.lock:
            self.requests.append(request)
            failure = self.fail_next.pop(0) if self.fail_next else None
        if failure is not None:
            kind, retry_after = failure
            if kind == "rate_limited":
                return self.rate_limited(retry_after)
            return Answer(500, {"message": "internal error"})
        with self.lock:
            return self.handle(request)

    def start(self) -> str:
        double = self

        class Handler(BaseHTTPRequestHandler):
            # headers and body are two writes: without TCP_NODELAY the body waits for the
            # client's delayed ACK (40 ms a request)
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                answer = double._answer(request)
                data = json.dumps(answer.payload).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        self._server, self._thread = serve(Handler, type(self).__name__)
        return self.url

    def stop(self) -> None:
        shut_down(self._server, self._thread)
        self._server, self._thread = None, None


def serve(
    handler: type[BaseHTTPRequestHandler], name: str
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A loopback server on a free port, serving in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    return server, thread


def shut_down(server: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


def json_body(request: Request) -> Any:
    """The request's JSON, or ``ValueError``."""
    return json.loads(request.body.decode("utf-8") or "null")
