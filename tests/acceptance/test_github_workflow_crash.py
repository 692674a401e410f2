"""kill -9 of the engine while it follows a GitHub workflow run: the resumed release
follows the same run and the workflow is not dispatched a second time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.processes import wait_for
from helpers.releases import write_runbook
from helpers.team import make_team
from shipcaptain.sandbox.doubles.github import GitHubDouble
from shipcaptain.store import Store

pytestmark = pytest.mark.slow

TOKEN = "crash-test-token"


@pytest.fixture
def github() -> Iterator[GitHubDouble]:
    with GitHubDouble(token=TOKEN) as double:
        double.set_ref("tags/v1.4.0", "b" * 40)
        behaviour = double.workflow("deploy.yml")
        # as written by a team that never heard of shipcaptain: no marker input
        behaviour.definition = (
            "name: Deploy\non:\n  workflow_dispatch:\n    inputs:\n"
            "      tag: {required: true}\n"
            "jobs:\n  build: {runs-on: ubuntu-latest, steps: [{run: make}]}\n"
        )
        behaviour.queued_seconds = 0.5
        behaviour.running_seconds = 6.0
        yield double


def test_kill_9_while_following_a_run_does_not_dispatch_again(
    database_url: str, store: Store, github: GitHubDouble, tmp_path: Path
) -> None:
    runbook = write_runbook(
        tmp_path,
        f"""
        name: build
        phases:
          - id: tag_and_build
            steps:
              - id: build
                action: github_workflow
                with:
                  repo: ValueCanvas/ValueCanvas
                  api_url: {github.url}
                  workflow: deploy.yml
                  ref: v1.4.0
                  inputs: {{tag: v1.4.0}}
                  poll_interval: 0.2
              - id: after
                action: shell
                needs: [build]
                with: {{command: "echo {{{{ steps.build.run_url }}}} > run_url"}}
        """,
    )
    env = {
        **os.environ,
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "SHIPCAPTAIN_TOKEN": make_team(database_url)["casey"],
        "GITHUB_TOKEN": TOKEN,
    }
    command = [sys.executable, "-m", "shipcaptain"]
    first = subprocess.Popen(
        [*command, "release", "start", str(runbook), "--json"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: len(store.list_releases()) == 1)
        release_id = store.list_releases()[0].id
        wait_for(lambda: len(github.dispatches) == 1)
        run = github.runs[0]
        # kill while the run is in progress and the engine is following it
        wait_for(lambda: time.time() > run.created + 1.5)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=10)
    assert github.run_json("ValueCanvas/ValueCanvas", run)["status"] == "in_progress"

    resumed = subprocess.run(
        [*command, "release", "resume", release_id, "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr.decode()
    # one execution of the run: DBOS's recovery's (see test_gates.py's take-over test)
    assert b"no longer owned" not in resumed.stderr, resumed.stderr.decode()
    assert len(github.dispatches) == 1
    assert len(github.runs) == 1
    build = store.latest_step_runs(release_id)["build"]
    assert build.status == "succeeded"
    assert build.outputs["run_id"] == run.id
    url = f"https://github.com/ValueCanvas/ValueCanvas/actions/runs/{run.id}"
    assert (tmp_path / "run_url").read_text().strip() == url
    assert store.get_release(release_id).status == "succeeded"
