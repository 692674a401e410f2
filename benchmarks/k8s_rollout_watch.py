"""Watching rollouts: parallel watch of three deployments versus the slowest one alone.

Against the Kubernetes API double (loopback, port 0), three deployments roll out at the
same time; their pods take ``--ready`` seconds (default 1.0) to get ready, one deployment
twice as many pods as the others. The figures:

* wall time of ``k8s_rollout`` watching all three in parallel, and of watching only the
  slowest one: the target is that all three cost no more than the slowest plus one poll
  interval and a margin (the release waits as long as the slowest, not the sum);
* API reads per second the watch made (the double counts requests);
* wall time of ``k8s_apply`` of the overlay (kustomize render, server-side dry run, diff,
  apply, history record);
* what reading through kubectl costs a step: getting its read client when a new
  read-only ``kubectl proxy`` starts for it (the first step of a context; before proxies
  were shared, every ``k8s_rollout`` / ``k8s_verify_digest`` step) and when it takes the
  proxy an earlier step of the context left running (medians of 10), and one read through
  it (median of 100).

Run (from the repository root, in the project's virtualenv; needs kubectl on PATH)::

    python benchmarks/k8s_rollout_watch.py
    python benchmarks/k8s_rollout_watch.py --ready 2 --interval 0.5

Exit code 0 when the parallel watch meets its target, 1 when it does not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.kube import write_overlay  # noqa: E402
from shipcaptain.actions.base import StepContext  # noqa: E402
from shipcaptain.actions.k8s import K8sApplyAction  # noqa: E402
from shipcaptain.actions.k8s_rollout import K8sRolloutAction  # noqa: E402
from shipcaptain.integrations.kubernetes import Kubectl, stop_proxies  # noqa: E402
from shipcaptain.sandbox.doubles.kubernetes import KubernetesDouble  # noqa: E402

OVERLAY = "kubernetes/overlays/production"


def one_round(ready: float, interval: float, deployments: list[str]) -> tuple[float, float, int]:
    """(apply seconds, watch seconds, API reads) of a fresh cluster."""
    with tempfile.TemporaryDirectory() as tmp, KubernetesDouble(pod_ready_seconds=ready) as k:
        root = Path(tmp)
        kubeconfig = k.kubeconfig(root / "kubeconfig", namespace="vc")
        write_overlay(root, replicas=2)
        # api gets twice the pods: the slowest rollout
        text = (root / "kubernetes/base/all.yaml").read_text()
        (root / "kubernetes/base/all.yaml").write_text(
            text.replace(
                "metadata: {name: api}\nspec:\n  replicas: 2",
                "metadata: {name: api}\nspec:\n  replicas: 4",
            )
        )
        ctx = StepContext(release_id="bench", step_id="s", attempt=1, timeout=300, workdir=root)
        common = {"kubeconfig": str(kubeconfig), "namespace": "vc"}
        apply = K8sApplyAction()
        started = time.perf_counter()
        outcome = apply.run(apply.parse_params({**common, "overlay": OVERLAY}), ctx)
        applied = time.perf_counter() - started
        assert outcome.ok, outcome.summary
        before = len(k.cluster.requests)
        watch = K8sRolloutAction()
        params = watch.parse_params({**common, "deployments": deployments, "interval": interval})
        started = time.perf_counter()
        outcome = watch.run(params, ctx)
        watched = time.perf_counter() - started
        assert outcome.ok, outcome.summary
        return applied, watched, len(k.cluster.requests) - before


def proxy_costs() -> tuple[float, float, float]:
    """Median seconds (of 10) a step takes to get its read client: with a new ``kubectl
    proxy`` started for it (what every step paid before proxies were shared, and the first
    step of a context still pays), and with the proxy of an earlier step of the same
    context; and the median of 100 reads through it."""
    cold: list[float] = []
    warm: list[float] = []
    reads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, KubernetesDouble() as k:
        kubectl = Kubectl(str(k.kubeconfig(Path(tmp) / "kubeconfig")))
        for _ in range(10):
            stop_proxies()  # none running: this step starts one
            started = time.perf_counter()
            with kubectl.proxy():
                cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            with kubectl.proxy() as api:  # the next step of the context
                warm.append(time.perf_counter() - started)
                for _ in range(10):
                    started = time.perf_counter()
                    api.get("/apis/apps/v1/namespaces/default/deployments")
                    reads.append(time.perf_counter() - started)
        stop_proxies()
    return statistics.median(cold), statistics.median(warm), statistics.median(reads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ready", type=float, default=1.0, help="seconds until a pod is ready")
    parser.add_argument("--interval", type=float, default=0.5, help="watch poll interval")
    args = parser.parse_args()
    apply_s, all_s, reads = one_round(args.ready, args.interval, ["api", "web", "worker"])
    _, slowest_s, _ = one_round(args.ready, args.interval, ["api"])
    target = slowest_s + args.interval + 0.5
    print(f"k8s_apply of 10 objects:                {apply_s:.2f} s")
    print(f"k8s_rollout api, web, worker (parallel): {all_s:.2f} s")
    print(f"k8s_rollout api alone (the slowest):     {slowest_s:.2f} s")
    print(f"target for the parallel watch:          <= {target:.2f} s")
    print(f"API reads during the parallel watch:     {reads} ({reads / all_s:.1f}/s)")
    cold_s, warm_s, read_s = proxy_costs()
    print(f"a step's reads, a new kubectl proxy:     {cold_s * 1000:.0f} ms (median of 10)")
    print(f"a step's reads, its context's proxy:     {warm_s * 1000:.1f} ms (median of 10)")
    print(f"one read through it (median of 100):     {read_s * 1000:.1f} ms")
    return 0 if all_s <= target else 1


if __name__ == "__main__":
    sys.exit(main())
