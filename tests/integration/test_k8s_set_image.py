"""``k8s_set_image`` and ``k8s_rollback`` without an overlay (what a Markdown runbook's
``kubectl set image`` and ``kubectl rollout undo`` become), against the Kubernetes API
double with the real kubectl."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.kube import Kube, running_double, write_overlay
from shipcaptain.actions.base import Outcome
from shipcaptain.actions.k8s_rollout import K8sRollbackAction
from shipcaptain.actions.k8s_set_image import K8sSetImageAction
from shipcaptain.sandbox.doubles.kubernetes import Behaviour

OLD = "ghcr.io/valuecanvas/api:1.0.0"
NEW = "ghcr.io/valuecanvas/api:2.0.0"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    for kube in running_double(tmp_path):
        overlay = write_overlay(kube.workdir, deployments=("api",), replicas=1)
        kube.kubectl("apply", "--server-side", "-k", str(overlay))
        kube.kubectl("rollout", "status", "deployment/api", "-n", "vc", "--timeout=30s")
        yield kube


def set_image(kube: Kube, release: str, image: str, **kw: object) -> Outcome:
    action = K8sSetImageAction()
    given = {"deployment": "deployments/api", "images": {"api": image}, "interval": 0.1, **kw}
    return action.run(action.parse_params(kube.params(**given)), kube.ctx(release))


def rollback(kube: Kube, release: str) -> Outcome:
    action = K8sRollbackAction()
    params = action.parse_params(kube.params(deployments=["api"], interval=0.1))
    return action.run(params, kube.ctx(release))


def image(kube: Kube) -> str:
    live = kube.double.deployment("api", "vc") or {}
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


def test_set_image_rolls_out_and_keeps_what_ran_before(kube: Kube) -> None:
    outcome = set_image(kube, "rel-1", NEW)
    assert outcome.ok, outcome.summary
    assert image(kube) == NEW
    assert outcome.outputs["deployments"] == {"deployments/api": "done"}
    assert outcome.outputs["previous"] == {"api": OLD}
    assert outcome.outputs["changed"] == ["api"]
    assert f"$ kubectl set image deployment/api api={NEW} -n vc" in kube.progress
    # again (a repeat after a crash): nothing set, and still the image before
    again = set_image(kube, "rel-1", NEW)
    assert again.ok, again.summary
    assert again.outputs["changed"] == []
    assert again.outputs["previous"] == {"api": OLD}


def test_an_unknown_container_changes_nothing(kube: Kube) -> None:
    action = K8sSetImageAction()
    params = action.parse_params(kube.params(deployment="api", images={"apii": NEW}, interval=0.1))
    outcome = action.run(params, kube.ctx("rel-1"))
    assert not outcome.ok
    assert outcome.summary == (
        "deployment vc/api has no container apii (its containers: api); nothing was changed"
    )
    assert image(kube) == OLD


def test_a_bad_image_fails_fast_and_the_rollback_sets_the_image_back(kube: Kube) -> None:
    kube.double.cluster.behave(NEW, Behaviour.BAD_IMAGE)
    failed = set_image(kube, "rel-2", NEW)
    assert not failed.ok
    assert "ImagePullBackOff" in failed.summary or "ErrImagePull" in failed.summary
    assert failed.outputs["previous"] == {"api": OLD}
    undone = rollback(kube, "rel-2")
    assert undone.ok, undone.summary
    assert image(kube) == OLD
    assert undone.outputs["method"] == "images"
    assert undone.outputs["restored"] == {"api": {"api": OLD}}
    # again (after a crash): already back, nothing set twice
    kube.progress.clear()
    again = rollback(kube, "rel-2")
    assert again.ok, again.summary
    assert image(kube) == OLD
    assert not any(line.startswith("$ kubectl set image") for line in kube.progress)


def test_the_rollback_leaves_what_another_release_set(kube: Kube) -> None:
    assert set_image(kube, "rel-1", NEW).ok
    outcome = rollback(kube, "rel-2")  # rel-2 set no image: nothing of rel-1's is undone
    assert outcome.ok, outcome.summary
    assert image(kube) == NEW
    assert "api: this release set no image on it; not changed" in kube.progress
