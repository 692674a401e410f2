"""Real kubectl 1.32 against the Kubernetes API double: apply, rollout status, undo, get."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.kube import Kube, running_double, write_overlay
from shipcaptain.sandbox.doubles.kubernetes import Behaviour


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    yield from running_double(tmp_path)


def test_kubectl_applies_every_kind_of_an_overlay_server_side(kube: Kube) -> None:
    overlay = write_overlay(kube.workdir)
    done = kube.kubectl("apply", "--server-side", "-k", str(overlay))
    lines = done.stdout.splitlines()
    for kind in (
        "namespace/vc",
        "serviceaccount/app",
        "configmap/app-config",
        "secret/app-secret",
        "service/api",
        "deployment.apps/api",
        "horizontalpodautoscaler.autoscaling/api",
        "ingress.networking.k8s.io/api",
    ):
        assert f"{kind} serverside-applied" in lines, done.stdout
    secret = json.loads(
        kube.kubectl("get", "secret", "app-secret", "-n", "vc", "-o", "json").stdout
    )
    assert base64.b64decode(secret["data"]["DB_PASSWORD"]).decode().startswith("hunter2")
    deploy = json.loads(
        kube.kubectl(
            "get", "deploy", "api", "-n", "vc", "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert deploy["metadata"]["managedFields"][0]["manager"] == "kubectl"
    assert deploy["metadata"]["managedFields"][0]["operation"] == "Apply"


def test_kubectl_rollout_status_set_image_and_undo(kube: Kube) -> None:
    overlay = write_overlay(kube.workdir, deployments=("api",))
    kube.kubectl("apply", "--server-side", "-k", str(overlay))
    status = kube.kubectl("rollout", "status", "deploy/api", "-n", "vc", "--timeout=20s")
    assert 'deployment "api" successfully rolled out' in status.stdout
    kube.kubectl("set", "image", "deploy/api", "-n", "vc", "api=ghcr.io/valuecanvas/api:1.1.0")
    status = kube.kubectl("rollout", "status", "deploy/api", "-n", "vc", "--timeout=20s")
    assert "new replicas have been updated" in status.stdout
    assert status.stdout.strip().endswith('deployment "api" successfully rolled out')
    kube.kubectl("rollout", "undo", "deploy/api", "-n", "vc")
    kube.kubectl("rollout", "status", "deploy/api", "-n", "vc", "--timeout=20s")
    rs = json.loads(kube.kubectl("get", "rs", "-n", "vc", "-o", "json").stdout)["items"]
    # undo reuses the first ReplicaSet, which becomes revision 3; no third ReplicaSet
    revisions = {
        r["spec"]["template"]["spec"]["containers"][0]["image"]: r["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        for r in rs
    }
    assert revisions == {"ghcr.io/valuecanvas/api:1.0.0": "3", "ghcr.io/valuecanvas/api:1.1.0": "2"}
    pods = json.loads(kube.kubectl("get", "pods", "-n", "vc", "-o", "json").stdout)["items"]
    assert len(pods) == 2
    assert {p["status"]["containerStatuses"][0]["image"] for p in pods} == {
        "ghcr.io/valuecanvas/api:1.0.0"
    }
    assert all("@sha256:" in p["status"]["containerStatuses"][0]["imageID"] for p in pods)


def test_kubectl_rollout_status_reports_an_exceeded_progress_deadline(kube: Kube) -> None:
    overlay = write_overlay(kube.workdir, deployments=("api",), deadline=1)
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:1.0.0", Behaviour.STALL)
    kube.kubectl("apply", "--server-side", "-k", str(overlay))
    status = kube.kubectl(
        "rollout", "status", "deploy/api", "-n", "vc", "--timeout=30s", check=False
    )
    assert status.returncode != 0
    assert 'deployment "api" exceeded its progress deadline' in status.stderr


def test_kubectl_keeps_waiting_on_a_bad_image_until_its_own_timeout(kube: Kube) -> None:
    overlay = write_overlay(kube.workdir, deployments=("api",))
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:1.0.0", Behaviour.BAD_IMAGE)
    kube.kubectl("apply", "--server-side", "-k", str(overlay))
    status = kube.kubectl(
        "rollout", "status", "deploy/api", "-n", "vc", "--timeout=2s", check=False
    )
    assert status.returncode != 0
    assert "timed out waiting for the condition" in status.stderr
    pods = json.loads(kube.kubectl("get", "pods", "-n", "vc", "-o", "json").stdout)["items"]
    reasons = {p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] for p in pods}
    assert reasons <= {"ErrImagePull", "ImagePullBackOff"}
    assert reasons


def test_watch_with_field_selector_and_resource_version(kube: Kube) -> None:
    overlay = write_overlay(kube.workdir, deployments=("api", "web"))
    kube.kubectl("apply", "--server-side", "-k", str(overlay))
    listed = json.loads(
        kube.kubectl(
            "get", "deploy", "-n", "vc", "--field-selector", "metadata.name=web", "-o", "json"
        ).stdout
    )
    assert [d["metadata"]["name"] for d in listed["items"]] == ["web"]
    watched = kube.kubectl(
        "get",
        "deploy",
        "web",
        "-n",
        "vc",
        "--watch",
        "--request-timeout=2s",
        "-o",
        'jsonpath={.metadata.name}{"\\n"}',
        check=False,
    )
    assert watched.stdout.splitlines()[0] == "web"
    assert "api" not in watched.stdout
    paths = [p for _, p in kube.double.cluster.requests]
    assert any("watch=true" in p and "fieldSelector=metadata.name%3Dweb" in p for p in paths), paths
