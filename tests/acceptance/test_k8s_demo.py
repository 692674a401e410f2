"""``shipcaptain demo`` with the sandbox cluster: the rollout phase runs on the Kubernetes
API double, and ``--bad-image`` makes the release roll back by itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.demo import assert_rolled_out_on_the_sandbox_cluster

pytestmark = pytest.mark.slow


def demo(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The demo as a person runs it: a home of its own, kubectl's cache not set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env["SHIPCAPTAIN_DATABASE_URL"] = database_url
    env["HOME"] = str(tmp_path / "home")
    env.pop("KUBECACHEDIR", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shipcaptain.cli.main",
            "demo",
            "--workspace",
            str(tmp_path / "w"),
            *args,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


# The default demo with no team, as README command 1 runs it, on SQLite; test_cli's demo test
# runs it with a team on PostgreSQL (each run is about half a minute).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_rolls_out_and_verifies_digests_on_the_sandbox_cluster(
    tmp_path: Path, database_url: str
) -> None:
    done = demo(tmp_path, database_url)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert_rolled_out_on_the_sandbox_cluster(out)
    # kubectl's discovery of the double's API is cached in the workspace, not the person's
    # ~/.kube/cache, where each run's loopback address would stay for good
    assert not (tmp_path / "home" / ".kube").exists()
    assert list((tmp_path / "w" / "kube-cache" / "discovery").iterdir())


# The automatic rollback is the engine's on the Kubernetes double; the state database does not
# change that path (test_rollback runs rollbacks on both): on PostgreSQL only, which the other
# default demo here does not use.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_demo_with_a_bad_image_rolls_back_automatically(tmp_path: Path, database_url: str) -> None:
    done = demo(tmp_path, database_url, "--bad-image")
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "[rollout_api] rollout failed: api: pod api-" in out
    assert "(image ghcr.io/valuecanvas/api:1.4.0)" in out
    assert "[rollback/undo_rollout] kubectl rollout undo; rollback of api, web, worker done" in out
    assert "rolled_back" in out
