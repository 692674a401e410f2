"""Fixtures: the sandbox app (with its metrics) and a real Prometheus scraping it every second."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shipcaptain.sandbox import prometheus as sandbox_prometheus
from shipcaptain.sandbox.health_server import HealthServer
from shipcaptain.sandbox.prometheus import PrometheusServer

#: CI sets this: a missing prometheus then fails the tests instead of skipping them.
REQUIRE_ENV = "SHIPCAPTAIN_REQUIRE_PROMETHEUS"

needs_prometheus = pytest.mark.skipif(
    not sandbox_prometheus.available() and not os.environ.get(REQUIRE_ENV),
    reason="prometheus is not installed (see .ci/run)",
)

ERROR_RATIO = 'sum(rate(app_requests_total{code="500"}[3s])) / sum(rate(app_requests_total[3s]))'


@pytest.fixture
def app() -> Iterator[HealthServer]:
    with HealthServer(build="abc1234") as server:
        yield server


@pytest.fixture
def prometheus(app: HealthServer) -> Iterator[PrometheusServer]:
    """Prometheus on a free port scraping ``app``; waits for the first data (a few seconds)."""
    with PrometheusServer([f"127.0.0.1:{app.port}"]) as prom:
        prom.wait_for(ERROR_RATIO, within=30)
        yield prom


@pytest.fixture(scope="module")
def shared_prometheus() -> Iterator[PrometheusServer]:
    """One Prometheus (and app) for a module's tests that only read a steady healthy series:
    waiting for a new Prometheus's first data costs about 6.5 s a test. A test that changes
    the app (an error rate) takes ``app`` and ``prometheus`` instead, its own pair."""
    with (
        HealthServer(build="abc1234") as steady,
        PrometheusServer([f"127.0.0.1:{steady.port}"]) as prom,
    ):
        prom.wait_for(ERROR_RATIO, within=30)
        yield prom
