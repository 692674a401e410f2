"""kill -9 of the process watching a rollout: the release resumes the watch, and the
manifests are not applied again (the double counts the apply requests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.kube import write_overlay
from helpers.processes import wait_for
from helpers.releases import write_runbook
from helpers.team import make_team
from shipcaptain.sandbox.doubles.kubernetes import KubernetesDouble
from shipcaptain.store import Store

pytestmark = pytest.mark.slow

RUNBOOK = """
    name: k8s-crash
    phases:
      - id: rollout
        steps:
          - id: apply
            action: k8s_apply
            with:
              overlay: kubernetes/overlays/production
              images: {ghcr.io/valuecanvas/api: "2.0.0", ghcr.io/valuecanvas/web: "2.0.0",
                       ghcr.io/valuecanvas/worker: "2.0.0"}
          - id: watch
            action: k8s_rollout
            needs: [apply]
            with: {deployments: [api, web, worker], interval: 0.2}
"""


def test_kill_9_during_the_rollout_watch_resumes_it_without_applying_again(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with KubernetesDouble(pod_ready_seconds=1.5, tick=0.05) as double:
        kubeconfig = double.kubeconfig(tmp_path / "kubeconfig", namespace="vc")
        write_overlay(tmp_path)
        runbook = write_runbook(tmp_path, RUNBOOK)
        env = {
            **os.environ,
            "SHIPCAPTAIN_DATABASE_URL": database_url,
            "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
            "SHIPCAPTAIN_TOKEN": make_team(database_url)["casey"],
            "KUBECONFIG": str(kubeconfig),
        }

        def applies() -> int:
            return sum(
                1
                for method, path in double.cluster.requests
                if method == "PATCH"
                and path.startswith("/apis/apps/v1/namespaces/vc/deployments/api?")
                and "dryRun" not in path
            )

        def watch_status() -> str | None:
            releases = store.list_releases()
            rec = store.latest_step_runs(releases[0].id).get("watch") if releases else None
            return rec.status if rec else None

        def run(*args: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "shipcaptain", *args],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )

        def reads() -> int:
            return sum(
                1
                for method, path in list(double.cluster.requests)
                if method == "GET" and path.startswith("/apis/apps/v1/namespaces/vc/deployments")
            )

        # the cluster's controller held: the manifests are applied, but the rollout cannot
        # finish before the kill, however slow the machine is
        with double.paused():
            first = run("release", "start", str(runbook), "--json")
            try:
                wait_for(lambda: watch_status() == "running", 60.0)
                seen = reads()
                wait_for(lambda: reads() > seen, 30.0, what="the watch to read the deployments")
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            finally:
                if first.poll() is None:
                    first.kill()
                first.communicate(timeout=10)
            assert watch_status() == "running"  # killed while it watched
        assert applies() == 1
        release_id = store.list_releases()[0].id
        assert store.get_release(release_id).status == "running"

        resumed = run("release", "resume", release_id, "--json")
        _out, err = resumed.communicate(timeout=90)
        assert resumed.returncode == 0, err.decode()[-2000:]
        assert store.get_release(release_id).status == "succeeded"
        assert applies() == 1  # the apply was checkpointed: not repeated
        kinds = [(e.kind, e.step_id) for e in store.list_events(release_id=release_id)]
        assert ("step.recovered", "watch") in kinds
        assert ("step.succeeded", "apply") in kinds
        assert kinds.count(("step.succeeded", "apply")) == 1
        watch = store.latest_step_runs(release_id)["watch"]
        assert watch.status == "succeeded"
        assert watch.outputs["deployments"] == {"api": "done", "web": "done", "worker": "done"}
        for name in ("api", "web", "worker"):
            live = double.deployment(name, "vc")
            assert live is not None
            assert live["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0")
            assert live["status"]["updatedReplicas"] == live["status"]["availableReplicas"] == 2
