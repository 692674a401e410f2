"""A stand-in for an application's health endpoint, as the smoke tests see it after a rollout.

``GET /health`` answers ``200`` with ``{"status": "ok", "build": "<hash>"}`` and the header
``X-Build-Hash: <hash>``; while the application is unhealthy it answers ``503`` with
``{"status": "unavailable", ...}``. The build hash, the health and an artificial delay
can be changed while it runs, so a test or the demo can play a rollout: the old build,
a few seconds of 503, then the new build.

In Python::

    with HealthServer(build="abc123") as app:
        app.url                 # http://127.0.0.1:<free port>
        app.set_healthy(False)  # /health answers 503
        app.set_build("def456")

From the command line (the demo runs it as a subprocess)::

    python -m shipcaptain.sandbox.health_server --port 0 --build abc123

prints its URL on the first line of stdout and serves until it is stopped (SIGTERM or
Ctrl-C). Another process changes it through ``POST /_sandbox/state`` with a JSON body
such as ``{"build": "def456", "healthy": true, "delay": 0}``; ``GET /_sandbox/state``
shows it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

STATE_PATH = "/_sandbox/state"


class HealthServer:
    """A ``/health`` endpoint on 127.0.0.1 with a build hash and health you can change.

    ``port=0`` (the default) takes a free port; read it back from ``url`` or ``port``.
    Use it as a context manager, or call ``start`` and ``stop``.
    """

    def __init__(
        self,
        build: str = "dev",
        *,
        healthy: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        log_requests: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._build = build
        self._healthy = healthy
        self._delay = 0.0
        self._host = host
        self._port = port
        self.log_requests = log_requests
        #: how many requests to /health were answered (tests use it to count tries)
        self.health_requests = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle ----

    def start(self) -> HealthServer:
        """Bind the port and serve in a background thread. Returns ``self``."""
        if self._httpd is not None:
            return self
        httpd = _Server((self._host, self._port), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"health-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wait for requests in flight and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- where it is ----

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the health server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (append ``/health``)."""
        return f"http://{self._host}:{self.port}"

    @property
    def health_url(self) -> str:
        return f"{self.url}/health"

    # ---- what it answers ----

    def set_build(self, build: str) -> None:
        """Serve a new build hash (a rollout finished)."""
        with self._lock:
            self._build = build

    def set_healthy(self, healthy: bool) -> None:
        """Healthy: 200. Unhealthy: 503."""
        with self._lock:
            self._healthy = healthy

    def set_delay(self, seconds: float) -> None:
        """Wait this long before each answer to ``/health`` (a slow or hanging application)."""
        if seconds < 0:
            raise ValueError("delay cannot be negative")
        with self._lock:
            self._delay = seconds

    @property
    def build(self) -> str:
        with self._lock:
            return self._build

    @property
    def healthy(self) -> bool:
        with self._lock:
            return self._healthy

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"build": self._build, "healthy": self._healthy, "delay": self._delay}

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``{"build": str, "healthy": bool, "delay": number}`` (any subset)."""
        unknown = set(changes) - {"build", "healthy", "delay"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        build, healthy, delay = changes.get("build"), changes.get("healthy"), changes.get("delay")
        if build is not None and not isinstance(build, str):
            raise ValueError("build must be a string")
        if healthy is not None and not isinstance(healthy, bool):
            raise ValueError("healthy must be true or false")
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)):
            raise ValueError("delay must be a number of seconds")
        if build is not None:
            self.set_build(build)
        if healthy is not None:
            self.set_healthy(healthy)
        if delay is not None:
            self.set_delay(float(delay))
        return self.state()

    def _answer_health(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            delay = self._delay
        if delay:
            time.sleep(delay)
        with self._lock:
            self.health_requests += 1
            if self._healthy:
                return 200, {"status": "ok", "build": self._build}
            return 503, {"status": "unavailable", "build": self._build}


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close, so no request outlives ``stop``.
    daemon_threads = False
    block_on_close = True
    app: HealthServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "shipcaptain-sandbox-health"

    def do_GET(self) -> None:
        self._route(send_body=True)

    def do_HEAD(self) -> None:
        self._route(send_body=False)

    def do_POST(self) -> None:
        if self.path != STATE_PATH:
            self._send(404, {"error": f"no such path: {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            changes = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("send a JSON object")
            state = self.server.app.update(changes)
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
            return
        self._send(200, state)

    def _route(self, *, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        app = self.server.app
        if path == "/health":
            status, payload = app._answer_health()
            self._send(status, payload, {"X-Build-Hash": payload["build"]}, send_body=send_body)
        elif path == STATE_PATH:
            self._send(200, app.state(), send_body=send_body)
        else:
            self._send(404, {"error": f"no such path: {path}"}, send_body=send_body)

    def _send(
        self,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        send_body: bool = True,
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.log_requests:
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipcaptain.sandbox.health_server",
        description="Serve a stand-in /health endpoint; print its URL; serve until stopped.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 takes a free one (default)")
    parser.add_argument("--build", default="dev", help="build hash to report (dev)")
    parser.add_argument("--unhealthy", action="store_true", help="start answering 503")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with HealthServer(
        args.build,
        healthy=not args.unhealthy,
        host=args.host,
        port=args.port,
        log_requests=args.verbose,
    ) as server:
        print(server.url, flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
