"""Is a workload's rollout done, still going, or failed? Decided from the API's own fields,
for every kind ``kubectl rollout status`` supports. A workload is named ``api`` (a
Deployment) or ``kind/name`` (``deployment/api``, ``statefulset/db``, ``daemonset/agent``).

Done, as ``kubectl rollout status`` decides it, once the controller has observed the
latest generation (``status.observedGeneration >= metadata.generation``):

- Deployment: every replica updated (``updatedReplicas == spec.replicas``), no old
  replica left (``replicas == updatedReplicas``), every updated replica available.
- StatefulSet (``RollingUpdate``): ``readyReplicas == spec.replicas``, and with a
  ``partition`` at least ``replicas - partition`` updated, else
  ``currentRevision == updateRevision``.
- DaemonSet (``RollingUpdate``): ``updatedNumberScheduled`` and ``numberAvailable`` reach
  ``desiredNumberScheduled``.

Failed, where kubectl would keep waiting: a Deployment's ``Progressing`` condition says
``ProgressDeadlineExceeded``; a container of a new pod (the new ReplicaSet's, the
StatefulSet's ``updateRevision``, the DaemonSet's current template) waits in
CrashLoopBackOff, ImagePullBackOff, ErrImagePull (or cannot be created); or a new pod's
container restarted ``max_restarts`` times or more. A StatefulSet or DaemonSet with the
``OnDelete`` strategy has no rollout to watch (kubectl refuses it too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipcaptain.integrations.kubernetes import KubeApi, KubernetesError, label_selector

Obj = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"
FAILING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


@dataclass(frozen=True)
class RolloutState:
    deployment: str
    done: bool = False
    failure: str | None = None
    line: str = ""  # "api 1/2 updated, 1 available"


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


KINDS = {
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "statefulsets": "StatefulSet",
    "sts": "StatefulSet",
    "daemonset": "DaemonSet",
    "daemonsets": "DaemonSet",
    "ds": "DaemonSet",
}


def workload(ref: str) -> tuple[str, str]:
    """(kind, name) of ``api``, ``deployment/api``, ``statefulset/db``, ``ds/agent``..."""
    kind, _, name = ref.rpartition("/")
    if not kind:
        return "Deployment", name
    if kind.lower() not in KINDS:
        raise KubernetesError(
            f"{ref}: kubectl rollout status supports Deployments, StatefulSets and DaemonSets"
        )
    return KINDS[kind.lower()], name


def observe(api: KubeApi, namespace: str, ref: str, *, max_restarts: int = 3) -> RolloutState:
    kind, name = workload(ref)
    obj = api.workload(namespace, kind, name)
    if obj is None:
        return RolloutState(ref, failure=f"{kind.lower()} {namespace}/{name} does not exist")
    if kind == "StatefulSet":
        return _statefulset(api, obj, ref, namespace, max_restarts)
    if kind == "DaemonSet":
        return _daemonset(api, obj, ref, namespace, max_restarts)
    return _deployment(api, obj, ref, namespace, max_restarts)


def _not_observed(obj: Obj) -> bool:
    status = obj.get("status") or {}
    generation = _int(obj.get("metadata", {}).get("generation"))
    observed = _int(status.get("observedGeneration"))
    return observed == 0 or observed < generation


def _strategy_problem(obj: Obj, ref: str) -> RolloutState | None:
    strategy = (obj.get("spec", {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        return RolloutState(
            ref,
            failure=f"{ref}: rollout status is only available for the RollingUpdate strategy "
            f"(this one uses {strategy})",
        )
    return None


def _statefulset(
    api: KubeApi, sts: Obj, ref: str, namespace: str, max_restarts: int
) -> RolloutState:
    refused = _strategy_problem(sts, ref)
    if refused is not None:
        return refused
    if _not_observed(sts):
        return RolloutState(ref, line=f"{ref} waiting for the controller to see the new spec")
    spec, status = sts.get("spec", {}), sts.get("status", {})
    want = _int(spec.get("replicas", 1))
    ready, updated = _int(status.get("readyReplicas")), _int(status.get("updatedReplicas"))
    revision = status.get("updateRevision", "")
    line = f"{ref} {updated}/{want} updated, {ready} ready"
    partition = _int((spec.get("updateStrategy", {}).get("rollingUpdate") or {}).get("partition"))
    done = ready >= want and (
        updated >= want - partition if partition else revision == status.get("currentRevision")
    )
    if done:
        return RolloutState(ref, done=True, line=f"{line}, done at revision {revision}")
    selector = label_selector(spec.get("selector") or {})
    new = [
        p
        for p in api.pods(namespace, selector)
        if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == revision
    ]
    problem = _pods_problem(new, max_restarts)
    return (
        RolloutState(ref, failure=f"{ref}: {problem}", line=line)
        if problem
        else RolloutState(ref, line=line)
    )


def _daemonset(api: KubeApi, ds: Obj, ref: str, namespace: str, max_restarts: int) -> RolloutState:
    refused = _strategy_problem(ds, ref)
    if refused is not None:
        return refused
    if _not_observed(ds):
        return RolloutState(ref, line=f"{ref} waiting for the controller to see the new spec")
    status = ds.get("status", {})
    want = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    line = f"{ref} {updated}/{want} updated, {available} available"
    if updated >= want and available >= want:
        return RolloutState(ref, done=True, line=f"{line}, done")
    spec = ds.get("spec", {})
    images = _images(spec.get("template", {}))
    new = [
        p
        for p in api.pods(namespace, label_selector(spec.get("selector") or {}))
        if _images(p) == images
    ]
    problem = _pods_problem(new, max_restarts)
    return (
        RolloutState(ref, failure=f"{ref}: {problem}", line=line)
        if problem
        else RolloutState(ref, line=line)
    )


def _images(pod_or_template: Obj) -> list[str]:
    return [c.get("image", "") for c in pod_or_template.get("spec", {}).get("containers", [])]


def _deployment(api: KubeApi, d: Obj, name: str, namespace: str, max_restarts: int) -> RolloutState:
    meta, spec, status = d.get("metadata", {}), d.get("spec", {}), d.get("status", {})
    want = _int(spec.get("replicas", 1))
    updated = _int(status.get("updatedReplicas"))
    total = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    line = f"{name} {updated}/{want} updated, {available} available"
    if _int(status.get("observedGeneration")) < _int(meta.get("generation")):
        return RolloutState(name, line=f"{name} waiting for the controller to see the new spec")
    complete = updated >= want and total <= updated and available >= updated
    if complete:
        return RolloutState(
            name, done=True, line=f"{name} {updated}/{want} updated, {available} available, done"
        )
    problem = _new_pods_problem(api, d, namespace, max_restarts)
    if problem:
        return RolloutState(name, failure=f"{name}: {problem}", line=line)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            deadline = spec.get("progressDeadlineSeconds", 600)
            return RolloutState(
                name,
                failure=f"{name}: ProgressDeadlineExceeded: no progress for {deadline}s "
                f"(spec.progressDeadlineSeconds): {cond.get('message', '')}".rstrip(": "),
                line=line,
            )
    if total > updated:
        line += f", {total - updated} old pending termination"
    return RolloutState(name, line=line)


def _new_pods_problem(api: KubeApi, d: Obj, namespace: str, max_restarts: int) -> str | None:
    meta = d.get("metadata", {})
    spec = d.get("spec", {})
    revision = (meta.get("annotations") or {}).get(REVISION)
    selector = label_selector(spec.get("selector") or {})
    uid = meta.get("uid")
    new_rs = [
        rs
        for rs in api.replicasets(namespace, selector)
        if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences", []))
        and rs["metadata"].get("annotations", {}).get(REVISION) == revision
    ]
    if not new_rs:
        return None
    template_hash = new_rs[0]["metadata"].get("labels", {}).get("pod-template-hash")
    return _pods_problem(api.pods(namespace, f"{selector},pod-template-hash={template_hash}"),
                         max_restarts)  # fmt: skip


def _pods_problem(pods: list[Obj], max_restarts: int) -> str | None:
    """Why these (new) pods will not become ready on their own, if they will not."""
    for pod in pods:
        status = pod.get("status", {})
        pod_name = pod["metadata"]["name"]
        for cs in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in FAILING_REASONS:
                message = waiting.get("message", "")
                return (
                    f"pod {pod_name} container {cs.get('name')} is in {reason} "
                    f"(image {cs.get('image')})" + (f": {message}" if message else "")
                )
            if _int(cs.get("restartCount")) >= max_restarts:
                return (
                    f"pod {pod_name} container {cs.get('name')} restarted "
                    f"{cs.get('restartCount')} times (limit {max_restarts})"
                )
    return None


@dataclass(frozen=True)
class WatchResult:
    states: dict[str, RolloutState]
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.done for s in self.states.values())

    @property
    def failures(self) -> list[str]:
        return [s.failure for s in self.states.values() if s.failure]


def watch(
    api: KubeApi,
    namespace: str,
    deployments: list[str],
    *,
    timeout: float,
    interval: float = 1.0,
    max_restarts: int = 3,
    progress: Callable[[str], None] = lambda _line: None,
) -> WatchResult:
    """Watch every deployment in its own thread until all are done, one fails, or time is up.

    The release waits as long as the slowest rollout, not the sum of them."""
    started = time.monotonic()
    deadline = started + timeout
    states = {name: RolloutState(name, line=f"{name} waiting") for name in deployments}
    lock = threading.Lock()
    changed = threading.Event()
    stop = threading.Event()

    def follow(name: str) -> None:
        while not stop.is_set():
            try:
                state = observe(api, namespace, name, max_restarts=max_restarts)
            except KubernetesError as exc:  # a blip of the API: say so and try again
                state = RolloutState(name, line=f"{name} could not be read: {exc}")
            with lock:
                states[name] = state
            changed.set()
            if state.done or state.failure:
                return
            stop.wait(interval)

    threads = [threading.Thread(target=follow, args=(n,), daemon=True) for n in deployments]
    for thread in threads:
        thread.start()
    shown = ""
    timed_out = False
    try:
        while True:
            changed.wait(min(interval, max(deadline - time.monotonic(), 0.01)))
            changed.clear()
            with lock:
                snapshot = dict(states)
            line = "; ".join(s.line for s in snapshot.values())
            if line != shown:
                progress(line)
                shown = line
            if any(s.failure for s in snapshot.values()) or all(s.done for s in snapshot.values()):
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=api.http.timeout.read or 10.0)
    with lock:
        final = dict(states)
    return WatchResult(final, timed_out, time.monotonic() - started)
