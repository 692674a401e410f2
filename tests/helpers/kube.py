"""A Kubernetes API double per test, an overlay on disk, and a StepContext for k8s actions."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.processes import wait_for
from shipcaptain.actions.base import StepContext
from shipcaptain.sandbox.doubles.kubernetes import KubernetesDouble

SECRET_VALUE = "hunter2-very-secret-password"

BASE = """\
apiVersion: v1
kind: Namespace
metadata: {{name: vc}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: app}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config}}
data: {{LOG_LEVEL: info, SEARCH: "on", LEGACY_EXPORT: "no", UMASK: "0022", RATIO: "1e3"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secret}}
stringData: {{DB_PASSWORD: {secret}}}
---
apiVersion: v1
kind: Service
metadata: {{name: api}}
spec: {{selector: {{app: api}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: api}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: api}}
  minReplicas: 2
  maxReplicas: 5
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: api}}
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: api, port: {{number: 80}}}}}}
"""

DEPLOYMENT = """\
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: {deadline}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: {name}, image: "ghcr.io/valuecanvas/{name}:1.0.0"}}]}}
"""


def write_overlay(
    root: Path,
    *,
    deployments: tuple[str, ...] = ("api", "web", "worker"),
    replicas: int = 2,
    deadline: int = 600,
    secret: str = SECRET_VALUE,
) -> Path:
    """A base with every kind an overlay holds and an overlay ``production`` (namespace vc)."""
    base = root / "kubernetes" / "base"
    overlay = root / "kubernetes" / "overlays" / "production"
    base.mkdir(parents=True, exist_ok=True)
    overlay.mkdir(parents=True, exist_ok=True)
    text = BASE.format(secret=secret) + "".join(
        DEPLOYMENT.format(name=d, replicas=replicas, deadline=deadline) for d in deployments
    )
    (base / "all.yaml").write_text(text)
    (base / "kustomization.yaml").write_text("resources: [all.yaml]\n")
    (overlay / "kustomization.yaml").write_text("namespace: vc\nresources: [../../base]\n")
    return overlay


@dataclass
class Kube:
    double: KubernetesDouble
    kubeconfig: Path
    workdir: Path
    progress: list[str] = field(default_factory=list)

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def ctx(
        self, release_id: str = "rel-1", step_id: str = "step", timeout: float = 60
    ) -> StepContext:
        return StepContext(
            release_id=release_id,
            step_id=step_id,
            attempt=1,
            timeout=timeout,
            workdir=self.workdir,
            progress=self.progress.append,
        )

    def params(self, **kw: Any) -> dict[str, Any]:
        return {"kubeconfig": str(self.kubeconfig), "namespace": "vc", **kw}

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        wait_for(predicate, timeout)


def running_double(tmp_path: Path) -> Iterator[Kube]:
    """For a fixture: ``yield from running_double(tmp_path)``."""
    with KubernetesDouble(pod_ready_seconds=0.2, tick=0.05) as double:
        kubeconfig = double.kubeconfig(tmp_path / "kubeconfig", namespace="vc")
        yield Kube(double, kubeconfig, tmp_path)


PLUGIN = """\
#!{python}
# A credential plugin like aws-iam-authenticator or gke-gcloud-auth-plugin: it prints the
# first ExecCredential of responses.json that has not expired yet.
import json, os, pathlib, sys, time
here = pathlib.Path(__file__).parent
calls = here / "calls.log"
info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO") or "{{}}")
with calls.open("a") as log:
    log.write(info.get("apiVersion", "-") + "\\n")
if (here / "fail").exists():
    sys.stderr.write((here / "fail").read_text())
    sys.exit(3)
responses = json.loads((here / "responses.json").read_text())
valid = [r for until, r in responses if until is None or until > time.time()]
print(json.dumps(valid[0]))
"""


@dataclass
class CredentialPlugin:
    """An ``exec:`` credential plugin in its own directory, and what it was asked."""

    directory: Path
    api_version: str = "client.authentication.k8s.io/v1"

    def __post_init__(self) -> None:
        import sys

        self.directory.mkdir(parents=True, exist_ok=True)
        self.script = self.directory / "credential-plugin"
        self.script.write_text(PLUGIN.format(python=sys.executable))
        self.script.chmod(0o755)

    def issue(self, *tokens: tuple[str, float | None]) -> None:
        """Credentials to answer with, each (token, expiry as time.time()): a call gets the
        first one not expired yet."""
        from datetime import UTC, datetime

        def credential(token: str, expires: float | None) -> dict[str, Any]:
            status: dict[str, Any] = {"token": token}
            if expires is not None:
                stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                status["expirationTimestamp"] = stamp
            return {"apiVersion": self.api_version, "kind": "ExecCredential", "status": status}

        responses = [(e, credential(t, e)) for t, e in tokens]
        (self.directory / "responses.json").write_text(json.dumps(responses))

    def fail_with(self, stderr: str) -> None:
        (self.directory / "fail").write_text(stderr)

    @property
    def calls(self) -> list[str]:
        """The apiVersion kubectl announced in KUBERNETES_EXEC_INFO, one per call."""
        log = self.directory / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def user(self) -> dict[str, Any]:
        """The kubeconfig ``user:`` that runs this plugin."""
        entry: dict[str, Any] = {"apiVersion": self.api_version, "command": str(self.script)}
        if self.api_version.endswith("/v1"):
            entry["interactiveMode"] = "Never"  # required by v1
        return {"exec": entry}
