"""Talking to a Kubernetes cluster, always through kubectl, so every read and write
authenticates exactly as kubectl does for the same context: ``exec`` credential plugins
(v1 and v1beta1, with their caching and expiry), auth-provider tokens, merged
``KUBECONFIG`` lists, ``--context``, in-cluster service accounts, proxies and CA bundles.
shipcaptain never reads a kubeconfig's credentials itself.

- Writes, kustomize, ``rollout undo`` and the history ConfigMaps: ``kubectl`` commands
  (``Kubectl.run``).
- Reads a watch repeats (deployments, replica sets, pods, every second): plain HTTP
  through a ``kubectl proxy`` (``Kubectl.proxy``), listening on a Unix socket in a private
  directory (mode 0700), so no other local user can borrow the worker's credentials, and
  refusing every method but reads. The proxy holds the credentials: an exec plugin runs
  once and again only when its credential expires or the server answers 401. One proxy
  serves the steps of a process that read the same context from the same kubeconfig
  files, unchanged; it stops ``PROXY_IDLE`` seconds after its last step ended (or with
  the process): a step started two processes (the proxy and its watchdog) and, on a
  cloud, ran the credential plugin (``aws eks get-token``) again.

Which cluster: ``kubeconfig`` given (else kubectl's own rules: ``$KUBECONFIG``, a list
merged, else ``~/.kube/config``, else the pod's service account) and ``context`` given
(else the current one). Errors become ``KubernetesError`` (an ``ActionError``) naming the
context and what kubectl or the credential plugin said.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shipcaptain import tls
from shipcaptain.errors import ActionError
from shipcaptain.watchdog import Watchdog

Obj = dict[str, Any]
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_KLOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")
_FAILED = re.compile(r'"command failed" err="((?:[^"\\]|\\.)*)"')
_READ_ONLY = "^POST$,^PUT$,^PATCH$,^DELETE$"
#: a context's namespace as kubectl gave it, by what kubectl read (``Kubectl.namespace``)
_NAMESPACES: dict[tuple[Any, ...], str] = {}
#: seconds a read proxy no step uses keeps running for the next step of its context
PROXY_IDLE = 30.0


class KubernetesError(ActionError):
    """kubectl failed, the API answered an error, or the credentials are unusable."""

    code = "SC610"


class CredentialsError(KubernetesError):
    """kubectl could not get credentials for the context (a credential plugin failed, a
    token file is missing, ...). Often passing (an SSO session, a network blip): retryable."""


_GETTING = re.compile(r"getting credentials: (.*?)(?:\\?\"|;|$)", re.MULTILINE)


def credentials_error(where: str, stderr: str) -> CredentialsError | None:
    """The credential failure in kubectl's stderr, with what the plugin itself wrote."""
    found = _GETTING.search(stderr)
    if found is None:
        return None
    plugin = [
        line.strip()
        for line in stderr.splitlines()
        if line.strip() and "getting credentials" not in line and not _KLOG.match(line)
    ]  # kubectl's own lines about it all name "getting credentials"
    said = "; ".join(dict.fromkeys(plugin))
    return CredentialsError(
        f"cannot get credentials for {where}: {found.group(1)}"
        + (f"; the credential plugin said: {said}" if said else "")
    )


def _said(stderr: str) -> str:
    """kubectl's stderr without klog's repeated log lines: what a person needs to read
    (a failed command's own error, which kubectl 1.32 logs as ``"command failed" err=``)."""
    lines = []
    for line in stderr.splitlines():
        failed = _FAILED.search(line)
        if failed:
            lines.append(json.loads(f'"{failed.group(1)}"'))
        elif line.strip() and not _KLOG.match(line):
            lines.append(line)
    return "\n".join(dict.fromkeys(lines))


