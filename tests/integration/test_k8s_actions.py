"""The k8s actions through shipcaptain's own code path, against the Kubernetes API double."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.kube import SECRET_VALUE, Kube, running_double, write_overlay
from shipcaptain.actions.base import Outcome
from shipcaptain.actions.k8s import K8sApplyAction, K8sVerifyDigestAction
from shipcaptain.actions.k8s_rollout import K8sRollbackAction, K8sRolloutAction
from shipcaptain.sandbox.doubles.kubernetes import Behaviour, digest_of

OVERLAY = "kubernetes/overlays/production"
THREE = ["api", "web", "worker"]


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    yield from running_double(tmp_path)


def apply(kube: Kube, release: str = "rel-1", **kw: object) -> Outcome:
    action = K8sApplyAction()
    params = action.parse_params(kube.params(overlay=OVERLAY, **kw))
    return action.run(params, kube.ctx(release))


def rollout(kube: Kube, release: str = "rel-1", deployments: list[str] = THREE, **kw: object):
    action = K8sRolloutAction()
    params = action.parse_params(kube.params(deployments=deployments, interval=0.1, **kw))
    return action.run(params, kube.ctx(release))


def everything_said(outcome: Outcome, kube: Kube) -> str:
    return json.dumps(outcome.model_dump(mode="json")) + "\n".join(kube.progress)


def test_apply_renders_applies_every_kind_and_never_shows_the_secret(kube: Kube) -> None:
    write_overlay(kube.workdir)
    outcome = apply(kube, images={"ghcr.io/valuecanvas/api": "1.4.0"})
    assert outcome.ok, outcome.summary
    said = everything_said(outcome, kube)
    assert SECRET_VALUE not in said
    assert "aHVudGVy" not in said  # nor its base64
    outputs = outcome.outputs
    assert outputs["deployments"] == THREE
    assert "secret/app-secret -n vc" in outputs["objects"]
    assert len(outputs["objects"]) == 10
    live = json.loads(kube.kubectl("get", "deploy", "api", "-n", "vc", "-o", "json").stdout)
    assert (
        live["spec"]["template"]["spec"]["containers"][0]["image"]
        == "ghcr.io/valuecanvas/api:1.4.0"
    )
    for kind, name in [
        ("hpa", "api"),
        ("ingress", "api"),
        ("sa", "app"),
        ("cm", "app-config"),
        ("svc", "api"),
        ("secret", "app-secret"),
    ]:
        kube.kubectl("get", kind, name, "-n", "vc")
    # strings YAML 1.1 reads as something else ("on", "no", "0022", "1e3") reach the cluster
    # as the strings written: the API server refuses a bool or a number in a ConfigMap
    config = json.loads(kube.kubectl("get", "cm", "app-config", "-n", "vc", "-o", "json").stdout)
    assert config["data"] == {
        "LOG_LEVEL": "info",
        "SEARCH": "on",
        "LEGACY_EXPORT": "no",
        "UMASK": "0022",
        "RATIO": "1e3",
    }
    # the stored manifests hold no Secret
    stored = kube.kubectl(
        "get", "cm", "-n", "default", "-l", "shipcaptain.io/state=applied", "-o", "json"
    )
    items = json.loads(stored.stdout)["items"]
    assert len(items) == 1
    assert (
        items[0]["metadata"]["annotations"]["shipcaptain.io/secrets-not-kept"]
        == "secret/app-secret -n vc"
    )
    from shipcaptain.integrations.k8s_manifests import History
    from shipcaptain.integrations.kubernetes import Kubectl

    record = History(Kubectl(str(kube.kubeconfig)), "default", OVERLAY).of_release("rel-1")
    assert record is not None
    assert "kind: Deployment" in record.manifests
    assert "Secret" not in record.manifests
    assert SECRET_VALUE not in record.manifests


def test_the_double_reads_an_applied_yaml_body_as_the_api_server_does(kube: Kube) -> None:
    """A server-side apply body in YAML is read as YAML 1.1, as the API server reads it: a
    bare ``on`` is a bool, which a ConfigMap's data refuses; quoted, it is the string."""
    double = kube.double

    def apply(body: str) -> httpx.Response:
        return httpx.patch(
            f"{double.url}/api/v1/namespaces/default/configmaps/flags",
            params={"fieldManager": "test"},
            content=body,
            headers={
                "Authorization": f"Bearer {double.TOKEN}",
                "Content-Type": "application/apply-patch+yaml",
            },
            verify=ssl.create_default_context(cafile=str(double.pki.ca_crt)),
        )

    refused = apply("apiVersion: v1\nkind: ConfigMap\ndata: {search: on}\n")
    assert refused.status_code == 400, refused.text
    assert "cannot unmarshal bool into Go struct field ConfigMap.data" in refused.json()["message"]
    taken = apply("apiVersion: v1\nkind: ConfigMap\ndata: {search: 'on'}\n")
    assert taken.status_code == 201, taken.text
    assert taken.json()["data"] == {"search": "on"}


