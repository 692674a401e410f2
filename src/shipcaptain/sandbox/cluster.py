"""The demo's Kubernetes cluster: the API double with ValueCanvas already running.

Production before the release runs v1.3.0 of api, web and worker (the base manifests,
applied with the real ``kubectl apply --server-side``, not by shipcaptain, so there is
no shipcaptain history yet).

From the command line (the tutorial runs it next to a release started by hand)::

    python -m shipcaptain.sandbox.cluster --workspace WS --version 1.4.1 --pod-ready-seconds 10

writes ``WS/kubeconfig``, prints the API's URL (HTTPS) and the image registry's (HTTP,
``--registry-port``) and serves until it is stopped (SIGTERM or Ctrl-C).

The registry knows the images of 1.3.0 and of the version
being released; with ``bad_image`` the new api image cannot be pulled (ErrImagePull,
ImagePullBackOff), the rollout fails and the runbook's rollback puts 1.3.0 back.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from shipcaptain.errors import ShipError
from shipcaptain.sandbox.doubles.kubernetes import Behaviour, KubernetesDouble
from shipcaptain.stop_signal import StopRequested

APPS = ("api", "web", "worker")
RUNNING = "1.3.0"
CONTEXT = "production"
NAMESPACE = "valuecanvas"


class SandboxCluster:
    def __init__(
        self,
        root: Path,
        app: Path,
        version: str,
        *,
        bad_image: bool = False,
        pod_ready_seconds: float = 0.6,
        port: int = 0,
        registry_port: int = 0,
    ) -> None:
        self.root = root
        self.app = app
        self.version = version
        self.bad_image = bad_image
        try:
            self.double = KubernetesDouble(
                pod_ready_seconds=pod_ready_seconds, port=port, registry_port=registry_port
            )
        except RuntimeError as exc:  # no openssl for its certificates
            raise ShipError(f"the demo {exc}") from exc
        self.kubeconfig = root / "kubeconfig"
        #: kubectl's discovery and HTTP caches of the double's API: the sandbox's own, not the
        #: person's ~/.kube/cache, where each run's loopback address would stay for good
        self.kube_cache = root / "kube-cache"

    def __enter__(self) -> SandboxCluster:
        self.double.start()
        try:
            self._prepare()
        except BaseException:
            self.double.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.double.stop()

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.kube_cache)}

    def values(self) -> dict[str, str]:
        """Release values the runbook needs to reach the sandbox's registry."""
        return {"registry_url": self.double.registry_url}

    def _prepare(self) -> None:
        cluster = self.double.cluster
        cluster.strict_registry = True
        for app in APPS:
            cluster.publish(f"ghcr.io/valuecanvas/{app}:{RUNNING}")
            if not (self.bad_image and app == "api"):
                cluster.publish(f"ghcr.io/valuecanvas/{app}:{self.version}")
        if self.bad_image:
            cluster.behave(f"ghcr.io/valuecanvas/api:{self.version}", Behaviour.BAD_IMAGE)
        self.double.kubeconfig(self.kubeconfig, context=CONTEXT, namespace=NAMESPACE)
        overlay = self.app / "kubernetes" / "overlays" / "production"
        base = [
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.kube_cache),
        ]
        try:
            subprocess.run(
                [*base, "apply", "--server-side", "-k", str(overlay)],
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            for app in APPS:
                subprocess.run(
                    [
                        *base,
                        "rollout",
                        "status",
                        f"deployment/{app}",
                        "-n",
                        NAMESPACE,
                        "--timeout=60s",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=90,
                )
        except FileNotFoundError as exc:
            raise ShipError("the demo needs kubectl on PATH") from exc
        except subprocess.CalledProcessError as exc:
            raise ShipError(f"the sandbox cluster did not start: {exc.stderr.strip()}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipcaptain.sandbox.cluster",
        description="Start the sandbox's Kubernetes API double with ValueCanvas running.",
    )
    parser.add_argument("--workspace", type=Path, required=True, help="the demo's workspace")
    parser.add_argument("--version", required=True, help="the version about to be released")
    parser.add_argument("--port", type=int, default=0,
                        help="the API's HTTPS port on 127.0.0.1 (0: any free)")  # fmt: skip
    parser.add_argument("--registry-port", type=int, default=0,
                        help="the image registry HTTP port (0: any free)")  # fmt: skip
    parser.add_argument("--pod-ready-seconds", type=float, default=0.6,
                        help="how long a new pod takes to get ready")  # fmt: skip
    parser.add_argument("--bad-image", action="store_true", help="the new api image is bad")
    args = parser.parse_args(argv)
    root = args.workspace.resolve()
    stop = StopRequested().handle(signal.SIGTERM)
    with SandboxCluster(
        root,
        root / "valuecanvas",
        args.version,
        bad_image=args.bad_image,
        pod_ready_seconds=args.pod_ready_seconds,
        port=args.port,
        registry_port=args.registry_port,
    ) as cluster:
        print(cluster.double.url, flush=True)
        print(f"registry: {cluster.double.registry_url}", flush=True)
        print(f"KUBECONFIG={cluster.kubeconfig}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