@dataclass
class Kubectl:
    """kubectl with the user's kubeconfig and context, as kubectl itself resolves them."""

    kubeconfig: str | None = None
    context: str | None = None
    redact: Callable[[str], str] = field(default=lambda text: text)

    def _exe(self) -> str:
        exe = shutil.which("kubectl")
        if exe is None:
            raise KubernetesError("kubectl is not on PATH")
        return exe

    def _base(self) -> list[str]:
        args = [self._exe()]
        if self.kubeconfig:
            args += ["--kubeconfig", str(Path(self.kubeconfig).expanduser())]
        if self.context:
            args += ["--context", self.context]
        return args

    def context_name(self) -> str:
        """The context kubectl uses ('in-cluster' when it uses the pod's service account)."""
        if self.context:
            return self.context
        done = subprocess.run(
            [*self._base(), "config", "current-context"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout.strip() or "in-cluster"

    def where(self) -> str:
        return f"context {self.context_name()!r}"

    def _read_by_kubectl(self) -> tuple[Any, ...]:
        """What kubectl reads to resolve a context: the kubeconfig files (each file's
        identity, size and time of change) and the environment variables naming them."""
        if self.kubeconfig:
            files = [str(Path(self.kubeconfig).expanduser())]
        elif os.environ.get("KUBECONFIG"):
            files = [f for f in os.environ["KUBECONFIG"].split(os.pathsep) if f]
        else:
            files = [str(Path("~/.kube/config").expanduser())]
        seen: list[Any] = [self.context, os.environ.get("KUBECONFIG"), os.environ.get("HOME")]
        for name in files:
            try:
                st = os.stat(name)
            except OSError:
                seen.append((name, None))
            else:
                seen.append((name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(seen)

    def namespace(self) -> str:
        """The context's namespace, as kubectl picks it (the pod's own namespace in-cluster).
        Asked of kubectl once for the same kubeconfig files, unchanged, and context: each
        step that reads the cluster asked it again (a kubectl process, ~40 ms of CPU)."""
        key = self._read_by_kubectl()
        known = _NAMESPACES.get(key)
        if known is not None:
            return known
        done = subprocess.run(
            [*self._base(), "config", "view", "--minify", "-o", "jsonpath={..namespace}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            found = done.stdout.strip().split()[0]
            if len(_NAMESPACES) >= 64:
                _NAMESPACES.clear()
            _NAMESPACES[key] = found
            return found
        with contextlib.suppress(OSError):
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        return "default"

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
            failed = credentials_error(self.where(), done.stderr)
            if failed is not None:
                raise failed
            message = self.redact(_said(done.stderr) or done.stdout.strip())
            raise KubernetesError(f"kubectl {' '.join(args[:2])} ({self.where()}): {message}")
        return done.stdout

    def kustomize(self, overlay: Path, timeout: float = 60.0) -> str:
        """Render an overlay offline (no cluster needed)."""
        try:
            done = subprocess.run(
                [self._exe(), "kustomize", str(overlay)],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KubernetesError(f"kubectl kustomize {overlay}: {exc}") from exc
        if done.returncode != 0:
            said = " ".join(_said(done.stderr).removeprefix("error: ").split())
            raise KubernetesError(
                f"kustomize could not render {overlay / 'kustomization.yaml'}: {said}"
            )
        return done.stdout

    def proxy(self, timeout: float = 10.0) -> KubeApi:
        """A read-only ``kubectl proxy`` for this context, and an HTTP client through it."""
        return KubeApi(self, timeout=timeout)


class _Proxy:
    """One running ``kubectl proxy``: its process, the private folder of its socket, its
    stderr (kubectl's and the credential plugin's) and its watchdog."""

    def __init__(self, kubectl: Kubectl, start_timeout: float) -> None:
        self.where = kubectl.where
        self.dir = Path(tempfile.mkdtemp(prefix="shipcaptain-kube-"))  # mode 0700
        self.socket = self.dir / "api.sock"
        self.stderr = (self.dir / "proxy.err").open("w+")
        self.lock = threading.Lock()  # the stderr file's position
        command = [
            *kubectl._base(),
            "proxy",
            f"--unix-socket={self.socket}",
            f"--reject-methods={_READ_ONLY}",
        ]
        try:
            self.proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=self.stderr, text=True
            )
        except OSError as exc:
            self._cleanup()
            raise KubernetesError(f"cannot run kubectl proxy: {exc}") from exc
        # stopped (and its socket's folder removed) even if this process dies without closing
        self.watchdog = Watchdog([["kill", str(self.proc.pid)], ["rm", "-rf", str(self.dir)]])
        self._wait_ready(start_timeout)

    def _wait_ready(self, limit: float) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("Starting to serve on"):
                    return
                if not line:  # kubectl exited
                    break
        self.proc.kill()
        self.proc.wait()
        said = _said(self.said_since(0)) or "no output"
        self.stop()
        raise KubernetesError(f"kubectl proxy ({self.where()}) did not start: {said}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def said_end(self) -> int:
        with self.lock:
            if self.stderr.closed:
                return 0
            self.stderr.flush()
            return self.stderr.seek(0, os.SEEK_END)

    def said_since(self, offset: int) -> str:
        """What kubectl and the credential plugin wrote on stderr from ``offset`` on."""
        with self.lock:
            if self.stderr.closed:  # stopped (it had died, and another step replaced it)
                return ""
            self.stderr.flush()
            self.stderr.seek(offset)
            return self.stderr.read()

    def _cleanup(self) -> None:
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._cleanup()
        self.watchdog.disarm()


class _Proxies:
    """The read proxies of this process, one per context and the kubeconfig files kubectl
    reads for it (``Kubectl._read_by_kubectl``: a file changed is another proxy), each
    with the steps using it; one nobody uses stops ``PROXY_IDLE`` seconds later.

    A proxy starts outside the pool's lock, under its own key's: a step of another context
    does not wait for it (a credential plugin that hangs holds up to ``start_timeout``),
    while the steps of the same context wait for that one instead of starting their own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[tuple[Any, ...], _Proxy] = {}
        self._users: dict[tuple[Any, ...], int] = {}
        self._idle: dict[tuple[Any, ...], threading.Timer] = {}
        self._starting: dict[tuple[Any, ...], threading.Lock] = {}

    def take(self, kubectl: Kubectl, start_timeout: float) -> tuple[tuple[Any, ...], _Proxy]:
        key = (tuple(kubectl._base()), kubectl._read_by_kubectl())
        with self._lock:
            starting = self._starting.setdefault(key, threading.Lock())
        with starting:
            with self._lock:
                dead = self._running_or_dead(key)  # taken out of _running when it died
                if key in self._running:
                    return key, self._use(key, self._running[key])
            if dead is not None:
                dead.stop()
            try:
                proxy = _Proxy(kubectl, start_timeout)
            except BaseException:  # it did not start: the pool keeps nothing of the key
                with self._lock:
                    if key not in self._running:
                        self._users.pop(key, None)
                        self._starting.pop(key, None)
                raise
            with self._lock:
                running = self._running.get(key)
                spare = None
                if running is not None and running.alive():  # another start won meanwhile
                    proxy, spare = running, proxy
                self._use(key, proxy)
        if spare is not None:
            spare.stop()
        return key, proxy

    def _running_or_dead(self, key: tuple[Any, ...]) -> _Proxy | None:
        """Under the lock: the key's idle timer cancelled; its proxy, if it died (killed,
        crashed), taken out to be stopped (returned) and replaced."""
        timer = self._idle.pop(key, None)
        if timer is not None:
            timer.cancel()
        proxy = self._running.get(key)
        if proxy is None or proxy.alive():
            return None
        del self._running[key]
        self._users[key] = 0  # the steps still holding it give nothing back
        return proxy

    def _use(self, key: tuple[Any, ...], proxy: _Proxy) -> _Proxy:
        """Under the lock: one more step uses ``proxy``, the key's running proxy now."""
        self._running[key] = proxy
        self._users[key] = self._users.get(key, 0) + 1
        return proxy

    def give_back(self, key: tuple[Any, ...], proxy: _Proxy) -> None:
        with self._lock:
            if self._running.get(key) is not proxy:  # replaced meanwhile: stopped there
                return
            self._users[key] -= 1
            if self._users[key] > 0:
                return
            timer = threading.Timer(PROXY_IDLE, self._stop_idle, (key, proxy))
            timer.daemon = True
            self._idle[key] = timer
            timer.start()

    def _stop_idle(self, key: tuple[Any, ...], proxy: _Proxy) -> None:
        with self._lock:
            if self._running.get(key) is not proxy or self._users.get(key, 0) > 0:
                return
            del self._running[key]
            self._idle.pop(key, None)
            self._users.pop(key, None)
            starting = self._starting.get(key)
            if starting is not None and not starting.locked():  # nobody starting it again
                del self._starting[key]
        proxy.stop()

    def stop_all(self) -> None:
        """Stop every proxy now (the process is ending, or a test is done with them)."""
        with self._lock:
            running = list(self._running.values())
            for timer in self._idle.values():
                timer.cancel()
            self._running.clear()
            self._users.clear()
            self._idle.clear()
            for key, starting in list(self._starting.items()):
                if not starting.locked():
                    del self._starting[key]
        for proxy in running:
            proxy.stop()


_PROXIES = _Proxies()
#: stop every read proxy of this process now (it is ending, or a test is)
stop_proxies = _PROXIES.stop_all
atexit.register(stop_proxies)


class KubeApi:
    """Reads of the Kubernetes API through the ``kubectl proxy`` of this context (started
    if none runs); use it as a context manager: leaving it gives the proxy back."""

    def __init__(self, kubectl: Kubectl, *, timeout: float = 10.0, start_timeout: float = 30.0):
        self.kubectl = kubectl
        self._key, self._proxy = _PROXIES.take(kubectl, start_timeout)
        self._said_from = self._proxy.said_end()  # what this use's requests made it say
        self._dir = self._proxy.dir
        self._proc = self._proxy.proc
        self._closed = False
        try:
            self.http = httpx.Client(
                transport=httpx.HTTPTransport(uds=str(self._proxy.socket), verify=tls.verify()),
                base_url="http://localhost",
                headers={"Accept": "application/json"},
                timeout=timeout,
            )
        except BaseException:  # a CA bundle that does not load, say: the proxy is given back
            _PROXIES.give_back(self._key, self._proxy)
            raise

    def plugin_said(self) -> str:
        """What kubectl and the credential plugin wrote on stderr since this use began."""
        return self._proxy.said_since(self._said_from)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.http.close()
        _PROXIES.give_back(self._key, self._proxy)

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: str) -> Obj | None:
        """The object at ``path``, or None when it does not exist."""
        try:
            response = self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise KubernetesError(f"{self.kubectl.where()}: GET {path}: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text.strip()
            failed = credentials_error(self.kubectl.where(), f"{message}\n{self.plugin_said()}")
            if failed is not None:
                raise failed
            raise KubernetesError(
                f"{self.kubectl.where()}: GET {path}: {response.status_code} {message}"
            )
        result: Obj = response.json()
        return result

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    def workload(self, namespace: str, kind: str, name: str) -> Obj | None:
        return self.get(f"/apis/apps/v1/namespaces/{namespace}/{kind.lower()}s/{name}")

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
