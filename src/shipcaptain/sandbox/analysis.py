"""The demo's post-deploy validation: a real Prometheus scraping the sandbox app, and a
real PostgreSQL logs database for the RLS check.

If Debian's ``prometheus`` is installed, the demo starts it (``sandbox.prometheus``) and
the runbook's ``metrics_analysis`` step measures the app's real metrics through it, every
second. If it is not installed, the demo says so and that one step is replaced, in the
sandbox's copy of the runbook, by a step that only prints that it was skipped: no numbers
are made up. The same holds for the RLS check (``rls_logs_checked``) and the PostgreSQL
server binaries (``sandbox.logs_database``).

With ``--bad-metrics`` the app's error rate rises to 20 % once the manifests are applied
(a bad release), the analysis fails and the release rolls back; the error rate falls again
once the rollback has undone the rollout.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import Any

import click
from ruamel.yaml import YAML

from shipcaptain.client import Client
from shipcaptain.errors import UsageError
from shipcaptain.sandbox import logs_database, prometheus
from shipcaptain.sandbox.health_server import HealthServer
from shipcaptain.sandbox.logs_database import LogsDatabase
from shipcaptain.sandbox.prometheus import PrometheusServer
from shipcaptain.sandbox.workspace import Sandbox

STEP = "metrics_analysis"
BAD_ERROR_RATE = 0.2
SKIPPED = "metrics analysis skipped: prometheus is not installed (apt-get install prometheus)"
RLS_STEP = "rls_logs_checked"
RLS_SKIPPED = "RLS check skipped: the PostgreSQL server binaries (initdb, pg_ctl) are not installed"


class DemoMetrics:
    """Prometheus for the demo (or a clear note that there is none) and the bad release."""

    def __init__(self, app: HealthServer, sandbox: Sandbox, *, bad: bool) -> None:
        self.app = app
        self.sandbox = sandbox
        self.bad = bad
        self.server: PrometheusServer | None = None
        self.logs: LogsDatabase | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DemoMetrics:
        # Prometheus first: its first scrape comes seconds after it starts (its target
        # discovery waits), time the rest of the sandbox spends starting
        if prometheus.available():
            self.server = PrometheusServer([f"127.0.0.1:{self.app.port}"]).start()
        elif self.bad:
            raise UsageError("--bad-metrics needs prometheus: apt-get install prometheus")
        try:
            if logs_database.available():
                self.logs = LogsDatabase().start()
                os.environ["LOGS_DATABASE_URL"] = self.logs.url
                click.echo(f"  logs database {self.logs.url} (PostgreSQL, for the RLS check)")
            else:
                _replace_step(self.sandbox, RLS_STEP, RLS_SKIPPED)
                click.echo(click.style(f"  [demo] {RLS_SKIPPED}", fg="yellow"))
        except BaseException:
            if self.server is not None:
                self.server.stop()
            raise
        if self.server is None:
            _replace_step(self.sandbox, STEP, SKIPPED)
            click.echo(click.style(f"  [demo] {SKIPPED}\n", fg="yellow"))
        else:
            click.echo(f"  prometheus {self.server.url} scraping the app every second\n")
        return self

    def restart(self) -> PrometheusServer | None:
        """Stop Prometheus (nothing answers at its address any more) and start a new one on
        another port, scraping the app with no history; the new one's first scrape comes
        seconds later (``ready``, ``PrometheusServer.wait_for``)."""
        old = self.server
        if old is None:
            return None
        old.stop()
        self.server = PrometheusServer([f"127.0.0.1:{self.app.port}"]).start()
        return self.server

    def ready(self) -> None:
        """Wait for Prometheus's first data (a rate needs two scrapes: seconds). Apart from
        entering, so the rest of the sandbox starts meanwhile."""
        if self.server is not None:
            seconds = time.monotonic()
            self.server.wait_for(prometheus.FIRST_DATA, within=60)
            waited = time.monotonic() - seconds
            click.echo(f"  prometheus {self.server.url}: first data in (waited {waited:.1f} s)\n")

    @property
    def params(self) -> dict[str, Any]:
        """Release parameters: where Prometheus is, and a short interval for the demo."""
        values: dict[str, Any] = {"analysis_interval": "1s"}
        if self.server is not None:
            values["prometheus_url"] = self.server.url
        return values

    def follow(self, client: Client, release_id: str) -> None:
        """Play the bad release (if asked): errors after the rollout, none after the undo."""
        if self.bad:
            self._thread = threading.Thread(
                target=self._play, args=(client, release_id), name="demo-metrics", daemon=True
            )
            self._thread.start()

    def report(self, client: Client, release_id: str) -> None:
        """Where to look at the analysis: its measurements and the dashboard link."""
        run = client.store.latest_step_runs(release_id).get(STEP)
        if run is not None and run.outputs.get("grafana_url"):
            count = len(run.outputs.get("measurements", []))
            click.echo(f"  {STEP}: {count} measurements kept in the step's outputs")
            click.echo(f"  dashboard for the release window: {run.outputs['grafana_url']}")

    def _play(self, client: Client, release_id: str) -> None:
        raised = False
        while not self._stop.wait(0.2):
            latest = client.store.latest_step_runs(release_id)
            if not raised and _succeeded(latest.get("apply_manifests")):
                self.app.set_error_rate(BAD_ERROR_RATE)
                click.echo(
                    click.style(
                        "  [demo] the new build answers 20 % of requests with 500", fg="red"
                    )
                )
                raised = True
            if raised and _succeeded(latest.get("undo_rollout")):
                self.app.set_error_rate(0.0)
                return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.server is not None:
            self.server.stop()
        if self.logs is not None:
            os.environ.pop("LOGS_DATABASE_URL", None)
            self.logs.stop()


def _succeeded(record: Any) -> bool:
    return record is not None and record.status == "succeeded"


def _replace_step(sandbox: Sandbox, step_id: str, why: str) -> None:
    """In the sandbox's copy of the runbook, the step only says why it was skipped."""
    yaml = YAML()
    yaml.preserve_quotes = True
    document = yaml.load(sandbox.runbook.read_text(encoding="utf-8"))
    for phase in document["phases"]:
        for step in phase["steps"]:
            if step["id"] == step_id:
                step["action"] = "shell"
                step["with"] = {"command": f"echo '[sandbox] {why}'"}
                step["description"] = why
    with sandbox.runbook.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
