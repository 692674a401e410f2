"""Releases run by a real ``shipcaptain`` process on PostgreSQL, against the HTTPS
Kubernetes API double that checks credentials: a worker inside a pod (the service
account, no kubeconfig), and a credential plugin that fails (the step fails under its
policy, saying which context and what the plugin said)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.databases import raw_engine
from helpers.kube import SECRET_VALUE, CredentialPlugin, write_overlay
from helpers.releases import write_runbook
from helpers.team import make_team, run_here
from shipcaptain.sandbox.doubles.kubernetes import KubernetesDouble, digest_of
from shipcaptain.store import Store

pytestmark = pytest.mark.slow

RUNBOOK = """
    name: k8s-credentials
    phases:
      - id: rollout
        steps:
          - id: apply
            action: k8s_apply
            retry: {{attempts: 2, backoff: 0.1s}}
            on_failure: halt
            with: {{overlay: kubernetes/overlays/production{extra}}}
          - id: watch
            action: k8s_rollout
            needs: [apply]
            with: {{deployments: [api], interval: 0.2{extra}}}
          - id: digest
            action: k8s_verify_digest
            needs: [watch]
            with: {{deployments: [api], digest: "{digest}"{extra}}}
"""
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# A private mount namespace where the service account's files are where every pod has
# them: kubectl (client-go) reads the token and CA from these fixed paths only.
IN_A_POD = f"""
mount -t tmpfs -o mode=0755 tmpfs /run &&
mkdir -p {SERVICE_ACCOUNT} &&
cp "$SA_FILES"/token "$SA_FILES"/ca.crt "$SA_FILES"/namespace {SERVICE_ACCOUNT}/ &&
exec "$@"
"""


def _can_fake_a_pod() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or Path("/var/run").resolve() != Path("/run"):
        return False
    done = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "true"], capture_output=True, check=False
    )
    return done.returncode == 0


def _env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPCAPTAIN_", "KUBE"))}
    home = tmp_path / "home"  # no ~/.kube/config
    home.mkdir(exist_ok=True)
    return {
        **env,
        "HOME": str(home),
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "SHIPCAPTAIN_TOKEN": make_team(database_url)["casey"],
        **extra,
    }


def _start(runbook: Path, env: dict[str, str], cwd: Path, prefix: list[str] | None = None):
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "shipcaptain", "release", "start", str(runbook)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(not _can_fake_a_pod(), reason="needs unshare --mount (root) for /var/run")
def test_a_worker_in_a_pod_uses_its_service_account(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with KubernetesDouble(pod_ready_seconds=0.2, tick=0.05) as double:
        files = tmp_path / "serviceaccount"
        files.mkdir()
        (files / "token").write_text("sa-token-of-shipcaptain")
        (files / "namespace").write_text("vc")
        shutil.copy(double.pki.ca_crt, files / "ca.crt")
        user = "system:serviceaccount:vc:shipcaptain"
        double.cluster.auth.allow_token("sa-token-of-shipcaptain", user, groups=("system:masters",))
        write_overlay(tmp_path, deployments=("api",))
        digest = digest_of("ghcr.io/valuecanvas/api:1.0.0")
        runbook = write_runbook(tmp_path, RUNBOOK.format(extra="", digest=digest))
        env = _env(
            database_url,
            tmp_path,
            KUBERNETES_SERVICE_HOST="127.0.0.1",
            KUBERNETES_SERVICE_PORT=str(double.port),
            SA_FILES=str(files),
        )
        pod = ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_A_POD, "sh"]
        done = _start(runbook, env, tmp_path, pod)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        release = store.list_releases()[0]
        assert store.get_release(release.id).status == "succeeded"
        runs = store.latest_step_runs(release.id)
        assert runs["apply"].outputs["namespace"] == "vc"  # the pod's namespace
        assert runs["digest"].outputs["pods"] == 2
        assert double.deployment("api", "vc") is not None
        seen = {(who, via) for who, via, _m, _p in double.cluster.auth.seen}
        assert seen == {(user, "token sa-token-of-shipcaptain")}
    assert not Path(SERVICE_ACCOUNT).exists()  # only the worker's namespace saw the files


def test_a_failing_credential_plugin_fails_the_step_under_its_policy(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with KubernetesDouble(pod_ready_seconds=0.2, tick=0.05) as double:
        plugin = CredentialPlugin(tmp_path / "plugin")
        plugin.fail_with("error: could not get token: AADSTS700082: the refresh token expired\n")
        kubeconfig = double.kubeconfig(
            tmp_path / "kubeconfig", context="aks-prod", namespace="vc", user=plugin.user()
        )
        write_overlay(tmp_path, deployments=("api",))
        runbook = write_runbook(
            tmp_path, RUNBOOK.format(extra=", context: aks-prod", digest="sha256:" + "0" * 64)
        )
        done = _start(runbook, _env(database_url, tmp_path, KUBECONFIG=str(kubeconfig)), tmp_path)
        said = done.stdout + done.stderr
        assert done.returncode != 0, said[-2000:]
        assert "Traceback" not in said
        release = store.list_releases()[0]
        assert store.get_release(release.id).status == "failed"
        apply = store.latest_step_runs(release.id)["apply"]
        assert apply.status == "failed"
        assert apply.attempt == 2  # its retry policy: two attempts, then halt
        assert "context 'aks-prod'" in apply.summary
        assert "AADSTS700082: the refresh token expired" in apply.summary
        assert store.get_release(release.id).reason == "failed at apply"
        assert store.latest_step_runs(release.id)["watch"].summary.startswith("not run")
        assert double.deployment("api", "vc") is None
        assert len(plugin.calls) >= 2


def test_a_kustomize_error_is_one_message_with_the_file_and_no_traceback(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with KubernetesDouble(pod_ready_seconds=0.2, tick=0.05) as double:
        kubeconfig = double.kubeconfig(tmp_path / "kubeconfig", namespace="vc")
        overlay = write_overlay(tmp_path, deployments=("api",))
        (overlay / "kustomization.yaml").write_text(
            "namespace: vc\nresources: [../../base]\npatches:\n  - path: scale.yaml\n"
        )
        (overlay / "scale.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\n"
            "metadata: {name: billing}\nspec: {replicas: 3}\n"
        )
        runbook = write_runbook(tmp_path, RUNBOOK.format(extra="", digest="sha256:" + "0" * 64))
        env = _env(database_url, tmp_path, KUBECONFIG=str(kubeconfig))
        done = _start(runbook, env, tmp_path)
        said = done.stdout + done.stderr
        assert done.returncode != 0, said[-2000:]
        assert "Traceback" not in said
        release = store.list_releases()[0]
        apply = store.latest_step_runs(release.id)["apply"]
        assert apply.status == "failed"
        assert apply.attempt == 1  # a broken overlay is not retried
        assert apply.summary.startswith(
            f"kustomize could not render {overlay / 'kustomization.yaml'}: "
        )
        assert "Deployment.v1.apps/billing" in apply.summary
        assert said.count("kustomize could not render") == 1, said
        assert double.cluster.get_by_kind("Deployment") == []
        assert [n["metadata"]["name"] for n in double.cluster.get_by_kind("Namespace")] == [
            "default",
            "kube-system",
        ]


PREVIEW_AND_APPLY = """
    name: k8s-secret
    phases:
      - id: rollout
        steps:
          - id: preview
            action: k8s_apply
            with: {overlay: kubernetes/overlays/production, dry_run: true}
          - id: apply
            action: k8s_apply
            needs: [preview]
            with: {overlay: kubernetes/overlays/production}
