"""`shipcaptain server` as its own process: it binds the port it is given (0: a free one)
and prints its URL, serves the dashboard and the API on the same state database as the
CLI, runs the engine's workers unless --no-workers, and stops on Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from helpers.processes import wait_for
from helpers.releases import write_runbook
from helpers.web import (
    GATED,
    REQUEST_TIMEOUT,
    bearer,
    server_process,
    start_and_approve_gated,
    status_of,
    token_for,
)
from shipcaptain.cli.main import cli
from shipcaptain.store import open_store

pytestmark = pytest.mark.slow


def workers_in(url: str) -> list[str]:
    with open_store(url) as store:
        return [w.executor_id for w in store.list_workers()]


def test_the_server_serves_and_runs_workers_and_stops(database_url: str, tmp_path: Path) -> None:
    with open_store(database_url) as store:
        store.migrate()
        ops = token_for(store, "ops")
    with server_process(
        database_url, tmp_path / "data", tmp_path, "--runbooks", str(tmp_path), token=ops
    ) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as http:
            login = http.get("/releases", follow_redirects=True)
            assert login.status_code == 200
            assert 'name="token"' in login.text
            api = http.get("/api/v1/releases")
            assert api.status_code == 401
            assert api.json()["error"]["code"] == "SC410"
            document = http.get("/api/v1/openapi.json").json()
        assert "/api/v1/releases/{release_id}/gates/{step_id}/approve" in document["paths"]
        wait_for(lambda: workers_in(database_url), 30, what="the server's engine to beat")
        [executor] = workers_in(database_url)
        assert executor.endswith("-server")
        assert server.stop() == 0
    with open_store(database_url) as store:
        [started] = [e for e in store.list_events() if e.kind == "worker.started"]
    assert (started.actor, started.data["process"]) == ("ops", "server")


def test_running_workers_takes_a_token(database_url: str, tmp_path: Path) -> None:
    with open_store(database_url) as store:
        store.migrate()
        token_for(store, "ops")
    env = {
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "SHIPCAPTAIN_TOKEN": "",
    }
    for command in (["server", "--port", "0"], ["worker"]):
        refused = CliRunner().invoke(cli, command, env=env)
        assert refused.exit_code == 4, refused.output
        assert "you are not logged in" in refused.output
    assert workers_in(database_url) == []


def test_no_workers_means_no_engine(database_url: str, tmp_path: Path) -> None:
    with server_process(database_url, tmp_path / "data", tmp_path, "--no-workers") as server:
        assert httpx.get(f"{server.url}/login", timeout=REQUEST_TIMEOUT).status_code == 200
        wait_for(lambda: "none (--no-workers)" in "".join(server.stderr), 30, what="the banner")
        assert workers_in(database_url) == []


def test_the_servers_own_workers_run_a_release_started_through_its_api(
    database_url: str, tmp_path: Path
) -> None:
    write_runbook(tmp_path, GATED, "gated.yaml")
    with open_store(database_url) as store:
        store.migrate()
        casey, sam = token_for(store, "casey"), token_for(store, "sam")
    with server_process(
        database_url, tmp_path / "data", tmp_path, "--runbooks", str(tmp_path), token=casey
    ) as server:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=REQUEST_TIMEOUT) as api:
            release = start_and_approve_gated(api, casey, sam)
            wait_for(
                lambda: status_of(api, release, sam)["status"] == "succeeded",
                60,
                what="the release to succeed",
            )
            detail = api.get(f"/releases/{release}", headers=bearer(sam)).json()
        assert detail["release"]["executor_id"].endswith("-server")
        assert server.stop() == 0
