"""The metrics action's rules (limits, verdicts, the Grafana link), its parameters, the
Prometheus client's reading of answers, and the demo without Prometheus. The runs against
a real Prometheus are in tests/integration/test_metrics.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shipcaptain.actions.base import DurableContext, GateRequest, GateResult, PlanContext
from shipcaptain.actions.metrics import MetricsAction, MetricsParams
from shipcaptain.actions.registry import registry
from shipcaptain.integrations.prometheus import PrometheusError, _reduce
from shipcaptain.runbook.loader import load_runbook
from shipcaptain.sandbox.analysis import SKIPPED, STEP, _replace_step
from shipcaptain.sandbox.workspace import build_sandbox

action = MetricsAction()


class Rounds(DurableContext):
    """Hands out scripted rounds of measurements instead of asking Prometheus."""

    def __init__(self, values: list[float | str | None]) -> None:
        self.release_id, self.step_id, self.release_values = "rel-1", "analysis", {}
        self.values = values
        self.slept: list[float] = []
        self.gates: list[GateRequest] = []
        self.lines: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def progress(self, message: str) -> None:
        self.lines.append(message)

    def await_gate(self, request: GateRequest) -> GateResult:
        self.gates.append(request)
        return GateResult(approved=False, timed_out=True, decisions=[])

    def record(self, name: str, measure: Callable[[], Any]) -> Any:
        value = self.values.pop(0)
        entry: dict[str, Any] = {"name": "error_rate", "value": value}
        if value is None or value == "NaN":
            entry.update(verdict="inconclusive", reason="no data" if value is None else "NaN")
        else:
            entry["verdict"] = "passed" if float(value) < 0.01 else "failed"
        return {"at": 1_700_000_000.0 + len(self.lines), "results": [entry]}


def params(**raw: Any) -> MetricsParams:
    base = {
        "prometheus": "http://prometheus:9090",
        "queries": [{"name": "error_rate", "query": "x", "below": 0.01}],
        "interval": "1s",
    }
    return action.parse_params({**base, **raw})


def test_registered() -> None:
    assert isinstance(registry.get("metrics"), MetricsAction)


def test_the_failure_limit_allows_that_many_failed_measurements() -> None:
    ctx = Rounds([0.02, 0.0, 0.03, 0.0])
    outcome = action.run_durable(params(count=4, failure_limit=1), ctx)
    assert not outcome.ok
    assert not outcome.retryable
    assert outcome.summary.startswith("error_rate failed 2 time(s), more than the failure limit 1")
    assert [m["round"] for m in outcome.outputs["measurements"]] == [1, 2, 3]
    assert ctx.slept == [1.0, 1.0]


def test_a_deadline_without_decision_fails_an_inconclusive_analysis() -> None:
    ctx = Rounds([None, "NaN"])
    outcome = action.run_durable(params(count=3, inconclusive_limit=1, decide_within="5m"), ctx)
    assert not outcome.ok
    assert "nobody decided in time" in outcome.summary
    [gate] = ctx.gates
    assert gate.deadline_seconds == 300.0
    assert "NaN" in gate.prompt


def test_passing_rounds_link_the_dashboard_for_the_window() -> None:
    grafana = {"url": "https://grafana.example.com/", "dashboard_uid": "prod", "before": "10m"}
    outcome = action.run_durable(params(count=2, grafana=grafana), Rounds([0.0, 0.001]))
    assert outcome.ok
    start_ms = (1_700_000_000 - 600) * 1000
    end_ms = 1_700_000_001 * 1000
    assert outcome.outputs["grafana_url"] == (
        f"https://grafana.example.com/d/prod?from={start_ms}&to={end_ms}"
    )
    assert "round  query  value" in outcome.detail


def test_the_dashboard_link_can_start_when_the_release_started() -> None:
    grafana = {
        "url": "https://grafana.example.com",
        "dashboard_uid": "prod",
        "since": "2023-11-14T22:00:00+00:00",
    }
    outcome = action.run_durable(params(count=2, grafana=grafana), Rounds([0.0, 0.001]))
    since_ms = 1_700_000_000_000 - (13 * 60 + 20) * 1000  # 22:00:00, 13 min 20 s before
    assert outcome.outputs["grafana_url"] == (
        f"https://grafana.example.com/d/prod?from={since_ms}&to={1_700_000_001 * 1000}"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"queries": [{"name": "e", "query": "x"}]}, "needs a threshold"),
        (
            {"queries": [{"name": "e", "query": "x", "below": 1}] * 2},
            "query names must be unique; repeated: e",
        ),
        ({"interval": 0}, "must be more than 0 seconds"),
        ({"count": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_parameters_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        params(**raw)


def test_describe() -> None:
    assert action.describe(params(count=5), PlanContext()) == (
        "measure error_rate < 0.01 at http://prometheus:9090, 5 times every 1s "
        "(failure limit 0, inconclusive limit 0)"
    )


def test_more_than_one_series_is_an_error_not_a_guess() -> None:
    data = {
        "resultType": "vector",
        "result": [
            {"metric": {"pod": "a"}, "value": [1, "1"]},
            {"metric": {"pod": "b"}, "value": [1, "2"]},
        ],
    }
    with pytest.raises(PrometheusError, match=r"returned 2 series .*aggregate it"):
        _reduce(data)
    assert _reduce({"resultType": "scalar", "result": [1, "NaN"]}).is_nan


def test_without_prometheus_the_demo_step_says_it_is_skipped(tmp_path: Path) -> None:
    sandbox = build_sandbox(tmp_path / "sandbox")
    _replace_step(sandbox, STEP, SKIPPED)
    runbook = load_runbook(sandbox.runbook)
    step = runbook.steps["metrics_analysis"]
    assert step.action == "shell"
    assert SKIPPED in step.with_["command"]
    assert runbook.steps["completion_announced"].needs == ["metrics_analysis", "rls_logs_checked"]
