"""Timeouts and pauses between tries must be more than 0 seconds: one ``PositiveDuration``
type, and every action's timeout and interval that says so uses it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shipcaptain.actions.checks import SqlCheckParams
from shipcaptain.actions.http import HttpParams
from shipcaptain.actions.k8s_rollout import K8sRolloutParams
from shipcaptain.actions.k8s_set_image import K8sSetImageParams
from shipcaptain.actions.metrics import MetricsParams
from shipcaptain.runbook.durations import PositiveDuration


class Pause(BaseModel):
    every: PositiveDuration


def test_a_positive_duration_reads_like_a_duration_and_refuses_zero() -> None:
    assert Pause(every="1m30s").every == 90.0
    assert Pause(every=0.5).every == 0.5
    for bad in (0, "0s", -1):
        with pytest.raises(ValidationError):
            Pause(every=bad)
    with pytest.raises(ValidationError, match="must be more than 0 seconds"):
        Pause(every="0s")


REQUIRED: dict[type[BaseModel], dict[str, Any]] = {
    HttpParams: {"url": "http://example.test/"},
    K8sRolloutParams: {"deployments": ["api"]},
    K8sSetImageParams: {"deployment": "api", "images": {"api": "ghcr.io/acme/api:1"}},
    MetricsParams: {
        "prometheus": "http://prom.test/",
        "queries": [{"name": "e", "query": "x", "below": 1}],
    },
    SqlCheckParams: {"database_url_env": "DB", "query": "select 1"},
}


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (HttpParams, "timeout"),
        (HttpParams, "interval"),
        (K8sRolloutParams, "timeout"),
        (K8sRolloutParams, "interval"),
        (K8sSetImageParams, "timeout"),
        (K8sSetImageParams, "interval"),
        (MetricsParams, "timeout"),
        (MetricsParams, "interval"),
        (SqlCheckParams, "timeout"),
    ],
)
def test_each_action_refuses_a_zero_wait(model: type[BaseModel], field: str) -> None:
    assert model.model_validate({**REQUIRED[model], field: "2s"}).model_dump()[field] == 2.0
    with pytest.raises(ValidationError, match=f"{field}\n.*must be more than 0 seconds"):
        model.model_validate({**REQUIRED[model], field: 0})
