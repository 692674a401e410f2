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

from helpers.processes import STACKS_ON_ABORT, ended_or_stacks
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


LONG_STEP = """\
name: long-step
phases:
  - id: build
    steps:
      - {id: nap, action: shell, with: {command: "echo $$ > {pid_file}; exec sleep 120"}}
"""


@pytest.mark.slow
def test_release_start_stopped_mid_step_ends_and_leaves_the_step_to_resume(
    tmp_path: Path,
) -> None:
    """Ctrl-C while a long step runs: the engine waits a few seconds for the step, then
    the command ends (it waited for the step however long it ran, and the step's result
    then found no engine to record it); the step's command dies with the process and its
    try is left unrecorded, to run again when the release resumes."""
    import signal
    import time

    url = f"sqlite:///{tmp_path / 'state.db'}"
    tokens = make_team(url)
    pid_file = tmp_path / "nap.pid"
    (tmp_path / "runbook.yaml").write_text(LONG_STEP.replace("{pid_file}", str(pid_file)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env |= {
        "SHIPCAPTAIN_DATABASE_URL": url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        **token_env(tokens, "casey"),
        **STACKS_ON_ABORT,
    }
    # Ctrl-C reaches it as in a terminal: a suite started in the background by a shell
    # without job control has SIGINT ignored, which the command would inherit (Python then
    # installs no handler for it, and the SIGINT below did nothing); a handler of this
    # process is not inherited (the command starts with SIGINT at its default)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipcaptain.cli.main", "release", "start", "runbook.yaml"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        step_pid = int(pid_file.read_text())
        proc.send_signal(signal.SIGINT)
        # the step alone would take 120 s
        out, _ = ended_or_stacks(proc, 60, "release start, after Ctrl-C,")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, out
    assert "step nap still running as the engine stops" in out, out
    assert "runs again when the release resumes" in out, out
    assert "Traceback" not in out, out
    gone_by = time.monotonic() + 10
    while Path(f"/proc/{step_pid}").exists() and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not Path(f"/proc/{step_pid}").exists(), "the step's command outlived the engine"
    shown = subprocess.run(
        [sys.executable, "-m", "shipcaptain.cli.main", "release", "list", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (listed,) = json.loads(shown.stdout)
    assert listed["status"] not in ("succeeded", "failed"), listed
