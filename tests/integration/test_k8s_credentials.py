"""Credentials reach the cluster exactly as kubectl sends them: the API double (HTTPS, its
own CA) refuses anonymous, unknown and expired credentials, so an action that succeeds
proves which credential reached it."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.kube import CredentialPlugin, Kube, write_overlay
from helpers.processes import wait_for
from shipcaptain.actions.base import Outcome
from shipcaptain.actions.k8s import K8sApplyAction, K8sVerifyDigestAction
from shipcaptain.actions.k8s_rollout import K8sRolloutAction
from shipcaptain.integrations import kubernetes
from shipcaptain.integrations.kubernetes import Kubectl, stop_proxies
from shipcaptain.sandbox.doubles.kubernetes import KubernetesDouble, digest_of

OVERLAY = "kubernetes/overlays/production"
ADMINS = ("system:masters",)  # RBAC is not what these tests are about: test_k8s_rbac.py
V1, V1BETA1 = "client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    """The double; the admin kubeconfig (static token) sets things up for the tests."""
    with KubernetesDouble(pod_ready_seconds=0.2, tick=0.05) as double:
        kubeconfig = double.kubeconfig(tmp_path / "admin-kubeconfig", namespace="vc")
        yield Kube(double, kubeconfig, tmp_path)


def users_seen(kube: Kube, since: int = 0) -> set[tuple[str, str]]:
    return {(user, via) for user, via, _m, _p in kube.double.cluster.auth.seen[since:]}


def run(action_cls: type, kube: Kube, params: dict[str, object], release: str = "rel-1") -> Outcome:
    action = action_cls()
    outcome: Outcome = action.run(action.parse_params(params), kube.ctx(release))
    return outcome


def test_the_double_refuses_anonymous_unknown_and_expired_credentials(kube: Kube) -> None:
    double = kube.double
    double.cluster.auth.allow_token("old", "bob", expires=time.time() - 1)
    alice = double.pki.issue("alice", ("developers",))
    admin = double.pki.issue("root", ("system:masters",))
    url = f"{double.url}/api/v1/namespaces"

    def status(token: str | None = None, *, cert: tuple[Path, Path] | None = None) -> int:
        tls = ssl.create_default_context(cafile=str(double.pki.ca_crt))
        if cert:
            tls.load_cert_chain(*cert)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(verify=tls, headers=headers) as http:
            return http.get(url).status_code

    assert status() == 401
    assert status("nobody-knows-me") == 401
    assert status("old") == 401
    assert status(double.TOKEN) == 200
    assert status(cert=admin) == 200
    assert status(cert=alice) == 403  # authenticated, but no RBAC rule lets her list them
    assert ("alice", "client certificate") in users_seen(kube)
    refused = kube.kubectl("--token", "nobody-knows-me", "get", "ns", check=False)
    assert refused.returncode != 0
    assert "You must be logged in to the server" in refused.stderr


@pytest.mark.parametrize("api_version", [V1, V1BETA1])
def test_an_exec_plugins_token_is_what_reaches_the_cluster(kube: Kube, api_version: str) -> None:
    plugin = CredentialPlugin(kube.workdir / "plugin", api_version)
    plugin.issue(("plugin-token", time.time() + 3600))
    kube.double.cluster.auth.allow_token("plugin-token", "eks-deployer", groups=ADMINS)
    kubeconfig = kube.double.kubeconfig(
        kube.workdir / "eks-kubeconfig", context="eks-prod", namespace="vc", user=plugin.user()
    )
    write_overlay(kube.workdir)
    common = {"kubeconfig": str(kubeconfig), "context": "eks-prod"}
    since = len(kube.double.cluster.auth.seen)
    applied = run(K8sApplyAction, kube, {**common, "overlay": OVERLAY})
    assert applied.ok, applied.summary
    rolled = run(K8sRolloutAction, kube, {**common, "deployments": ["api"], "interval": 0.1})
    assert rolled.ok, rolled.summary
    digest = digest_of("ghcr.io/valuecanvas/api:1.0.0")
    verified = run(
        K8sVerifyDigestAction, kube, {**common, "deployments": ["api"], "digest": digest}
    )
    assert verified.ok, verified.summary
    assert users_seen(kube, since) == {("eks-deployer", "token plugin-token")}
    assert plugin.calls
    assert set(plugin.calls) == {api_version}  # what kubectl told the plugin it speaks


def test_a_kubeconfig_list_merges_the_cluster_and_the_user_from_two_files(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    crt, key = kube.double.pki.issue("alice", ("system:masters",))
    clusters = kube.workdir / "clusters.yaml"
    users = kube.workdir / "users.yaml"
    entry = {"name": "gke", "cluster": kube.double.cluster_entry()}
    context = {
        "name": "gke-prod",
        "context": {"cluster": "gke", "user": "alice", "namespace": "vc"},
    }
    clusters.write_text(
        json.dumps({"clusters": [entry], "contexts": [context], "current-context": "gke-prod"})
    )
    user = {"client-certificate": str(crt), "client-key": str(key)}
    users.write_text(json.dumps({"users": [{"name": "alice", "user": user}]}))
    monkeypatch.setenv("KUBECONFIG", f"{clusters}:{users}")
    write_overlay(kube.workdir, deployments=("api",))
    since = len(kube.double.cluster.auth.seen)
    applied = run(K8sApplyAction, kube, {"overlay": OVERLAY})  # no kubeconfig, no context
    assert applied.ok, applied.summary
    rolled = run(K8sRolloutAction, kube, {"deployments": ["api"], "interval": 0.1})
    assert rolled.ok, rolled.summary
    assert users_seen(kube, since) == {("alice", "client certificate")}
    assert applied.outputs["namespace"] == "vc"


def test_an_expired_plugin_credential_is_refreshed_by_calling_the_plugin_again(
    kube: Kube,
) -> None:
    overlay = write_overlay(kube.workdir, deployments=("api",))
    kube.kubectl("apply", "--server-side", "-k", str(overlay))  # set up as the admin
    plugin = CredentialPlugin(kube.workdir / "plugin")
    soon = float(int(time.time()) + 4)  # whole seconds, as in expirationTimestamp
    plugin.issue(("short-lived", soon), ("fresh", time.time() + 3600))
    auth = kube.double.cluster.auth
    auth.allow_token("short-lived", "aks-deployer", expires=soon, groups=ADMINS)
    auth.allow_token("fresh", "aks-deployer", groups=ADMINS)
    kubeconfig = kube.double.kubeconfig(
        kube.workdir / "aks-kubeconfig", context="aks", namespace="vc", user=plugin.user()
    )
    box: dict[str, Outcome] = {}
    params = {"kubeconfig": str(kubeconfig), "deployments": ["api"], "interval": 0.2}
    since = len(auth.seen)
    with kube.double.paused():  # the rollout cannot finish before the credential expires
        watcher = threading.Thread(
            target=lambda: box.update(outcome=run(K8sRolloutAction, kube, params))
        )
        watcher.start()
        kube.wait_for(lambda: time.time() > soon + 1, timeout=15)
        assert "outcome" not in box
    watcher.join(timeout=60)
    outcome = box["outcome"]
    assert outcome.ok, outcome.summary
    seen = users_seen(kube, since)
    assert seen == {("aks-deployer", "token short-lived"), ("aks-deployer", "token fresh")}
    assert len(plugin.calls) >= 2  # called again once the first credential expired


def test_a_failing_plugin_fails_the_step_naming_the_context_and_what_the_plugin_said(
    kube: Kube,
) -> None:
    plugin = CredentialPlugin(kube.workdir / "plugin")
    plugin.fail_with("Error: the SSO session has expired; run aws sso login\n")
    kubeconfig = kube.double.kubeconfig(
        kube.workdir / "eks-kubeconfig", context="eks-prod", namespace="vc", user=plugin.user()
    )
    write_overlay(kube.workdir, deployments=("api",))
    common = {"kubeconfig": str(kubeconfig)}
    for outcome in (
        run(K8sApplyAction, kube, {**common, "overlay": OVERLAY}),
        run(K8sRolloutAction, kube, {**common, "deployments": ["api"], "timeout": 30}),
    ):
        assert not outcome.ok
        assert "context 'eks-prod'" in outcome.summary, outcome.summary
        assert "the SSO session has expired; run aws sso login" in outcome.summary
        assert "timed out" not in outcome.summary
        assert "Traceback" not in outcome.summary + outcome.detail
    assert kube.double.deployment("api", "vc") is None


def test_the_read_proxy_is_private_read_only_and_stopped(kube: Kube) -> None:
    api = Kubectl(str(kube.kubeconfig)).proxy()
    directory = api._dir
    try:
        assert directory.stat().st_mode & 0o777 == 0o700  # no other user reaches the socket
        assert api.get("/api/v1/namespaces/vc") is None  # a read goes through
        refused = api.http.delete("/api/v1/namespaces/default")
        assert refused.status_code == 403  # kubectl proxy --reject-methods
        assert kube.double.cluster.get_by_kind("Namespace") != []
        assert ("DELETE", "/api/v1/namespaces/default") not in kube.double.cluster.requests
    finally:
        api.close()
        stop_proxies()
    assert api._proc.poll() is not None
    assert not directory.exists()


def test_one_read_proxy_serves_the_steps_of_a_context_and_stops_once_idle(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The steps of a process that read one context share its proxy (a step started a
    kubectl proxy and its watchdog, and on a cloud ran the credential plugin, each time);
    another kubeconfig, or the same file changed, is another proxy; one that died is
    replaced; one no step uses stops PROXY_IDLE seconds after the last step gave it back."""
    monkeypatch.setattr(kubernetes, "PROXY_IDLE", 0.5)
    kubectl = Kubectl(str(kube.kubeconfig))
    try:
        with kubectl.proxy() as first, kubectl.proxy() as second:  # two steps at once
            assert first._proc is second._proc
            assert first.get("/api/v1/namespaces/vc") is None
        with kubectl.proxy() as later:  # the next step, within PROXY_IDLE
            assert later._proc is first._proc
            assert later.get("/api/v1/namespaces/vc") is None
        other = kube.double.kubeconfig(kube.workdir / "other-kubeconfig", namespace="vc")
        with Kubectl(str(other)).proxy() as elsewhere:
            assert elsewhere._proc is not first._proc
        kube.double.kubeconfig(kube.kubeconfig, namespace="default")  # rewritten
        with kubectl.proxy() as changed:
            assert changed._proc is not first._proc
            changed._proc.kill()  # died (an OOM kill, say)
            changed._proc.wait()
            with kubectl.proxy() as replaced:
                assert replaced._proc is not changed._proc
                assert replaced.get("/api/v1/namespaces/vc") is None
        # idle: every proxy stops, and then its private folder is removed
        for api in (first, replaced):
            wait_for(
                lambda api=api: api._proc.poll() is not None and not api._dir.exists(),  # type: ignore[misc]
                timeout=10,
                what="the idle proxy stopped and its folder removed",
            )
        # and the pool forgets their keys (a kubeconfig rewritten for months is many keys;
        # the pool is the process's: other tests' proxies may still be in it)
        pool = kubernetes._PROXIES
        keys = {api._key for api in (first, elsewhere, changed, replaced)}
        wait_for(
            lambda: not keys & {*pool._running, *pool._users, *pool._starting, *pool._idle},
            timeout=10,
            what="the pool forgetting the test's proxies",
        )
    finally:
        stop_proxies()


