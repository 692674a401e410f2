"""Talking to a Kubernetes cluster: kubectl for what kubectl does best (kustomize, server-side
apply, rollout undo), plain HTTP with the kubeconfig's server and credentials for reads
that a watch repeats (deployments, replica sets, pods).

Which cluster is the user's kubeconfig and context, exactly as kubectl picks them:
the ``kubeconfig`` given, else ``$KUBECONFIG`` (its first file), else ``~/.kube/config``;
the ``context`` given, else the kubeconfig's current context. Errors of kubectl, httpx
and the kubeconfig become ``KubernetesError`` (an ``ActionError``) where they enter.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from shipcaptain.errors import ActionError

Obj = dict[str, Any]


class KubernetesError(ActionError):
    """kubectl failed, the API answered an error, or the kubeconfig is unusable."""

    code = "SC610"


def kubeconfig_path(given: str | None) -> Path:
    if given:
        return Path(given).expanduser()
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


@dataclass
class Cluster:
    """Where and as whom: the server and credentials of one kubeconfig context."""

    kubeconfig: Path
    context: str
    server: str
    namespace: str
    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    _tempfiles: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, kubeconfig: str | None, context: str | None) -> Cluster:
        path = kubeconfig_path(kubeconfig)
        try:
            config = YAML(typ="safe").load(path.read_text()) or {}
        except (OSError, YAMLError) as exc:
            raise KubernetesError(f"cannot read the kubeconfig {path}: {exc}") from exc
        name = context or config.get("current-context")
        if not name:
            raise KubernetesError(f"{path}: no context given and no current-context set")

        def pick(section: str, key: str) -> Obj:
            for entry in config.get(section) or []:
                if entry.get("name") == key:
                    return dict(entry.get(section[:-1]) or {})
            known = ", ".join(e.get("name", "?") for e in config.get(section) or [])
            raise KubernetesError(f"{path}: no {section[:-1]} named {key!r} (known: {known})")

        ctx = pick("contexts", name)
        server_conf = pick("clusters", ctx.get("cluster", ""))
        user = pick("users", ctx["user"]) if ctx.get("user") else {}
        if "exec" in user or "auth-provider" in user:
            raise KubernetesError(
                f"{path}: user {ctx.get('user')!r} authenticates with a plug-in; shipcaptain reads "
                "the cluster with a token or a client certificate (give it a token-based context)"
            )
        cluster = cls(
            kubeconfig=path,
            context=name,
            server=str(server_conf.get("server", "")).rstrip("/"),
            namespace=ctx.get("namespace") or "default",
        )
        if not cluster.server:
            raise KubernetesError(f"{path}: cluster of context {name!r} has no server")
        base = path.parent
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = (base / user["tokenFile"]).read_text().strip()
        if token:
            cluster.headers["Authorization"] = f"Bearer {token}"
        elif user.get("username"):
            raw = f"{user['username']}:{user.get('password', '')}".encode()
            cluster.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        if server_conf.get("insecure-skip-tls-verify"):
            cluster.verify = False
        elif server_conf.get("certificate-authority-data"):
            cluster.verify = cluster._file(server_conf["certificate-authority-data"])
        elif server_conf.get("certificate-authority"):
            cluster.verify = str(base / server_conf["certificate-authority"])
        cert = user.get("client-certificate-data") and cluster._file(
            user["client-certificate-data"]
        )
        key = user.get("client-key-data") and cluster._file(user["client-key-data"])
        cert = cert or (user.get("client-certificate") and str(base / user["client-certificate"]))
        key = key or (user.get("client-key") and str(base / user["client-key"]))
        if cert and key:
            cluster.cert = (cert, key)
        return cluster

    def _file(self, data_b64: str) -> str:
        handle, name = tempfile.mkstemp(prefix="shipcaptain-kube-")
        with os.fdopen(handle, "wb") as out:
            out.write(base64.b64decode(data_b64))
        self._tempfiles.append(name)
        return name

    def close(self) -> None:
        for name in self._tempfiles:
            with contextlib.suppress(OSError):
                os.unlink(name)


class KubeApi:
    """Reads of the Kubernetes API over HTTP (the watch loop calls these every second)."""

    def __init__(self, cluster: Cluster, *, timeout: float = 10.0) -> None:
        self.cluster = cluster
        self.http = httpx.Client(
            base_url=cluster.server,
            headers={**cluster.headers, "Accept": "application/json"},
            verify=cluster.verify,
            cert=cluster.cert,
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()
        self.cluster.close()

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: str) -> Obj | None:
        """The object at ``path``, or None when it does not exist."""
        try:
            response = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise KubernetesError(f"{self.cluster.server}{path}: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise KubernetesError(f"GET {path}: {response.status_code} {message}")
        result: Obj = response.json()
        return result

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    def items(self, path: str, **params: str) -> list[Obj]:
        found = self.get(path, **params)
        return list((found or {}).get("items", []))

    def replicasets(self, namespace: str, selector: str) -> list[Obj]:
        return self.items(
            f"/apis/apps/v1/namespaces/{namespace}/replicasets", labelSelector=selector
        )

    def pods(self, namespace: str, selector: str) -> list[Obj]:
        return self.items(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)


def label_selector(selector: Obj) -> str:
    """``spec.selector`` as a label-selector string (matchLabels and simple expressions)."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        op = expr.get("operator")
        if op == "In":
            terms.append(f"{expr['key']} in ({values})")
        elif op == "NotIn":
            terms.append(f"{expr['key']} notin ({values})")
        elif op == "Exists":
            terms.append(expr["key"])
        elif op == "DoesNotExist":
            terms.append(f"!{expr['key']}")
    return ",".join(terms)


@dataclass
class Kubectl:
    """kubectl with the user's kubeconfig and context."""

    kubeconfig: str | None = None
    context: str | None = None
    redact: Callable[[str], str] = field(default=lambda text: text)

    def _base(self) -> list[str]:
        exe = shutil.which("kubectl")
        if exe is None:
            raise KubernetesError("kubectl is not on PATH")
        args = [exe, "--kubeconfig", str(kubeconfig_path(self.kubeconfig))]
        if self.context:
            args += ["--context", self.context]
        return args

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120.0) -> str:
        command = [*self._base(), *args]
        try:
            done = subprocess.run(
                command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KubernetesError(f"kubectl {args[0]} timed out after {timeout:g}s") from exc
        except OSError as exc:
            raise KubernetesError(f"cannot run kubectl: {exc}") from exc
        if done.returncode != 0:
            message = self.redact((done.stderr or done.stdout).strip())
            raise KubernetesError(f"kubectl {' '.join(args[:2])}: {message}")
        return done.stdout

    def kustomize(self, overlay: Path, timeout: float = 60.0) -> str:
        """Render an overlay offline (no cluster needed)."""
        exe = shutil.which("kubectl")
        if exe is None:
            raise KubernetesError("kubectl is not on PATH")
        try:
            done = subprocess.run(
                [exe, "kustomize", str(overlay)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KubernetesError(f"kubectl kustomize {overlay}: {exc}") from exc
        if done.returncode != 0:
            raise KubernetesError(f"kustomize could not render {overlay}: {done.stderr.strip()}")
        return done.stdout
