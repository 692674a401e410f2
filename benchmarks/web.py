"""Requests per second and latency of the dashboard's release page and of the API's status
endpoint, with 100 releases in the store.

The store (SQLite in a temporary directory, or PostgreSQL with ``--database-url``) gets
``--releases`` releases of a three-step gated runbook, each with a finished step, an open
gate and a timeline, as a release waiting for its approval has. ``shipcaptain server``'s
application (``--no-workers``) is served by uvicorn on a free port of 127.0.0.1 in this
process; httpx clients sign in with a real API token (the page: the session cookie of the
sign-in form; the API: the bearer token) and ask for one release's page and status, first
one request at a time, then from ``--concurrency`` threads. Printed: requests per second,
p50 and p99 latency. Client and server share this machine's cores, so the figures are a
floor.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/web.py
    python benchmarks/web.py --requests 500 --concurrency 8
    python benchmarks/web.py --database-url postgresql://postgres@127.0.0.1:5432/bench

Exit code 0 when the p99 of both, one at a time, is under the target (100 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from shipcaptain.client import Client
from shipcaptain.identity import create_token
from shipcaptain.settings import Settings
from shipcaptain.store import GateRecord, StepRunRecord
from shipcaptain.store.records import Person, utcnow
from shipcaptain.web.app import create_app
from shipcaptain.web.server import serving_in_thread

TARGET_P99_S = 0.1
RUNBOOK = """name: gated
roles:
  release_captain: {title: Release Captain, members: [casey]}
  oncall_sre: {title: On-Call SRE, members: [sam]}
environment: "{{ environment }}"
parameters:
  version: {default: 1.0.0}
  environment: {default: staging, choices: [staging, production]}
phases:
  - id: build
    steps:
      - {id: build, action: shell, with: {command: "echo built"}}
  - id: ship
    steps:
      - {id: go_ahead, action: approval, with: {prompt: ship it?, roles: [oncall_sre], timeout: 1h}}
      - {id: ship, action: shell, needs: [go_ahead], with: {command: "echo shipped"}}
"""


def populate(client: Client, directory: Path, count: int) -> str:
    """``count`` releases waiting at their gate; the id of the last one."""
    path = directory / "gated.yaml"
    path.write_text(RUNBOOK, encoding="utf-8")
    store = client.store
    release_id = ""
    for n in range(count):
        env = "production" if n % 2 else "staging"
        record = client.create_release(
            path, {"version": f"1.0.{n}", "environment": env}, user="casey"
        )
        release_id = record.id
        now = utcnow()
        store.update_release(release_id, status="waiting", started_at=now)
        store.upsert_step_run(
            StepRunRecord(
                release_id=release_id,
                step_id="build",
                run=1,
                attempt=1,
                status="succeeded",
                started_at=now,
                ended_at=now,
                summary="exit 0",
                outputs={"stdout": "built"},
            )
        )
        store.upsert_step_run(
            StepRunRecord(
                release_id=release_id,
                step_id="go_ahead",
                run=1,
                attempt=1,
                status="waiting",
                started_at=now,
            )
        )
        store.open_gate(
            GateRecord(
                release_id=release_id,
                step_id="go_ahead",
                run=1,
                kind="approval",
                prompt="ship it?",
                roles=["oncall_sre"],
            )
        )
        for kind, message in [
            ("release.running", "run 1 started"),
            ("step.succeeded", "exit 0"),
            ("gate.opened", "waiting for role oncall_sre"),
        ]:
            store.append_event(release_id, None, kind, "engine", message)
    return release_id


def measure(
    get: Callable[[], httpx.Response], requests: int, concurrency: int
) -> tuple[float, list[float]]:
    """(requests per second, sorted latencies in seconds)."""

    def one(_: int) -> float:
        started = time.perf_counter()
        response = get()
        took = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"{response.request.url} answered {response.status_code}")
        return took

    for _ in range(10):  # warm up: connections, templates, caches
        one(0)
    started = time.perf_counter()
    if concurrency == 1:
        latencies = [one(i) for i in range(requests)]
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    return requests / elapsed, sorted(latencies)


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        settings = Settings(data_dir=directory / "data", database_url=args.database_url)
        client = Client(settings)
        release_id = populate(client, directory, args.releases)
        sam = Person(name="sam")
        client.store.put_team([sam], actor="benchmark", message="sam joins", data={})
        secret, _ = create_token(client.store, "sam", expires_in=3600, label="benchmark", by=sam)
        app = create_app(settings, client=client, runbook_root=directory)
        stack = contextlib.ExitStack()
        base = stack.enter_context(serving_in_thread(app))
        local = threading.local()

        def http() -> httpx.Client:
            if not hasattr(local, "client"):
                # TCP_NODELAY, as browsers set it: without it every request waits ~40 ms
                # for a delayed ACK
                nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
                local.client = httpx.Client(
                    base_url=base,
                    timeout=30,
                    transport=httpx.HTTPTransport(socket_options=nodelay),
                )
                form = local.client.get("/login").text
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
                assert csrf is not None
                local.client.post("/login", data={"token": secret, "csrf_token": csrf.group(1)})
            return local.client  # type: ignore[no-any-return]

        targets = {
            "release page  GET /releases/{id}": lambda: http().get(f"/releases/{release_id}"),
            "status  GET /api/v1/releases/{id}/status": lambda: http().get(
                f"/api/v1/releases/{release_id}/status",
                headers={"Authorization": f"Bearer {secret}"},
            ),
        }
        print(
            f"{args.releases} releases in {'PostgreSQL' if args.database_url else 'SQLite'}; "
            f"{args.requests} requests per line"
        )
        ok = True
        try:
            for name, get in targets.items():
                for concurrency in (1, args.concurrency):
                    rps, latencies = measure(get, args.requests, concurrency)
                    p50, p99 = quantile(latencies, 0.5), quantile(latencies, 0.99)
                    print(
                        f"{name:<42} x{concurrency:<2} {rps:7.0f} req/s  "
                        f"p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"
                    )
                    if concurrency == 1 and p99 > TARGET_P99_S:
                        ok = False
        finally:
            stack.close()
            client.close()
        verdict = "met" if ok else "NOT met"
        print(f"target: p99 under {TARGET_P99_S * 1000:.0f} ms one at a time: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
