"""The demo's post-deploy analysis: a real Prometheus scraping the sandbox app.

If Debian's ``prometheus`` is installed, the demo starts it (``sandbox.prometheus``) and
the runbook's ``metrics_analysis`` step measures the app's real metrics through it, every
second. If it is not installed, the demo says so and that one step is replaced, in the
sandbox's copy of the runbook, by a step that only prints that it was skipped: no numbers
are made up.

With ``--bad-metrics`` the app's error rate rises to 20 % once the manifests are applied
(a bad release), the analysis fails and the release rolls back; the error rate falls again
once the rollback has undone the rollout.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import click
from ruamel.yaml import YAML

from shipcaptain.client import Client
from shipcaptain.errors import UsageError
from shipcaptain.sandbox import prometheus
from shipcaptain.sandbox.health_server import HealthServer
from shipcaptain.sandbox.prometheus import PrometheusServer
from shipcaptain.sandbox.workspace import Sandbox

STEP = "metrics_analysis"
BAD_ERROR_RATE = 0.2
SKIPPED = "metrics analysis skipped: prometheus is not installed (apt-get install prometheus)"


class DemoMetrics:
    """Prometheus for the demo (or a clear note that there is none) and the bad release."""

    def __init__(self, app: HealthServer, sandbox: Sandbox, *, bad: bool) -> None:
        self.app = app
        self.sandbox = sandbox
        self.bad = bad
        self.server: PrometheusServer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> DemoMetrics:
        if not prometheus.available():
            if self.bad:
                raise UsageError("--bad-metrics needs prometheus: apt-get install prometheus")
            _replace_step(self.sandbox)
            click.echo(click.style(f"  [demo] {SKIPPED}\n", fg="yellow"))
            return self
        self.server = PrometheusServer([f"127.0.0.1:{self.app.port}"]).start()
        click.echo(f"  prometheus {self.server.url} scraping the app every second", nl=False)
        self.server.wait_for("sum(rate(app_requests_total[1m]))", within=60)
        click.echo(": first data in\n")
        return self

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


def _succeeded(record: Any) -> bool:
    return record is not None and record.status == "succeeded"


def _replace_step(sandbox: Sandbox) -> None:
    """In the sandbox's copy of the runbook, the metrics step only says it was skipped."""
    yaml = YAML()
    yaml.preserve_quotes = True
    document = yaml.load(sandbox.runbook.read_text(encoding="utf-8"))
    for phase in document["phases"]:
        for step in phase["steps"]:
            if step["id"] == STEP:
                step["action"] = "shell"
                step["with"] = {"command": f"echo '[sandbox] {SKIPPED}'"}
                step["description"] = SKIPPED
    with sandbox.runbook.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
