"""Fixtures: the sandbox app (with its metrics) and a real Prometheus scraping it every second."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def app_and_prometheus() -> Iterator[tuple[HealthServer, PrometheusServer]]:
    """A sandbox app and a Prometheus scraping it, once its first data is in (about 6.5 s:
    Prometheus's target discovery waits 5 s). The ``scraped`` fixture (conftest) is one
    pair for a test process's whole run."""
    with (
        HealthServer(build="abc1234") as server,
        PrometheusServer([f"127.0.0.1:{server.port}"]) as prom,
    ):
        prom.wait_for(ERROR_RATIO, within=30)
        yield server, prom


@pytest.fixture
def app(scraped: tuple[HealthServer, PrometheusServer]) -> Iterator[HealthServer]:
    """The app Prometheus scrapes, for a test that changes it (an error rate): afterwards
    it serves as before, and Prometheus forgets what it served meanwhile (its samples
    deleted), so the next test reads a healthy series with no history."""
    server, prom = scraped
    before = server.state()
    yield server
    server.update(before)
    prom.forget(ERROR_RATIO, within=30)


@pytest.fixture
def prometheus(
    scraped: tuple[HealthServer, PrometheusServer], app: HealthServer
) -> PrometheusServer:
    """Prometheus scraping ``app``."""
    return scraped[1]


@pytest.fixture
def shared_prometheus(scraped: tuple[HealthServer, PrometheusServer]) -> PrometheusServer:
    """Prometheus scraping a steady healthy app, for a test that only reads it."""
    return scraped[1]
