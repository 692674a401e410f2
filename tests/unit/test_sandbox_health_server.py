"""The sandbox health server, in-process and as a command-line subprocess."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from shipcaptain.sandbox.health_server import HealthServer


def test_health_answers_build_and_header() -> None:
    with HealthServer(build="abc123") as app, httpx.Client() as client:
        assert app.url.startswith("http://127.0.0.1:")
        response = client.get(app.health_url)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "build": "abc123"}
        assert response.headers["X-Build-Hash"] == "abc123"

        app.set_build("def456")
        app.set_healthy(False)
        response = client.get(app.health_url)
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "build": "def456"}
        assert client.head(app.health_url).headers["X-Build-Hash"] == "def456"
        assert client.get(f"{app.url}/other").status_code == 404
        assert app.health_requests == 3


def test_state_can_be_changed_over_http() -> None:
    with HealthServer() as app, httpx.Client() as client:
        state_url = f"{app.url}/_sandbox/state"
        answer = client.post(state_url, json={"build": "v2", "healthy": False})
        assert answer.json() == {
            "build": "v2",
            "healthy": False,
            "delay": 0.0,
            "error_rate": 0.0,
            "requests_per_second": 50.0,
            "queue_depth": 0.0,
        }
        assert (app.build, app.healthy) == ("v2", False)
        assert client.post(state_url, json={"colour": "red"}).status_code == 400
        assert client.post(state_url, json={"healthy": "yes"}).status_code == 400
        assert client.get(state_url).json()["build"] == "v2"


def test_stop_closes_the_port() -> None:
    app = HealthServer().start()
    url = app.health_url
    app.stop()
    app.stop()  # stopping twice is harmless
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(url)
    with pytest.raises(RuntimeError, match="not started"):
        _ = app.url


def test_command_line_prints_its_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shipcaptain.sandbox.health_server",
            "--port",
            "0",
            "--build",
            "abc",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client() as client:
            assert client.get(f"{url}/health").json() == {"status": "ok", "build": "abc"}
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _samples(client: httpx.Client) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in client.get("/metrics").text.splitlines()
        if line and not line.startswith("#")
    }


def test_the_app_exposes_its_traffic_as_prometheus_metrics() -> None:
    with HealthServer(build="v1") as app, httpx.Client(base_url=app.url) as client:
        state = client.post("/_sandbox/state", json={"error_rate": 0.5, "queue_depth": 7})
        assert state.json()["error_rate"] == 0.5
        assert client.post("/_sandbox/state", json={"error_rate": 2}).status_code == 400
        assert client.post("/_sandbox/state", json={"queue_depth": "x"}).status_code == 400
        # counted from here: traffic before the change (all answered 200) is not half failing
        before = _samples(client)
        time.sleep(0.5)  # five ticks of 5 simulated requests, half of them failing
        page = client.get("/metrics")
        assert page.headers["content-type"].startswith("text/plain")
        samples = _samples(client)
        assert samples["app_queue_depth"] == 7.0
        ok = samples['app_requests_total{code="200"}']
        errors = samples['app_requests_total{code="500"}']
        new_ok = ok - before.get('app_requests_total{code="200"}', 0.0)
        new_errors = errors - before.get('app_requests_total{code="500"}', 0.0)
        assert new_errors > 0
        assert abs(new_errors - new_ok) <= 1
        assert samples["app_jobs_total"] == 0.0
        assert samples["app_request_duration_seconds_count"] == ok + errors
