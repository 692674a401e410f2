"""`shipcaptain server` as its own process: it binds the port it is given (0: a free one)
and prints its URL, serves the dashboard and the API on the same state database as the
CLI, runs the engine's workers unless --no-workers, and stops on Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from helpers.processes import wait_for
from helpers.web import server_process
from shipcaptain.store import open_store

pytestmark = pytest.mark.slow


def workers_in(url: str) -> list[str]:
    with open_store(url) as store:
        return [w.executor_id for w in store.list_workers()]


def test_the_server_serves_and_runs_workers_and_stops(database_url: str, tmp_path: Path) -> None:
    with server_process(
        database_url, tmp_path / "data", tmp_path, "--runbooks", str(tmp_path)
    ) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        login = httpx.get(f"{server.url}/releases", follow_redirects=True)
        assert login.status_code == 200
        assert 'name="token"' in login.text
        api = httpx.get(f"{server.url}/api/v1/releases")
        assert api.status_code == 401
        assert api.json()["error"]["code"] == "SC410"
        document = httpx.get(f"{server.url}/api/v1/openapi.json").json()
        assert "/api/v1/releases/{release_id}/gates/{step_id}/approve" in document["paths"]
        wait_for(lambda: workers_in(database_url), 30, what="the server's engine to beat")
        [executor] = workers_in(database_url)
        assert executor.endswith("-server")
        assert server.stop() == 0


def test_no_workers_means_no_engine(database_url: str, tmp_path: Path) -> None:
    with server_process(database_url, tmp_path / "data", tmp_path, "--no-workers") as server:
        assert httpx.get(f"{server.url}/login").status_code == 200
        wait_for(lambda: "none (--no-workers)" in "".join(server.stderr), 5, what="the banner")
        assert workers_in(database_url) == []
