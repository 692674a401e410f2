"""The http action against the sandbox health server (a real HTTP server on a free port)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipcaptain.actions.base import PlanContext, StepContext
from shipcaptain.actions.http import HttpAction, HttpParams
from shipcaptain.actions.registry import registry
from shipcaptain.sandbox.health_server import HealthServer

action = HttpAction()


@pytest.fixture
def app() -> Iterator[HealthServer]:
    with HealthServer(build="abc123") as server:
        yield server


def make_ctx(progress: list[str] | None = None, **kw: Any) -> StepContext:
    sink = progress if progress is not None else []
    return StepContext(
        release_id="rel-1",
        step_id="smoke",
        attempt=1,
        timeout=kw.pop("timeout", 30.0),
        workdir=Path.cwd(),
        progress=sink.append,
        **kw,
    )


def params(**raw: Any) -> HttpParams:
    return action.parse_params(raw)


def test_registered_under_its_name() -> None:
    assert isinstance(registry.get("http"), HttpAction)
    assert HttpAction.idempotent is True


def test_200_and_build_hash_from_json_field(app: HealthServer) -> None:
    outcome = action.run(
        params(url=app.health_url, json_field="build", body_pattern="^abc123$"), make_ctx()
    )
    assert outcome.ok, outcome.summary
    assert outcome.outputs["status_code"] == 200
    assert outcome.outputs["matched"] == "abc123"
    assert outcome.outputs["attempts"] == 1
    assert isinstance(outcome.outputs["elapsed_ms"], int)
    assert outcome.summary.startswith("200 OK in ")
    assert outcome.summary.endswith(" ms, build abc123")


def test_named_group_becomes_an_output_and_labels_the_summary(app: HealthServer) -> None:
    p = params(url=app.health_url, body_pattern=r'"build": "(?P<build_hash>[0-9a-f]+)"')
    outcome = action.run(p, make_ctx())
    assert outcome.ok
    assert outcome.outputs["build_hash"] == "abc123"
    assert outcome.outputs["matched"] == "abc123"
    assert outcome.summary.endswith("build_hash abc123")


def test_plain_group_or_whole_match(app: HealthServer) -> None:
    grouped = action.run(params(url=app.health_url, body_pattern=r'"status": "(\w+)"'), make_ctx())
    assert grouped.outputs["matched"] == "ok"
    whole = action.run(params(url=app.health_url, body_pattern=r"abc\d+"), make_ctx())
    assert whole.outputs["matched"] == "abc123"
    assert whole.summary.endswith("matched abc123")


def test_header_and_header_pattern(app: HealthServer) -> None:
    p = params(url=app.health_url, header="x-build-hash", header_pattern="^(abc)")
    outcome = action.run(p, make_ctx())
    assert outcome.ok
    assert outcome.outputs["matched"] == "abc"
    missing = action.run(params(url=app.health_url, header="X-Region"), make_ctx())
    assert not missing.ok
    assert "expected header X-Region, got 200 OK" in missing.summary


def test_build_mismatch_fails_saying_what_was_expected_and_what_came(app: HealthServer) -> None:
    p = params(url=app.health_url, json_field="build", body_pattern="^def456$")
    outcome = action.run(p, make_ctx())
    assert not outcome.ok
    assert outcome.retryable
    assert outcome.summary.startswith(f"GET {app.health_url}: expected JSON field build")
    assert "/^def456$/" in outcome.summary
    assert "abc123" in outcome.summary
    assert '{"status": "ok", "build": "abc123"}' in outcome.detail
    assert outcome.outputs["status_code"] == 200
    assert outcome.outputs["matched"] is None


def test_missing_json_field_and_non_json_body(app: HealthServer) -> None:
    outcome = action.run(params(url=app.health_url, json_field="data.version"), make_ctx())
    assert "expected JSON field data.version" in outcome.summary
    not_json = action.run(
        params(url=app.health_url, header="X-Build-Hash", json_field="x", method="HEAD"),
        make_ctx(),
    )
    assert "expected a JSON body with field x" in not_json.summary


def test_json_path_through_lists() -> None:
    from shipcaptain.actions.http import _dig

    doc = {"items": [{"id": 7}, {"id": 8}], "ok": True}
    assert _dig(doc, "items.1.id") == (True, 8)
    assert _dig(doc, "items.2.id") == (False, None)
    assert _dig(doc, "ok") == (True, True)


def test_body_in_detail_is_truncated_to_500_characters(app: HealthServer) -> None:
    app.set_build("f" * 2000)
    outcome = action.run(params(url=app.health_url, body_pattern="nothing-like-this"), make_ctx())
    assert not outcome.ok
    assert "more characters)" in outcome.detail
    body_part = outcome.detail.split("characters):\n", 1)[1]
    assert len(body_part.split("\n...")[0]) == 500
    assert len(outcome.summary) < 400


def test_unhealthy_then_healthy_within_until(app: HealthServer) -> None:
    app.set_healthy(False)
    stop = threading.Event()

    def recover() -> None:
        # healthy again once the first try was refused (the second has come), not after a
        # fixed time: under load the first try could come after it
        while app.health_requests < 2 and not stop.wait(0.01):
            pass
        app.set_healthy(True)

    recovering = threading.Thread(target=recover, daemon=True)
    recovering.start()
    lines: list[str] = []
    try:
        outcome = action.run(
            params(url=app.health_url, until="10s", interval="0.1s"), make_ctx(lines)
        )
    finally:
        stop.set()
        recovering.join()
    assert outcome.ok, outcome.summary
    assert outcome.outputs["attempts"] > 1
    assert "(try " in outcome.summary
    assert lines[0].startswith(f"try 1: GET {app.health_url}: expected status 200, got 503")
    assert app.health_requests == outcome.outputs["attempts"]


def test_still_unhealthy_when_until_runs_out(app: HealthServer) -> None:
    app.set_healthy(False)
    started = time.monotonic()
    outcome = action.run(params(url=app.health_url, until="0.5s", interval="0.1s"), make_ctx())
    assert time.monotonic() - started < 3
    assert not outcome.ok
    assert "expected status 200, got 503 Service Unavailable" in outcome.summary
    assert outcome.outputs["attempts"] >= 2


def test_step_timeout_caps_until(app: HealthServer) -> None:
    app.set_healthy(False)
    started = time.monotonic()
    outcome = action.run(
        params(url=app.health_url, until="1h", interval="0.1s"), make_ctx(timeout=0.5)
    )
    assert time.monotonic() - started < 2
    assert not outcome.ok


def test_expected_status_list(app: HealthServer) -> None:
    app.set_healthy(False)
    outcome = action.run(params(url=app.health_url, expect_status=[200, 503]), make_ctx())
    assert outcome.ok
    assert outcome.summary.startswith("503 Service Unavailable in ")


def test_unknown_path_is_404(app: HealthServer) -> None:
    outcome = action.run(params(url=f"{app.url}/nope"), make_ctx())
    assert "expected status 200, got 404 Not Found" in outcome.summary


def test_connection_refused_is_a_failed_outcome_with_the_reason() -> None:
    with HealthServer() as gone:
        url = gone.health_url  # the port is free again once the server is closed
    outcome = action.run(params(url=url), make_ctx())
    assert not outcome.ok
    assert outcome.retryable
    assert outcome.summary.startswith(f"GET {url}: could not connect")
    assert "refused" in outcome.summary.lower()


def test_slow_answer_times_out(app: HealthServer) -> None:
    app.set_delay(1.0)
    outcome = action.run(params(url=app.health_url, timeout="0.2s"), make_ctx())
    assert not outcome.ok
    assert outcome.summary == f"GET {app.health_url}: no answer within 0.2s"


def test_unsupported_scheme_is_not_retried() -> None:
    outcome = action.run(params(url="ftp://example.test/file", until="1m"), make_ctx())
    assert not outcome.ok
    assert not outcome.retryable
    assert "bad URL" in outcome.summary


def test_request_headers_are_sent_and_secrets_redacted(app: HealthServer) -> None:
    url = f"{app.url}/nope?token=sekret-token"
    outcome = action.run(
        params(url=url, headers={"Authorization": "Bearer x"}), make_ctx(secrets=["sekret-token"])
    )
    assert "sekret-token" not in outcome.summary + outcome.detail
    assert "token=***" in outcome.summary


def test_describe() -> None:
    ctx = PlanContext()
    assert action.describe(params(url="https://app.test/health"), ctx) == (
        "GET https://app.test/health, expect 200"
    )
    p = params(
        url="https://app.test/health",
        method="head",
        expect_status=[200, 204],
        header="X-Build-Hash",
        header_pattern="^abc",
        json_field="build",
        body_pattern="^abc",
        until="5m",
    )
    assert action.describe(p, ctx) == (
        "HEAD https://app.test/health, expect 200 or 204, header X-Build-Hash matching /^abc/, "
        "JSON field build matching /^abc/; retry every 2s for up to 5m"
    )


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"url": "http://x", "header_pattern": "a"},
        {"url": "http://x", "body_pattern": "("},
        {"url": "http://x", "expect_status": 42},
        {"url": "http://x", "expect_status": []},
        {"url": "http://x", "method": "FETCH"},
        {"url": "http://x", "interval": 0},
        {"url": "http://x", "verify": False},
    ],
)
def test_bad_params_are_rejected(raw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError
        params(**raw)
