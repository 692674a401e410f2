"""``release start`` ends as soon as the release it runs has: the live view is woken when the
release's workflow returns, instead of looking again at its next refresh.

The refresh interval is set to an hour (SHIPCAPTAIN_POLL_INTERVAL), and the step takes long
enough that the first look finds the release running: a CLI that waited for its next
refresh would not end within the subprocess's timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.team import make_team, token_env

RUNBOOK = """\
name: slow-enough
phases:
  - id: build
    steps:
      - {id: nap, action: shell, with: {command: "sleep 0.5"}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("as_json", [True, False], ids=["json", "stream"])
def test_release_start_ends_when_the_release_does(tmp_path: Path, as_json: bool) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    tokens = make_team(url)
    (tmp_path / "runbook.yaml").write_text(RUNBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env |= {
        "SHIPCAPTAIN_DATABASE_URL": url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "SHIPCAPTAIN_POLL_INTERVAL": "3600",
        **token_env(tokens, "casey"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "shipcaptain.cli.main", "release", "start", "runbook.yaml"]
        + (["--json"] if as_json else []),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    if as_json:
        assert json.loads(done.stdout.splitlines()[-1])["status"] == "succeeded"
    else:
        assert "nap" in done.stdout
        assert "succeeded" in done.stdout