def test_apply_is_already_done_for_the_same_release(kube: Kube) -> None:
    write_overlay(kube.workdir)
    assert apply(kube).ok
    action = K8sApplyAction()
    params = action.parse_params(kube.params(overlay=OVERLAY))
    done = action.already_done(params, kube.ctx("rel-1"))
    assert done is not None
    assert done.already_done
    assert action.already_done(params, kube.ctx("rel-2")) is None


def test_an_apply_renders_its_overlay_once_a_try(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine asks ``already_done`` then ``run`` with one context: the overlay that the
    first rendered (a kubectl process running kustomize) is the one the second applies; it
    was rendered twice."""
    from shipcaptain.actions import k8s

    renders: list[str] = []

    def counted(params: Any, workdir: Path) -> Any:
        renders.append(params.overlay)
        return real(params, workdir)

    real = k8s.render
    monkeypatch.setattr(k8s, "render", counted)
    write_overlay(kube.workdir)
    action = K8sApplyAction()
    params = action.parse_params(kube.params(overlay=OVERLAY))
    ctx = kube.ctx("rel-1")
    assert action.already_done(params, ctx) is None
    applied = action.run(params, ctx)
    assert applied.ok, applied.summary
    assert renders == [OVERLAY]
    assert action.run(params, kube.ctx("rel-2")).ok  # a context of its own renders itself
    assert renders == [OVERLAY, OVERLAY]


def test_dry_run_shows_the_diff_without_secret_values_and_applies_nothing(kube: Kube) -> None:
    write_overlay(kube.workdir)
    assert apply(kube).ok
    write_overlay(kube.workdir, secret="another-secret-value-42", replicas=3)
    kube.progress.clear()
    outcome = apply(kube, "rel-2", dry_run=True, images={"ghcr.io/valuecanvas/web": "2.0.0"})
    assert outcome.ok, outcome.summary
    detail = outcome.detail
    assert "-      - image: ghcr.io/valuecanvas/web:1.0.0" in detail
    assert "+      - image: ghcr.io/valuecanvas/web:2.0.0" in detail
    assert "-  replicas: 2\n+  replicas: 3" in detail
    assert "-  DB_PASSWORD: '***'\n+  DB_PASSWORD: '*** (changed)'" in detail, detail
    said = everything_said(outcome, kube)
    assert "another-secret-value-42" not in said
    assert SECRET_VALUE not in said
    live = json.loads(kube.kubectl("get", "deploy", "web", "-n", "vc", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 2  # nothing applied
    assert "secret/app-secret -n vc" in outcome.outputs["changed"]


def test_a_broken_overlay_stops_with_kustomizes_message_and_applies_nothing(kube: Kube) -> None:
    overlay = write_overlay(kube.workdir)
    (overlay / "kustomization.yaml").write_text(
        "namespace: vc\nresources: [../../base, missing.yaml]\n"
    )
    outcome = apply(kube)
    assert not outcome.ok
    assert not outcome.retryable
    assert "kustomize could not render" in outcome.summary
    assert "missing.yaml" in outcome.summary
    assert kube.double.deployment("api", "vc") is None


def test_rollout_watches_three_deployments_in_parallel(kube: Kube) -> None:
    write_overlay(kube.workdir, replicas=1)
    with kube.double.paused():  # nothing progresses: a watch one after the other would
        assert apply(kube).ok  # stay on api and never read web or worker
        box: dict[str, Outcome] = {}
        watcher = threading.Thread(target=lambda: box.update(outcome=rollout(kube)))
        watcher.start()

        def read(name: str) -> bool:
            path = f"/apis/apps/v1/namespaces/vc/deployments/{name}"
            return any(p == path for m, p in kube.double.cluster.requests if m == "GET")

        kube.wait_for(lambda: all(read(name) for name in THREE))
        assert "outcome" not in box
    watcher.join(timeout=30)
    outcome = box["outcome"]
    assert outcome.ok, outcome.summary
    assert outcome.outputs["deployments"] == {"api": "done", "web": "done", "worker": "done"}
    assert any("updated" in line and "available" in line for line in kube.progress)
    # the release's manifests are now the last good ones
    marked = kube.kubectl(
        "get", "cm", "-n", "default", "-l", "shipcaptain.io/state=good", "-o", "name"
    )
    assert marked.stdout.strip()


def test_a_finished_watch_lists_the_release_records_once_and_marks_them_good(
    kube: Kube,
) -> None:
    """Marking the release's manifests good reads them in one listing, through the watch's
    own proxy: it listed them twice, each a kubectl process of its own."""
    write_overlay(kube.workdir)
    assert apply(kube).ok
    before = len(kube.double.cluster.requests)
    assert rollout(kube).ok
    listings = [
        path
        for method, path in kube.double.cluster.requests[before:]
        if method == "GET" and "/configmaps?" in path
    ]
    assert len(listings) == 1, listings
    assert "labelSelector=shipcaptain.io%2Fstate%3Dapplied" in listings[0]
    marked = kube.kubectl(
        "get", "cm", "-n", "default", "-l", "shipcaptain.io/state=good", "-o", "json"
    )
    [record] = json.loads(marked.stdout)["items"]
    assert record["metadata"]["annotations"]["shipcaptain.io/release-id"] == "rel-1"


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (Behaviour.BAD_IMAGE, ("ErrImagePull", "ImagePullBackOff")),
        (Behaviour.CRASH_LOOP, ("CrashLoopBackOff",)),
        (Behaviour.RESTARTS, ("restarted",)),
    ],
)
def test_rollout_fails_fast_and_says_why(
    kube: Kube, behaviour: Behaviour, expected: tuple[str, ...]
) -> None:
    write_overlay(kube.workdir)
    assert apply(kube).ok
    assert rollout(kube).ok
    kube.double.cluster.behave("ghcr.io/valuecanvas/web:6.6.6", behaviour)
    assert apply(kube, "rel-2", images={"ghcr.io/valuecanvas/web": "6.6.6"}).ok
    started = time.monotonic()
    outcome = rollout(kube, "rel-2", timeout=60)
    assert not outcome.ok
    assert time.monotonic() - started < 15
    assert outcome.summary.startswith("rollout failed: web: pod web-"), outcome.summary
    assert any(word in outcome.summary for word in expected), outcome.summary
    assert "timed out" not in outcome.summary
    assert not outcome.retryable


def test_rollout_fails_on_progress_deadline_exceeded(kube: Kube) -> None:
    write_overlay(kube.workdir, deadline=1)
    kube.double.cluster.behave("ghcr.io/valuecanvas/worker:1.0.0", Behaviour.STALL)
    assert apply(kube).ok
    outcome = rollout(kube, timeout=30)
    assert not outcome.ok
    assert "worker: ProgressDeadlineExceeded" in outcome.summary, outcome.summary
    assert outcome.outputs["deployments"]["api"] == "done"


def test_rollout_that_runs_into_its_own_timeout_says_it_timed_out(kube: Kube) -> None:
    write_overlay(kube.workdir)  # deadline 600 s: the step's own timeout comes first
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:1.0.0", Behaviour.STALL)
    assert apply(kube).ok
    outcome = rollout(kube, timeout=1.5)
    assert not outcome.ok
    assert outcome.summary.startswith(
        "timed out after 1.5s waiting for the rollout: api 2/2 updated, 0 available"
    ), outcome.summary
    assert "ProgressDeadlineExceeded" not in outcome.summary


def test_verify_digest_passes_and_lists_each_pod_that_differs(kube: Kube) -> None:
    write_overlay(kube.workdir)
    assert apply(kube).ok
    assert rollout(kube).ok
    action = K8sVerifyDigestAction()
    good = {d: digest_of(f"ghcr.io/valuecanvas/{d}:1.0.0") for d in THREE}
    outcome = action.run(
        action.parse_params(kube.params(deployments=THREE, digests=good)), kube.ctx()
    )
    assert outcome.ok, outcome.summary
    assert outcome.outputs == {"pods": 6, "digests": good}
    wrong = {**good, "web": "sha256:" + "0" * 64}
    outcome = action.run(
        action.parse_params(kube.params(deployments=THREE, digests=wrong)), kube.ctx()
    )
    assert not outcome.ok
    assert outcome.summary.startswith("2 container(s) differ")
    lines = outcome.detail.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("pod web-") for line in lines)
    assert all(f"runs {good['web']}, expected sha256:000" in line for line in lines)


def test_verify_digest_looks_the_tag_up_in_the_registry(kube: Kube) -> None:
    write_overlay(kube.workdir, deployments=("api",))
    kube.double.cluster.publish("ghcr.io/valuecanvas/api:1.0.0", "sha256:" + "a" * 64)
    assert apply(kube).ok
    assert rollout(kube, deployments=["api"]).ok
    action = K8sVerifyDigestAction()
    params = action.parse_params(
        kube.params(deployments=["api"], lookup=True, registry_url=kube.double.registry_url)
    )
    outcome = action.run(params, kube.ctx())
    assert outcome.ok, outcome.summary
    assert outcome.outputs["digests"] == {"api": "sha256:" + "a" * 64}


def test_rollback_reapplies_the_last_good_release(kube: Kube) -> None:
    write_overlay(kube.workdir)
    assert apply(kube, "rel-1").ok
    assert rollout(kube, "rel-1").ok
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:9.9.9", Behaviour.CRASH_LOOP)
    assert apply(kube, "rel-2", images={"ghcr.io/valuecanvas/api": "9.9.9"}).ok
    assert not rollout(kube, "rel-2").ok
    action = K8sRollbackAction()
    params = action.parse_params(kube.params(overlay=OVERLAY, deployments=THREE, interval=0.1))
    outcome = action.run(params, kube.ctx("rel-2"))
    assert outcome.ok, outcome.summary
    assert outcome.outputs["method"] == "reapply"
    assert outcome.outputs["restored"] == "rel-1"
    live = kube.double.deployment("api", "vc")
    assert live is not None
    assert (
        live["spec"]["template"]["spec"]["containers"][0]["image"]
        == "ghcr.io/valuecanvas/api:1.0.0"
    )
    states = kube.kubectl("get", "cm", "-n", "default", "-o", "json")
    labels = {
        i["metadata"]["annotations"].get("shipcaptain.io/release-id"): i["metadata"]["labels"][
            "shipcaptain.io/state"
        ]
        for i in json.loads(states.stdout)["items"]
    }
    assert labels == {"rel-1": "good", "rel-2": "rolled-back"}


def test_rollback_without_a_good_release_undoes_once(kube: Kube) -> None:
    overlay = write_overlay(kube.workdir)
    kube.kubectl("apply", "--server-side", "-k", str(overlay))  # the running version, not by us
    assert rollout(kube, "rel-0").ok
    kube.double.cluster.behave("ghcr.io/valuecanvas/api:6.6.6", Behaviour.BAD_IMAGE)
    assert apply(kube, "rel-2", images={"ghcr.io/valuecanvas/api": "6.6.6"}).ok
    assert not rollout(kube, "rel-2").ok
    action = K8sRollbackAction()
    params = action.parse_params(kube.params(overlay=OVERLAY, deployments=THREE, interval=0.1))
    outcome = action.run(params, kube.ctx("rel-2"))
    assert outcome.ok, outcome.summary
    assert outcome.outputs["method"] == "undo"
    assert "$ kubectl rollout undo deployment/api -n vc --to-revision=1" in kube.progress
    assert "web already runs ghcr.io/valuecanvas/web:1.0.0: not undone" in kube.progress

    def image() -> str:
        live = kube.double.deployment("api", "vc") or {}
        return str(live["spec"]["template"]["spec"]["containers"][0]["image"])

    assert image() == "ghcr.io/valuecanvas/api:1.0.0"
    # running it again (after a crash) does not undo the undo
    again = action.run(params, kube.ctx("rel-2"))
    assert again.ok, again.summary
    assert image() == "ghcr.io/valuecanvas/api:1.0.0"