def test_a_read_client_that_cannot_be_made_gives_its_proxy_back(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step whose HTTP client fails to build (a CA bundle that does not load) does not
    keep the proxy in use: it still stops once idle."""
    monkeypatch.setattr(kubernetes, "PROXY_IDLE", 0.3)
    kubectl = Kubectl(str(kube.kubeconfig))
    try:
        with kubectl.proxy() as first:
            proc = first._proc

        def unreadable() -> str:
            raise OSError("could not load the CA bundle")

        monkeypatch.setattr(kubernetes.tls, "verify", unreadable)
        with pytest.raises(OSError, match="CA bundle"):
            kubectl.proxy()
        wait_for(lambda: proc.poll() is not None, timeout=10, what="the idle proxy stopped")
    finally:
        stop_proxies()


def test_a_proxy_that_does_not_start_says_what_kubectl_said_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"  # a kubectl that gives up at once, as on a context it lacks
    fake.write_text("#!/bin/sh\necho 'error: context \"prod\" does not exist' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    private = tmp_path / "tmp"  # where its socket's folder goes (the other tests' elsewhere)
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    with pytest.raises(kubernetes.KubernetesError, match="did not start") as refused:
        Kubectl(None, "prod").proxy()
    assert "context 'prod'" in str(refused.value)
    assert 'context "prod" does not exist' in str(refused.value)
    assert list(private.iterdir()) == []  # its folder removed, stderr file and all


def test_a_proxy_that_is_slow_to_start_holds_up_only_its_own_context(
    kube: Kube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step whose context's proxy hangs on start (a credential plugin waiting on a
    network, say: up to the start timeout) does not hold up the steps of another context:
    the pool's lock was held while a proxy started, so every step of the process waited."""
    real = shutil.which("kubectl")
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    started, go_on = tmp_path / "started", tmp_path / "go-on"
    (bin_dir / "kubectl").write_text(  # context "stuck" waits until told, then gives up
        "#!/bin/sh\n"
        'case " $* " in *" --context stuck "*)\n'
        f"  touch {started}; while [ ! -e {go_on} ]; do sleep 0.05; done\n"
        "  echo 'error: the credential plugin timed out' >&2; exit 1;;\n"
        "esac\n"
        f'exec {real} "$@"\n'
    )
    (bin_dir / "kubectl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    stuck_said: list[BaseException] = []
    other_read: list[object] = []

    def stuck_step() -> None:
        try:
            Kubectl(str(kube.kubeconfig), "stuck").proxy()
        except kubernetes.KubernetesError as exc:
            stuck_said.append(exc)

    def other_step() -> None:
        with Kubectl(str(kube.kubeconfig)).proxy() as api:
            other_read.append(api.get("/api/v1/namespaces/vc"))

    stuck = threading.Thread(target=stuck_step)
    other = threading.Thread(target=other_step)
    try:
        stuck.start()
        wait_for(started.exists, timeout=30, what="the stuck context's proxy starting")
        other.start()
        other.join(timeout=30)
        assert not other.is_alive(), "the other context's step waited for the stuck start"
        assert other_read == [None]  # it read through its own proxy
        assert stuck.is_alive()  # still starting all that time
    finally:
        go_on.touch()
        stuck.join(timeout=30)
        other.join(timeout=30)
        stop_proxies()
    assert len(stuck_said) == 1
    assert "credential plugin timed out" in str(stuck_said[0])
