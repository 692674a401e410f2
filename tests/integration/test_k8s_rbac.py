"""The least-privilege RBAC manifest shipped in the how-to (docs/how-to/kubernetes/
shipcaptain-rbac.yaml) is enough for every Kubernetes action, and nothing in it is
decorative: applied to the API double, which authorizes each request with RBAC like the
API server, a worker with only these roles applies, watches, verifies and rolls back
(re-applying the last good release and ``kubectl rollout undo``), and one rule less makes
the step fail with the server's 403."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers.kube import Kube, running_double, write_overlay
from shipcaptain.actions.base import Outcome
from shipcaptain.actions.k8s import K8sApplyAction, K8sVerifyDigestAction
from shipcaptain.actions.k8s_rollout import K8sRollbackAction, K8sRolloutAction
from shipcaptain.sandbox.doubles.kubernetes import Behaviour, digest_of

RBAC = Path(__file__).parents[2] / "docs" / "how-to" / "kubernetes" / "shipcaptain-rbac.yaml"
WORKER = "system:serviceaccount:shipcaptain:shipcaptain"
THREE = ["api", "web", "worker"]


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    for kube in running_double(tmp_path):
        rbac = RBAC.read_text().replace("namespace: valuecanvas", "namespace: vc")
        rbac = "apiVersion: v1\nkind: Namespace\nmetadata: {name: vc}\n---\n" + rbac
        (tmp_path / "rbac.yaml").write_text(rbac)
        kube.kubectl("apply", "--server-side", "-f", str(tmp_path / "rbac.yaml"))
        kube.double.cluster.auth.allow_token("worker-token", WORKER)  # no group: RBAC only
        yield kube


def worker(kube: Kube) -> dict[str, object]:
    kubeconfig = kube.double.kubeconfig(
        kube.workdir / "worker-kubeconfig",
        context="worker",
        namespace="vc",
        user={"token": "worker-token"},
    )
    return {"kubeconfig": str(kubeconfig), "history_namespace": "shipcaptain"}


def run(kube: Kube, action_cls: type, release: str, **params: object) -> Outcome:
    action = action_cls()
    common = worker(kube)
    if action_cls is K8sVerifyDigestAction:
        common.pop("history_namespace")
    outcome: Outcome = action.run(action.parse_params({**common, **params}), kube.ctx(release))
    return outcome


def test_the_shipped_roles_are_enough_for_every_action(kube: Kube) -> None:
    write_overlay(kube.workdir)
    overlay = "kubernetes/overlays/production"
    watch = {"deployments": THREE, "interval": 0.1}
    # release 1: apply, watch, verify
    assert run(kube, K8sApplyAction, "rel-1", overlay=overlay).ok
    assert run(kube, K8sRolloutAction, "rel-1", **watch).ok
    digests = {d: digest_of(f"ghcr.io/valuecanvas/{d}:1.0.0") for d in THREE}
    verified = run(kube, K8sVerifyDigestAction, "rel-1", deployments=THREE, digests=digests)
    assert verified.ok, verified.summary
    # release 2 fails: the last good manifests are applied again
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:6.6.6", Behaviour.CRASH_LOOP)
    images = {"ghcr.io/valuecanvas/api": "6.6.6"}
    assert run(kube, K8sApplyAction, "rel-2", overlay=overlay, images=images).ok
    assert not run(kube, K8sRolloutAction, "rel-2", **watch).ok
    back = run(kube, K8sRollbackAction, "rel-2", overlay=overlay, **watch)
    assert back.ok, back.summary
    assert back.outputs["method"] == "reapply"
    # the same overlay from another path has no good release: kubectl rollout undo
    shutil.copytree(kube.workdir / "kubernetes", kube.workdir / "other" / "kubernetes")
    other = "other/kubernetes/overlays/production"
    assert run(kube, K8sApplyAction, "rel-3", overlay=other, images=images).ok
    assert not run(kube, K8sRolloutAction, "rel-3", **watch).ok
    undone = run(kube, K8sRollbackAction, "rel-3", overlay=other, **watch)
    assert undone.ok, undone.summary
    assert undone.outputs["method"] == "undo"
    users = {user for user, *_ in kube.double.cluster.auth.seen[-50:]}
    assert users == {WORKER}
    # every rule the shipped roles hold for the kinds of this overlay was used
    used = {
        (group, resource, verb)
        for user, verb, group, resource, _ns in kube.double.cluster.decisions
        if user == WORKER
    }
    granted = {
        (group, resource, verb)
        for doc in YAML(typ="safe").load_all(RBAC.read_text())
        if doc["kind"] in ("Role", "ClusterRole")
        for rule in doc["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    in_this_overlay = {r for _g, r, _v in used}
    needed = {g for g in granted if g[1] in in_this_overlay}
    assert needed - used == {("", "namespaces", "create")}  # only when the namespace is new
    assert used <= granted


def test_one_rule_less_and_the_step_fails_with_the_servers_403(kube: Kube) -> None:
    yaml = YAML(typ="safe")
    docs = list(yaml.load_all((kube.workdir / "rbac.yaml").read_text()))
    role = next(
        d for d in docs if d["metadata"]["name"] == "shipcaptain-deployer" and d["kind"] == "Role"
    )
    role["rules"] = [r for r in role["rules"] if "replicasets" not in r["resources"]]
    role["metadata"].pop("resourceVersion", None)
    (kube.workdir / "role.yaml").write_text(json.dumps(role))
    kube.kubectl("apply", "--server-side", "-f", str(kube.workdir / "role.yaml"))
    write_overlay(kube.workdir, deployments=("api",))
    # pods that never get ready: still rolling out, the watch reads the ReplicaSets (the
    # double paused after the apply was a race a loaded machine lost: the rollout finished
    # first and the watch succeeded without reading them)
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:1.0.0", Behaviour.STALL)
    assert run(kube, K8sApplyAction, "rel-1", overlay="kubernetes/overlays/production").ok
    watched = run(kube, K8sRolloutAction, "rel-1", deployments=["api"], timeout=3)
    assert not watched.ok
    assert f'User "{WORKER}" cannot list resource "replicasets"' in watched.summary, watched.summary


def test_the_shipped_roles_are_enough_to_set_an_image_and_set_it_back(kube: Kube) -> None:
    """What a Markdown runbook's ``kubectl set image`` and ``kubectl rollout undo`` become:
    the worker holding only the shipped roles sets the image, watches, and sets it back."""
    from shipcaptain.actions.k8s_set_image import K8sSetImageAction

    overlay = write_overlay(kube.workdir, deployments=("api",), replicas=1)
    kube.kubectl("apply", "--server-side", "-k", str(overlay))  # the running version
    assert run(kube, K8sRolloutAction, "rel-0", deployments=["api"], interval=0.1).ok
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:6.6.6", Behaviour.BAD_IMAGE)
    images = {"api": "ghcr.io/valuecanvas/api:6.6.6"}
    failed = run(kube, K8sSetImageAction, "rel-1", deployment="api", images=images, interval=0.1)
    assert not failed.ok
    assert "403" not in failed.summary, failed.summary
    assert failed.outputs["previous"] == {"api": "ghcr.io/valuecanvas/api:1.0.0"}
    back = run(kube, K8sRollbackAction, "rel-1", deployments=["api"], interval=0.1)
    assert back.ok, back.summary
    assert back.outputs["method"] == "images"
    live = kube.double.deployment("api", "vc") or {}
    assert live["spec"]["template"]["spec"]["containers"][0]["image"].endswith("api:1.0.0")
    assert {user for user, *_ in kube.double.cluster.auth.seen[-20:]} == {WORKER}
