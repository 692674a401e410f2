"""The metrics analysis as a release captain meets it: it survives kill -9 of the engine
(measurements taken before the crash are kept, not taken again) and the demo's bad
release rolls back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.processes import wait_for
from helpers.prometheus import ERROR_RATIO, app, needs_prometheus, prometheus
from helpers.releases import write_runbook
from helpers.team import make_team
from shipcaptain.sandbox.prometheus import PrometheusServer
from shipcaptain.store import Store, open_store

__all__ = ["app", "prometheus"]  # fixtures

pytestmark = [pytest.mark.slow, needs_prometheus]
CLI = [sys.executable, "-m", "shipcaptain.cli.main"]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_store(url)
    store.migrate()
    try:
        yield url, store
    finally:
        store.close()


def progress(store: Store, release_id: str) -> list[str]:
    return [
        e.message.split(":")[0]
        for e in store.list_events(release_id=release_id)
        if e.kind == "step.progress" and e.message.startswith("measurement")
    ]


def test_the_analysis_survives_kill_9_and_keeps_its_measurements(
    sqlite_store: tuple[str, Store], prometheus: PrometheusServer, tmp_path: Path
) -> None:
    url, store = sqlite_store
    runbook = write_runbook(
        tmp_path,
        f"""\
        name: analysed
        phases:
          - id: post_deploy
            steps:
              - id: analysis
                action: metrics
                with:
                  prometheus: {prometheus.url}
                  queries: [{{name: error_rate, query: '{ERROR_RATIO}', below: 0.01}}]
                  count: 6
                  interval: 1s
        """,
    )
    env = {
        **os.environ,
        "SHIPCAPTAIN_DATABASE_URL": url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "SHIPCAPTAIN_TOKEN": make_team(url)["casey"],
    }
    first = subprocess.Popen(
        [*CLI, "release", "start", str(runbook), "--json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: len(store.list_releases()) == 1, 60.0)
        release_id = store.list_releases()[0].id
        wait_for(lambda: len(progress(store, release_id)) >= 2, 60.0)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = time.time()
        before = progress(store, release_id)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    resumed = subprocess.run(
        [*CLI, "release", "resume", release_id, "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = store.latest_step_runs(release_id)["analysis"]
    assert run.status == "succeeded"
    measurements = run.outputs["measurements"]
    assert [m["round"] for m in measurements] == [1, 2, 3, 4, 5, 6]
    # The rounds measured before the crash were kept (taken before it), not measured again.
    taken_before = len(before)
    assert all(m["at"] < killed_at for m in measurements[:taken_before])
    assert all(m["at"] > killed_at for m in measurements[taken_before + 1 :])
    # Each round was shown once: replay does not repeat the timeline.
    assert progress(store, release_id) == [f"measurement {n}/6" for n in range(1, 7)]


def test_demo_bad_metrics_rolls_the_release_back(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *CLI,
            "--data-dir",
            str(tmp_path / "data"),
            "demo",
            "--bad-metrics",
            "--workspace",
            str(tmp_path / "sandbox"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[metrics_analysis] error_rate failed 1 time(s)" in done.stdout
    assert "release.rolled_back" in done.stdout
    assert re.search(r"step\.succeeded\s+\[rollback/undo_rollout\]", done.stdout)
    # a failed post-deploy check in production: a P1 with its clocks, and the comms
    assert re.search(
        r"incident inc-\w+ P1 mitigated: post-deploy check metrics_analysis failed in production",
        done.stdout,
    ), done.stdout[-3000:]
    assert re.search(
        r"clocks: acknowledged after \d+s \(SLA 5m: met\), mitigated after \d+s \(SLA 30m: met\)",
        done.stdout,
    ), done.stdout[-3000:]
    assert re.search(r"└ P1 incident inc-\w+: .* acknowledge by [\d:]+Z \(in 5m\)", done.stdout)
    assert (
        "Initiating rollback of v1.4.0 due to metrics_analysis failing (error_rate failed 1 "
        "time(s), more than the failure limit 0). ETA to restore: 15 minutes." in done.stdout
    )
