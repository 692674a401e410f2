"""The sandbox's GitHub double as a command line, for a release by hand (the tutorial)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from shipcaptain.sandbox.github import REPO, TOKEN
from shipcaptain.sandbox.workspace import build_sandbox, git


def test_command_line_serves_ci_green_on_head_and_writes_its_variables(tmp_path: Path) -> None:
    sandbox = build_sandbox(tmp_path / "ws")
    head = git("rev-parse", "HEAD", cwd=sandbox.app)
    env_file = tmp_path / "ws" / "github.env"
    command = [sys.executable, "-m", "shipcaptain.sandbox.github", "--workspace"]
    proc = subprocess.Popen(
        [*command, str(sandbox.root), "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = proc.stdout.readline() + proc.stdout.readline()
        url = printed.split("GITHUB_API_URL=")[1].split("\n")[0]
        assert printed == f"export GITHUB_API_URL={url}\nexport GITHUB_TOKEN={TOKEN}\n"
        assert env_file.read_text(encoding="utf-8") == printed
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            found = client.get(f"{url}/repos/{REPO}/commits/{head}/check-runs").json()
        assert sorted(c["name"] for c in found["check_runs"]) == ["build", "lint", "test"]
        assert {c["head_sha"] for c in found["check_runs"]} == {head}
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_command_line_refuses_a_directory_that_is_no_demo_workspace(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shipcaptain.sandbox.github", "--workspace", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert f"--workspace {tmp_path} is not a demo workspace" in done.stderr
