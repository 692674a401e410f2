"""``shipcaptain demo`` with the sandbox cluster: the rollout phase runs on the Kubernetes
API double, and ``--bad-image`` makes the release roll back by itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipcaptain.sandbox.doubles.kubernetes import digest_of

pytestmark = pytest.mark.slow


def demo(tmp_path: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPCAPTAIN_")}
    env["SHIPCAPTAIN_DATABASE_URL"] = database_url
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


def test_demo_rolls_out_and_verifies_digests_on_the_sandbox_cluster(
    tmp_path: Path, database_url: str
) -> None:
    done = demo(tmp_path, database_url)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "[apply_manifests] applied 11 objects" in out
    for name in ("api", "web", "worker"):
        assert f"[rollout_{name}] rollout of {name} done" in out
    # the digests the Deploy workflow reported (its release-outputs artifact)
    built = digest_of("ghcr.io/valuecanvas/api:1.4.0")[: len("sha256:") + 12]
    assert f"[image_digest_confirmed] 5 pods run the build's digest: api {built}" in out
    assert "SUPABASE_SERVICE_KEY" not in out
    assert "sandbox-service-key" not in out


def test_demo_with_a_bad_image_rolls_back_automatically(tmp_path: Path, database_url: str) -> None:
    done = demo(tmp_path, database_url, "--bad-image")
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "[rollout_api] rollout failed: api: pod api-" in out
    assert "(image ghcr.io/valuecanvas/api:1.4.0)" in out
    assert "[rollback/undo_rollout] kubectl rollout undo; rollback of api, web, worker done" in out
    assert "rolled_back" in out
