"""Is a Deployment's rollout done, still going, or failed? Decided from the API's own fields.

Done, as ``kubectl rollout status`` decides it: the controller has observed the latest
generation (``status.observedGeneration >= metadata.generation``), every replica is
updated (``updatedReplicas == spec.replicas``), no old replica is left
(``replicas == updatedReplicas``) and every updated replica is available
(``availableReplicas == updatedReplicas``).

Failed, where kubectl would keep waiting: the ``Progressing`` condition says
``ProgressDeadlineExceeded``; a container of the new ReplicaSet's pods waits in
CrashLoopBackOff, ImagePullBackOff, ErrImagePull (or cannot be created); or a new pod's
container restarted ``max_restarts`` times or more.
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


def observe(api: KubeApi, namespace: str, name: str, *, max_restarts: int = 3) -> RolloutState:
    d = api.deployment(namespace, name)
    if d is None:
        return RolloutState(name, failure=f"deployment {namespace}/{name} does not exist")
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
    pods = api.pods(namespace, f"{selector},pod-template-hash={template_hash}")
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
