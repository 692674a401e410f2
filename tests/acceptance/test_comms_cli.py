"""Comms as the captain sees them through the real CLI, in subprocesses on SQLite and
PostgreSQL: ``release start`` says which templates have no channel, the release's final
line counts what was not delivered, and ``release show --json`` lists it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers.releases import write_runbook
from helpers.team import make_team, token_env

CLI = [sys.executable, "-m", "shipcaptain.cli.main"]

RUNBOOK = """
name: quiet
parameters:
  version: {required: true}
phases:
  - id: preflight
    steps:
      - {id: checked, action: shell, with: {command: "true"}}
  - id: deploy
    steps:
      - {id: rollout, action: shell, with: {command: "echo rolled out"}}
comms:
  channel: "#releases"
  templates:
    start: Deploying v{{ version }}.
    complete: v{{ version }} deployed.
"""


def test_a_release_with_no_channel_says_so_before_and_after(
    database_url: str, tmp_path: Path
) -> None:
    tokens = make_team(database_url, ["casey"])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")},
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "SHIPCAPTAIN_POLL_INTERVAL": "0.05",
        **token_env(tokens, "casey"),
    }
    runbook = write_runbook(tmp_path, RUNBOOK)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    started = cli("release", "start", str(runbook), "-p", "version=1.0.0", "--json")
    assert started.returncode == 0, started.stderr
    assert (
        "comms.templates: complete, start have no channel and would not be delivered"
        in started.stderr
    )
    final = json.loads(started.stdout.strip().splitlines()[-1])
    assert final["status"] == "succeeded"
    assert final["reason"] == (
        "all 2 steps done; 2 notifications not delivered "
        "(comms.start to (no channel), comms.complete to (no channel))"
    )
    shown = cli("release", "show", final["id"], "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert [(n["kind"], n["status"]) for n in view["notifications"]] == [
        ("comms.start", "failed"),
        ("comms.complete", "failed"),
    ]
    events = [e["kind"] for e in view["events"]]
    assert events.count("notification.failed") == 2
    # the start message went (nowhere) only once pre-flight had passed
    assert events.index("comms.start") > events.index("step.succeeded")
