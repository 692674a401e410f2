"""The rehearsal's ``stuck_rollout`` fault against the Kubernetes API double: the new pods
never get ready and say no error; the fault gives the Deployments that run them a short
``progressDeadlineSeconds`` once the manifests are applied; the double's Deployment
controller then reports ``Progressing=False``/``ProgressDeadlineExceeded`` as the real one
does, and the ``k8s_rollout`` step fails on it (not on its own timeout)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helpers.kube import Kube, running_double, write_overlay
from shipcaptain.actions.k8s import K8sApplyAction
from shipcaptain.actions.k8s_rollout import K8sRolloutAction
from shipcaptain.sandbox.rehearse_faults import FAULTS, STUCK_DEADLINE

OVERLAY = "kubernetes/overlays/production"
NEW = "ghcr.io/valuecanvas/api:1.4.0"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    yield from running_double(tmp_path)


def _attempt(kube: Kube) -> Any:
    """What of a rehearsal's Attempt the fault uses: the world's cluster, the release's
    images, its notes and the moment it took effect."""
    notes: list[str] = []
    world = SimpleNamespace(kube=SimpleNamespace(double=kube.double))
    return SimpleNamespace(
        world=world, images=[NEW], saved={}, injected_at=None, notes=notes, note=notes.append
    )


def _deployment(kube: Kube, name: str) -> dict[str, Any]:
    live = kube.kubectl("get", "deploy", name, "-n", "vc", "-o", "json").stdout
    return dict(json.loads(live))


def test_stuck_rollout_is_caught_by_the_rollout_step_on_the_progress_deadline(
    kube: Kube,
) -> None:
    fault = FAULTS["stuck_rollout"]
    assert fault.catchers == ("k8s_rollout",)
    assert fault.effective_after == "k8s_apply"
    write_overlay(kube.workdir)  # production before the release: 600 s deadline, healthy
    applier, roller = K8sApplyAction(), K8sRolloutAction()
    assert applier.run(applier.parse_params(kube.params(overlay=OVERLAY)), kube.ctx("rel-1")).ok
    a = _attempt(kube)
    fault.arm(a)
    fault.during(a)  # before the apply: nothing yet
    assert "deadlines" not in a.saved
    params = kube.params(overlay=OVERLAY, images={"ghcr.io/valuecanvas/api": "1.4.0"})
    assert applier.run(applier.parse_params(params), kube.ctx("rel-2")).ok
    assert _deployment(kube, "api")["spec"]["progressDeadlineSeconds"] == 600
    a.injected_at = datetime.now(UTC)  # the apply step succeeded
    fault.during(a)
    assert set(a.saved["deadlines"]) == {"api"}  # only the Deployment of the new image
    assert _deployment(kube, "api")["spec"]["progressDeadlineSeconds"] == STUCK_DEADLINE
    assert _deployment(kube, "web")["spec"]["progressDeadlineSeconds"] == 600

    watch = roller.parse_params(kube.params(deployments=["api"], interval=0.1, timeout=120))
    outcome = roller.run(watch, kube.ctx("rel-2"))
    assert not outcome.ok
    assert outcome.summary.startswith(
        f"rollout failed: api: ProgressDeadlineExceeded: no progress for {STUCK_DEADLINE}s"
    ), outcome.summary
    progressing = {c["type"]: c for c in _deployment(kube, "api")["status"]["conditions"]}
    assert progressing["Progressing"]["status"] == "False"
    assert progressing["Progressing"]["reason"] == "ProgressDeadlineExceeded"
    assert any("never gets ready" in n for n in a.notes)

    fault.heal(a)
    assert _deployment(kube, "api")["spec"]["progressDeadlineSeconds"] == 600
