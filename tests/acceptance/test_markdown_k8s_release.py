"""A Markdown runbook's ``kubectl set image`` and ``kubectl rollout undo``, run by a real
``shipcaptain release start`` process against the Kubernetes API double: the bad image
fails the step fast, the rollback sets back the image the release replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers.kube import write_overlay
from helpers.team import make_team
from shipcaptain.sandbox.doubles.kubernetes import Behaviour, KubernetesDouble
from shipcaptain.store import Store

RUNBOOK = """\
# Ship the API

## Deploy

<!-- shipcaptain: on_failure=rollback -->
1. Set the new image: `kubectl set image deployment/api api=ghcr.io/valuecanvas/api:<version>`

## Rollback

- Undo the image: `kubectl rollout undo deployment/api`
"""


def test_a_bad_image_rolls_back_to_the_image_before(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with KubernetesDouble(pod_ready_seconds=0.2, tick=0.05) as double:
        kubeconfig = double.kubeconfig(tmp_path / "kubeconfig", namespace="vc")
        overlay = write_overlay(tmp_path, deployments=("api",), replicas=1)
        kubectl = ["kubectl", "--kubeconfig", str(kubeconfig)]
        subprocess.run([*kubectl, "apply", "--server-side", "-k", str(overlay)], check=True)
        subprocess.run(
            [*kubectl, "rollout", "status", "deployment/api", "-n", "vc", "--timeout=30s"],
            check=True,
            capture_output=True,
        )
        double.cluster.behave("ghcr.io/valuecanvas/api:6.6.6", Behaviour.BAD_IMAGE)
        (tmp_path / "RUNBOOK.md").write_text(RUNBOOK, encoding="utf-8")
        # none of the developer's Kubernetes settings; the test process's own kubectl cache
        # (conftest), not the developer's ~/.kube/cache
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SHIPCAPTAIN_", "KUBE")) or k == "KUBECACHEDIR"
        }
        (tmp_path / "home").mkdir()
        env |= {
            "HOME": str(tmp_path / "home"),
            "KUBECONFIG": str(kubeconfig),
            "SHIPCAPTAIN_DATABASE_URL": database_url,
            "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
            "SHIPCAPTAIN_POLL_INTERVAL": "0.05",
            "SHIPCAPTAIN_TOKEN": make_team(database_url)["casey"],
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "shipcaptain",
                "release",
                "start",
                "RUNBOOK.md",
                "-p",
                "version=6.6.6",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        release = store.list_releases()[0]
        record = store.get_release(release.id)
        assert record.status == "rolled_back", done.stdout[-3000:] + done.stderr[-3000:]
        # the release's kubectl cached nothing in its home (on the old code: a folder per
        # port in the developer's ~/.kube/cache, for good)
        assert not (tmp_path / "home" / ".kube").exists()
        runs = store.latest_step_runs(release.id)
        failed = runs["set_the_new_image"]
        assert failed.status == "failed"
        assert "ImagePullBackOff" in failed.summary or "ErrImagePull" in failed.summary
        assert failed.outputs["previous"] == {"api": "ghcr.io/valuecanvas/api:1.0.0"}
        live = json.loads(
            subprocess.run(
                [*kubectl, "get", "deployment/api", "-n", "vc", "-o", "json"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        image = live["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "ghcr.io/valuecanvas/api:1.0.0"
        undone = [r for key, r in runs.items() if key.startswith("rollback/")]
        assert [r.status for r in undone] == ["succeeded"], runs.keys()
        assert undone[0].outputs["method"] == "images"
