"""Real manifests (tests/data/k8s, see SOURCES.md) under one kustomize overlay, applied
with ``k8s_apply`` to the Kubernetes API double and watched with ``k8s_rollout``: every
kind real overlays hold, a custom resource whose CRD is installed, a StatefulSet and a
DaemonSet rolling out, and the errors a broken overlay gives."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.kube import Kube, running_double
from shipcaptain.actions.base import Outcome
from shipcaptain.actions.k8s import K8sApplyAction
from shipcaptain.actions.k8s_rollout import K8sRolloutAction
from shipcaptain.integrations.k8s_manifests import History
from shipcaptain.integrations.kubernetes import Kubectl
from shipcaptain.sandbox.doubles.kubernetes import Behaviour

DATA = Path(__file__).parents[1] / "data" / "k8s"
OVERLAY = "overlays/production"
CRD = "k8s/kube-prometheus/setup/0servicemonitorCustomResourceDefinition.yaml"
NODE_EXPORTER = "quay.io/prometheus/node-exporter"
CASSANDRA = "gcr.io/google-samples/cassandra"
#: a line of the alertmanager Secret's stringData: never shown, never stored
SECRET_LINE = '"resolve_timeout": "5m"'
WORKLOADS = ["daemonset/node-exporter", "statefulset/cassandra"]


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    shutil.copytree(DATA, tmp_path / "k8s")
    overlay = tmp_path / OVERLAY
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "namespace: monitoring\n"
        "resources:\n"
        "  - namespace.yaml\n"
        "  - ../../k8s/kube-prometheus\n"
        "  - ../../k8s/kubernetes-examples\n"
        "  - ../../k8s/kubernetes-website\n"
    )
    (overlay / "namespace.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: monitoring}\n"
    )
    yield from running_double(tmp_path)


def apply(kube: Kube, release: str = "rel-1", **kw: object) -> Outcome:
    action = K8sApplyAction()
    params = action.parse_params(
        {"kubeconfig": str(kube.kubeconfig), "overlay": OVERLAY, "namespace": "monitoring", **kw}
    )
    return action.run(params, kube.ctx(release))


def rollout(kube: Kube, release: str = "rel-1", **kw: object) -> Outcome:
    action = K8sRolloutAction()
    params = action.parse_params(
        {
            "kubeconfig": str(kube.kubeconfig),
            "namespace": "monitoring",
            "deployments": WORKLOADS,
            "interval": 0.1,
            **kw,
        }
    )
    return action.run(params, kube.ctx(release))


def install_crd(kube: Kube) -> None:
    kube.kubectl("apply", "--server-side", "-f", str(kube.workdir / CRD))


def test_every_kind_of_the_real_overlay_is_applied_and_the_workloads_roll_out(
    kube: Kube,
) -> None:
    install_crd(kube)
    outcome = apply(kube, images={NODE_EXPORTER: "v1.13.0"})
    assert outcome.ok, outcome.summary
    kinds = {ref.split("/")[0] for ref in outcome.outputs["objects"]}  # type: ignore[union-attr]
    assert kinds == {
        "namespace", "networkpolicy", "poddisruptionbudget", "secret", "clusterrole",
        "clusterrolebinding", "daemonset", "service", "serviceaccount", "servicemonitor",
        "storageclass", "statefulset", "horizontalpodautoscaler", "ingress", "cronjob",
    }  # fmt: skip
    assert sorted(outcome.outputs["workloads"]) == WORKLOADS  # type: ignore[arg-type]
    for kind, name in [
        ("servicemonitor", "node-exporter"),
        ("cronjob", "hello"),
        ("pdb", "zk-pdb"),
        ("netpol", "alertmanager-main"),
        ("ingress", "tf-serving-ingress"),
        ("hpa", "gemma-server-hpa"),
        ("secret", "alertmanager-main"),
    ]:
        kube.kubectl("get", kind, name, "-n", "monitoring")
    kube.kubectl("get", "clusterrole", "node-exporter")
    kube.kubectl("get", "storageclass", "fast")
    done = rollout(kube)
    assert done.ok, done.summary
    assert done.outputs["deployments"] == dict.fromkeys(WORKLOADS, "done")
    ds = json.loads(
        kube.kubectl("get", "ds", "node-exporter", "-n", "monitoring", "-o", "json").stdout
    )
    assert ds["status"]["desiredNumberScheduled"] == 3  # one pod per node of the double
    assert ds["status"]["updatedNumberScheduled"] == ds["status"]["numberAvailable"] == 3
    image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{NODE_EXPORTER}:v1.13.0"
    sts = json.loads(
        kube.kubectl("get", "sts", "cassandra", "-n", "monitoring", "-o", "json").stdout
    )
    assert sts["status"]["readyReplicas"] == 3
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    # the Secret's value: never said, never stored
    said = json.dumps(outcome.model_dump(mode="json")) + "\n".join(kube.progress)
    assert SECRET_LINE not in said
    record = History(Kubectl(str(kube.kubeconfig)), "default", OVERLAY).of_release("rel-1")
    assert record is not None
    assert record.secrets == ["secret/alertmanager-main -n monitoring"]
    assert SECRET_LINE not in record.manifests
    assert "kind: Secret" not in record.manifests
    stored = kube.kubectl("get", "cm", "-n", "default", "-o", "json").stdout
    assert SECRET_LINE not in stored


def test_a_statefulset_and_a_daemonset_update_is_watched_and_a_bad_image_fails_fast(
    kube: Kube,
) -> None:
    install_crd(kube)
    assert apply(kube).ok
    assert rollout(kube).ok
    # a new cassandra image rolls out pod by pod, highest ordinal first
    assert apply(kube, "rel-2", images={CASSANDRA: "v15"}).ok
    done = rollout(kube, "rel-2", deployments=["statefulset/cassandra"])
    assert done.ok, done.summary
    pods = json.loads(kube.kubectl("get", "pods", "-n", "monitoring", "-o", "json").stdout)
    images = {
        p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
        for p in pods["items"]
        if p["metadata"]["name"].startswith("cassandra-")
    }
    assert images == {f"cassandra-{i}": f"{CASSANDRA}:v15" for i in range(3)}
    assert any("statefulset/cassandra" in line and "updated" in line for line in kube.progress)
    # a node-exporter image that cannot be pulled: the DaemonSet's rollout fails at once
    kube.double.cluster.behave(f"{NODE_EXPORTER}:v0.0.0-missing", Behaviour.BAD_IMAGE)
    assert apply(kube, "rel-3", images={NODE_EXPORTER: "v0.0.0-missing"}).ok
    failed = rollout(kube, "rel-3", timeout=60)
    assert not failed.ok
    assert failed.summary.startswith("rollout failed: daemonset/node-exporter: pod node-exporter-")
    assert "ErrImagePull" in failed.summary or "ImagePullBackOff" in failed.summary
    assert "timed out" not in failed.summary


def test_a_custom_resource_without_its_crd_is_one_clear_error_and_nothing_is_applied(
    kube: Kube,
) -> None:
    outcome = apply(kube)
    assert not outcome.ok
    assert not outcome.retryable
    assert "ServiceMonitor" in outcome.summary
    assert "monitoring.coreos.com/v1" in outcome.summary
    assert "install its CustomResourceDefinition first" in outcome.summary
    assert "Traceback" not in outcome.summary
    assert kube.double.cluster.get_by_kind("DaemonSet") == []  # nothing applied


def test_a_patch_on_a_resource_the_base_does_not_have_is_one_clear_error(kube: Kube) -> None:
    overlay = kube.workdir / OVERLAY
    (overlay / "kustomization.yaml").write_text(
        (overlay / "kustomization.yaml").read_text() + "patches:\n  - path: replicas.yaml\n"
    )
    (overlay / "replicas.yaml").write_text(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: zookeeper}\nspec: {replicas: 5}\n"
    )
    install_crd(kube)
    outcome = apply(kube)
    assert not outcome.ok
    assert not outcome.retryable
    assert str(overlay / "kustomization.yaml") in outcome.summary
    assert "zookeeper" in outcome.summary
    assert "Traceback" not in outcome.summary + outcome.detail
    assert len(outcome.summary.splitlines()) == 1
    assert kube.double.cluster.get_by_kind("StatefulSet") == []
    assert kube.double.cluster.get_by_kind("Namespace") != []  # only default, kube-system
    assert all(
        ns["metadata"]["name"] in ("default", "kube-system")
        for ns in kube.double.cluster.get_by_kind("Namespace")
    )
