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

It also plays the application's traffic and exposes it as Prometheus metrics on
``GET /metrics`` (prometheus-client): ``app_requests_total{code}`` (``requests_per_second``
simulated requests, the share ``error_rate`` of them answering 500),
``app_request_duration_seconds`` (a histogram), ``app_queue_depth`` (a gauge) and
``app_jobs_total`` / ``app_job_failures_total`` (no jobs run: their ratio is NaN). Raise
the error rate with ``{"error_rate": 0.2}`` to play a bad release.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shipcaptain.sandbox.service import Service
from shipcaptain.stop_signal import StopRequested

STATE_PATH = "/_sandbox/state"


class HealthServer(Service):
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
        self._error_rate = 0.0
        self._rps = 50.0
        self._queue_depth = 0.0
        self.metrics = _AppMetrics()
        self._traffic_stop = threading.Event()
        self._traffic: threading.Thread | None = None
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
        self._traffic_stop.clear()
        self._traffic = threading.Thread(target=self._play_traffic, name="app-traffic", daemon=True)
        self._traffic.start()
        return self

    def _play_traffic(self) -> None:
        """Simulated requests, 10 ticks a second, so the metrics move like a real app's."""
        owed_ok = owed_err = 0.0
        while not self._traffic_stop.wait(0.1):
            with self._lock:
                rps, error_rate, delay = self._rps, self._error_rate, self._delay
            owed_err += rps * 0.1 * error_rate
            owed_ok += rps * 0.1 * (1 - error_rate)
            errors, oks = int(owed_err), int(owed_ok)
            owed_err -= errors
            owed_ok -= oks
            if oks:
                self.metrics.requests.labels(code="200").inc(oks)
            if errors:
                self.metrics.requests.labels(code="500").inc(errors)
            for _ in range(oks + errors):
                self.metrics.duration.observe(0.02 + delay)

    def stop(self) -> None:
        """Stop serving, wait for requests in flight and close the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._traffic_stop.set()
        if self._traffic is not None:
            self._traffic.join()
            self._traffic = None
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

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

    def set_error_rate(self, share: float) -> None:
        """The share (0 to 1) of the simulated requests that answer 500."""
        if not 0 <= share <= 1:
            raise ValueError("error_rate must be between 0 and 1")
        with self._lock:
            self._error_rate = share

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "build": self._build,
                "healthy": self._healthy,
                "delay": self._delay,
                "error_rate": self._error_rate,
                "requests_per_second": self._rps,
                "queue_depth": self._queue_depth,
            }

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``{"build": str, "healthy": bool, "delay": number, "error_rate": number,
        "requests_per_second": number, "queue_depth": number}`` (any subset)."""
        numbers = ("error_rate", "requests_per_second", "queue_depth")
        for name in numbers:
            value = changes.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"{name} must be a number")
        if changes.get("error_rate") is not None:
            self.set_error_rate(float(changes["error_rate"]))
        if changes.get("requests_per_second") is not None:
            if changes["requests_per_second"] < 0:
                raise ValueError("requests_per_second cannot be negative")
            with self._lock:
                self._rps = float(changes["requests_per_second"])
        if changes.get("queue_depth") is not None:
            with self._lock:
                self._queue_depth = float(changes["queue_depth"])
            self.metrics.queue_depth.set(self._queue_depth)
        changes = {k: v for k, v in changes.items() if k not in numbers}
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


class _AppMetrics:
    """The application's Prometheus metrics, in a registry of its own (one per server)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "app_requests", "Requests answered, by status code.", ["code"], registry=self.registry
        )
        self.requests.labels(code="200")
        self.requests.labels(code="500")
        self.duration = Histogram(
            "app_request_duration_seconds",
            "Time to answer a request.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.queue_depth = Gauge("app_queue_depth", "Jobs waiting.", registry=self.registry)
        self.jobs = Counter("app_jobs", "Background jobs run.", registry=self.registry)
        self.job_failures = Counter(
            "app_job_failures", "Background jobs that failed.", registry=self.registry
        )


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
        elif path == "/metrics":
            body = generate_latest(app.metrics.registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)
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

    stop = StopRequested().handle(signal.SIGTERM, signal.SIGINT)
    with HealthServer(
        args.build,
        healthy=not args.unhealthy,
        host=args.host,
        port=args.port,
        log_requests=args.verbose,
    ) as server:
        print(server.url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