"""


def _every_stored_value(database_url: str) -> str:
    """Every value of every table the state database holds (shipcaptain's and DBOS's)."""
    from sqlalchemy import MetaData, inspect, select

    out: list[str] = []
    with raw_engine(database_url) as engine, engine.connect() as conn:
        schemas = [
            s
            for s in inspect(engine).get_schema_names()
            if s not in ("information_schema", "pg_catalog", "pg_toast")
        ]
        for schema in schemas if engine.dialect.name != "sqlite" else [None]:
            meta = MetaData(schema=schema)
            meta.reflect(conn)
            for table in meta.tables.values():
                out += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(out)


def test_a_secrets_value_is_never_shown_nor_stored_in_the_evidence(
    database_url: str, store: Store, tmp_path: Path
) -> None:
    with KubernetesDouble(pod_ready_seconds=0.2, tick=0.05) as double:
        kubeconfig = double.kubeconfig(tmp_path / "kubeconfig", namespace="vc")
        old = "the-old-database-password"
        overlay = write_overlay(tmp_path, deployments=("api",), secret=old)
        subprocess.run(  # what runs now: the Secret with its old value
            ["kubectl", "--kubeconfig", str(kubeconfig), "apply", "--server-side", "-k",
             str(overlay)],
            check=True, capture_output=True,
        )  # fmt: skip
        write_overlay(tmp_path, deployments=("api",))  # the release changes it: SECRET_VALUE
        runbook = write_runbook(tmp_path, PREVIEW_AND_APPLY)
        env = _env(database_url, tmp_path, KUBECONFIG=str(kubeconfig))
        done = _start(runbook, env, tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        release = store.list_releases()[0]
        preview = store.latest_step_runs(release.id)["preview"]
        assert (
            "DB_PASSWORD: '*** (changed)'" in preview.detail
        )  # the change is shown, not the value
        # the evidence, exported in this process (run_here): what is checked is its files
        export = run_here(
            env, tmp_path, "audit", "export", release.id, "-o", str(tmp_path / "evidence")
        )
        assert export.returncode == 0, export.stderr
        evidence = "".join(p.read_text() for p in (tmp_path / "evidence").iterdir())
        applied = store.latest_step_runs(release.id)["apply"].summary
        assert applied.startswith("applied 8 objects")
        assert applied in evidence  # the evidence holds the steps' results
        stored = _every_stored_value(database_url)
        assert release.id in stored
        history = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "cm", "-A", "-o", "json"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        for value in (SECRET_VALUE, old):
            for form in (value, base64.b64encode(value.encode()).decode()):
                assert form not in done.stdout + done.stderr, form
                assert form not in evidence, form
                assert form not in stored, form
                assert form not in history, form
