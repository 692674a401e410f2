"""The ``metrics`` action on the real engine against a real Prometheus scraping the sandbox
app every second: healthy, failing, empty and NaN series, and Prometheus being away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.prometheus import (
    ERROR_RATIO,
    app,
    needs_prometheus,
    prometheus,
    shared_prometheus,
)
from helpers.releases import Harness, harness, write_runbook
from shipcaptain.sandbox.health_server import HealthServer
from shipcaptain.sandbox.prometheus import PrometheusServer

__all__ = ["app", "prometheus", "shared_prometheus"]  # fixtures

pytestmark = needs_prometheus

ROLES = "roles:\n  oncall_sre: {title: On-Call SRE, members: [sam]}\n"
NAN_RATIO = "sum(rate(app_job_failures_total[3s])) / sum(rate(app_jobs_total[3s]))"
EMPTY = 'sum(rate(app_requests_total{code="418"}[3s]))'


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    # The analysis is about Prometheus, not the state database: SQLite is enough here.
    with harness(f"sqlite:///{tmp_path / 'state.db'}", tmp_path) as running:
        yield running


def metrics_runbook(
    tmp_path: Path, prom_url: str, query: str, *, count: int = 3, extra: str = ""
) -> Path:
    step = {
        "id": "analysis",
        "action": "metrics",
        "with": {
            "prometheus": prom_url,
            "queries": [{"name": "error_rate", "query": query, "below": 0.01}],
            "count": count,
            "interval": "1s",
            "decide_roles": ["oncall_sre"],
            "grafana": {
                "url": "https://grafana.example.com",
                "dashboard_uid": "prod-overview",
                "title": "00-Prod Overview",
            },
        },
    }
    after = '{id: after, action: shell, needs: [analysis], with: {command: "true"}}'
    return write_runbook(
        tmp_path,
        f"name: analysed\n{ROLES}{extra}phases:\n  - id: one\n    steps:\n"
        f"      - {json.dumps(step)}\n      - {after}\n",
    )


@pytest.fixture
def h_both(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    """On SQLite and on PostgreSQL: the measurements are checkpointed in the state database."""
    with harness(engine_database_url, tmp_path) as running:
        yield running


def progress_lines(h: Harness, release_id: str) -> list[str]:
    return [
        e.message
        for e in h.client.store.list_events(release_id=release_id)
        if e.kind == "step.progress" and e.step_id == "analysis"
    ]


def test_healthy_series_passes_and_every_measurement_is_kept(
    h_both: Harness, tmp_path: Path, shared_prometheus: PrometheusServer
) -> None:
    h = h_both
    release = h.start(metrics_runbook(tmp_path, shared_prometheus.url, ERROR_RATIO))
    assert h.wait(release.id).status == "succeeded"
    run = h.client.store.latest_step_runs(release.id)["analysis"]
    assert run.status == "succeeded"
    measurements = run.outputs["measurements"]
    assert [m["round"] for m in measurements] == [1, 2, 3]
    assert all(m["verdict"] == "passed" and m["value"] == 0.0 for m in measurements)
    assert run.outputs["failed"] == {"error_rate": 0}
    url = run.outputs["grafana_url"]
    assert url.startswith("https://grafana.example.com/d/prod-overview?from=")
    start_ms = int(url.split("from=")[1].split("&")[0])
    end_ms = int(url.split("to=")[1])
    assert end_ms - start_ms >= 1800 * 1000  # 30 minutes before the analysis, up to its end
    lines = progress_lines(h, release.id)
    assert [line.split(":")[0] for line in lines] == [
        "measurement 1/3",
        "measurement 2/3",
        "measurement 3/3",
    ]
    assert "error_rate 0 (< 0.01) passed" in lines[0]
    assert run.summary == "3 rounds of error_rate: 3 passed, 0 failed, 0 inconclusive"


def test_a_rising_error_rate_fails_the_step_and_triggers_its_rollback(
    h: Harness, tmp_path: Path, app: HealthServer, prometheus: PrometheusServer
) -> None:
    extra = "rollback:\n  - {id: undo, action: shell, with: {command: 'echo undone > undo.log'}}\n"
    runbook = metrics_runbook(tmp_path, prometheus.url, ERROR_RATIO, count=30, extra=extra)
    text = runbook.read_text().replace(
        '"id": "analysis",', '"id": "analysis", "on_failure": "rollback",'
    )
    runbook.write_text(text)
    app.set_error_rate(0.2)
    release = h.start(runbook)
    final = h.wait(release.id, timeout=90)
    run = h.client.store.latest_step_runs(release.id)["analysis"]
    assert run.status == "failed"
    assert "error_rate failed 1 time(s), more than the failure limit 0" in run.summary
    failed = [m for m in run.outputs["measurements"] if m["verdict"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["value"] > 0.01
    assert h.statuses(release.id)["after"] == "skipped"
    assert final.status == "rolled_back"
    assert (h.workdir / "undo.log").read_text().strip() == "undone"

    # What a rehearsal does after such a fault, before the next: Prometheus forgets the
    # bad build's samples at once (its one-minute window still holds them), and new scrapes
    # come in within seconds.
    errors = 'sum(rate(app_requests_total{code="500"}[1m]))'
    app.set_error_rate(0.0)
    assert prometheus.wait_for(errors, within=5) > 0
    assert prometheus.forget("sum(rate(app_requests_total[1m]))", within=15) > 0
    # the 500s are in the app's counter still; none of its increase is in the new samples
    assert prometheus.wait_for(errors, within=5) == 0


@pytest.mark.parametrize(
    ("query", "reason"),
    [(EMPTY, "no data (empty result)"), (NAN_RATIO, "NaN")],
    ids=["empty", "nan"],
)
def test_empty_or_nan_is_inconclusive_and_people_decide(
    h: Harness, tmp_path: Path, shared_prometheus: PrometheusServer, query: str, reason: str
) -> None:
    release = h.start(metrics_runbook(tmp_path, shared_prometheus.url, query, count=2))
    h.wait_for_gate(release.id, "analysis")
    [gate] = h.client.store.list_gates(status="waiting", release_id=release.id)
    assert "Metrics inconclusive" in gate.prompt
    assert reason in gate.prompt
    assert h.client.get(release.id).status == "waiting"
    h.client.decide(release.id, "analysis", user="sam", decision="reject", comment="no data")
    assert h.wait(release.id).status == "failed"
    run = h.client.store.latest_step_runs(release.id)["analysis"]
    assert run.status == "failed"
    assert "rejected by sam" in run.summary
    assert reason in run.summary
    # The analysis stopped at the first inconclusive measurement: nothing after the "no".
    [measurement] = run.outputs["measurements"]
    assert measurement["verdict"] == "inconclusive"
    assert measurement["reason"] == reason
    assert run.outputs["decisions"] == ["round 1: rejected by sam"]
    assert h.statuses(release.id)["after"] == "skipped"


def test_people_accept_inconclusive_metrics_once_and_the_analysis_carries_on(
    h: Harness, tmp_path: Path, shared_prometheus: PrometheusServer
) -> None:
    release = h.start(metrics_runbook(tmp_path, shared_prometheus.url, EMPTY, count=3))
    h.wait_for_gate(release.id, "analysis")
    h.client.decide(release.id, "analysis", user="sam", decision="approve", comment="known gap")
    assert h.wait(release.id).status == "succeeded"
    run = h.client.store.latest_step_runs(release.id)["analysis"]
    assert [m["verdict"] for m in run.outputs["measurements"]] == ["inconclusive"] * 3
    assert run.outputs["inconclusive"] == {"error_rate": 3}
    assert run.outputs["decisions"] == ["round 1: carry on, approved by sam"]
    assert "inconclusive accepted: round 1: carry on, approved by sam" in run.summary


def test_prometheus_away_is_inconclusive_not_a_crash(h: Harness, tmp_path: Path) -> None:
    stopped = PrometheusServer([]).start()
    url = stopped.url
    stopped.stop()
    runbook = metrics_runbook(tmp_path, url, ERROR_RATIO, count=1)
    runbook.write_text(
        runbook.read_text().replace('"count": 1,', '"count": 1, "inconclusive_limit": 1,')
    )
    release = h.start(runbook)
    # One inconclusive measurement is within the limit: nobody is asked, the step passes.
    assert h.wait(release.id).status == "succeeded"
    run = h.client.store.latest_step_runs(release.id)["analysis"]
    [measurement] = run.outputs["measurements"]
    assert measurement["verdict"] == "inconclusive"
    assert "cannot reach Prometheus" in measurement["reason"]


def test_a_prometheus_error_answer_is_inconclusive(
    h: Harness, tmp_path: Path, shared_prometheus: PrometheusServer
) -> None:
    release = h.start(metrics_runbook(tmp_path, shared_prometheus.url, "sum(rate(", count=1))
    h.wait_for_gate(release.id, "analysis")
    h.client.decide(release.id, "analysis", user="sam", decision="approve", comment="ok")
    assert h.wait(release.id).status == "succeeded"
    run = h.client.store.latest_step_runs(release.id)["analysis"]
    [measurement] = run.outputs["measurements"]
    assert measurement["verdict"] == "inconclusive"
    assert "bad_data" in measurement["reason"]
    assert "inconclusive accepted" in run.summary


def test_an_infinite_value_fails_and_is_stored_as_text(
    h: Harness, tmp_path: Path, shared_prometheus: PrometheusServer
) -> None:
    # Division by zero in PromQL is +Inf (a quantile past the last bucket is too).
    release = h.start(metrics_runbook(tmp_path, shared_prometheus.url, "1 / 0", count=2))
    assert h.wait(release.id).status == "failed"
    run = h.client.store.latest_step_runs(release.id)["analysis"]
    [measurement] = run.outputs["measurements"]
    assert measurement["value"] == "+inf"
    assert measurement["verdict"] == "failed"
