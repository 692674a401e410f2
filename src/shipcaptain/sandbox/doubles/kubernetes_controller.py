"""The double's controller: Deployment -> ReplicaSets -> pods, and what the kubelet reports.

Each tick it does what the Deployment controller, the ReplicaSet controller and the
kubelet would: a ReplicaSet per pod template (revision annotation, owner reference; an
old template coming back, as after ``rollout undo``, gets the next revision), a rolling
update (surge of 25%, old pods go only as new ones become available), pods whose status
follows the ``Behaviour`` of their image, and the Deployment's status with the
``Available`` and ``Progressing`` conditions (``ProgressDeadlineExceeded`` when nothing
progressed for ``spec.progressDeadlineSeconds``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shipcaptain.sandbox.doubles.kubernetes_api import RESOURCES, clone, now
from shipcaptain.sandbox.doubles.kubernetes_workloads import (
    WorkloadControllers,
    owner_ref,
    pod_ready,
)

if TYPE_CHECKING:
    from shipcaptain.sandbox.doubles.kubernetes import Cluster

Obj = dict[str, Any]
DEPLOY, RS, POD = RESOURCES["deployments"], RESOURCES["replicasets"], RESOURCES["pods"]
REVISION = "deployment.kubernetes.io/revision"


def _pruned(value: Any) -> Any:
    """Without nulls and empty maps (a template sent back by a client carries them)."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in out.items() if v != {}}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def template_hash(template: Obj) -> str:
    clean = _pruned(template)  # a new structure: the template is not changed
    clean.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:10]


def _by_owner(objects: list[Obj]) -> dict[str, list[Obj]]:
    """Objects by the uid of each owner their ``ownerReferences`` name, in list order."""
    owners: dict[str, list[Obj]] = {}
    for obj in objects:
        for ref in obj["metadata"].get("ownerReferences", []):
            owners.setdefault(ref.get("uid", ""), []).append(obj)
    return owners


def _revision(obj: Obj) -> int:
    return int(obj["metadata"].get("annotations", {}).get(REVISION, "0"))


class Controller:
    def __init__(self, cluster: Cluster, *, tick: float = 0.1) -> None:
        self.cluster = cluster
        self.tick = tick
        self._stop = threading.Event()
        self._hold = threading.Lock()
        self._thread = threading.Thread(
            target=self._loop, name="k8s-double-controller", daemon=True
        )
        self._born: dict[str, float] = {}  # pod uid -> monotonic time it was created
        self._progress: dict[str, tuple[str, float]] = {}  # deployment uid -> (signature, when)
        self.workloads = WorkloadControllers(
            cluster, template_hash, lambda uid: self._born.pop(uid, None)
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self._hold:
            yield

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            with self._hold, self.cluster.lock:
                self.step()

    # ---- one reconciliation pass ----

    def step(self) -> None:
        """One pass, under the cluster's lock. It reads the stored objects themselves and
        copies one only to change it (``put`` stores a copy): copying every object each
        pass, ten a second, was most of a sandbox world's Kubernetes CPU. The ReplicaSets
        and the pods are listed once and handed to their owners: each owner changes only
        what it owns, so a list made at the start of its loop is what it would have listed
        itself."""
        replicasets = _by_owner(self.cluster.stored(RS))
        for deploy in self.cluster.stored(DEPLOY):
            self._deployment(deploy, replicasets.get(deploy["metadata"]["uid"], []))
        pods = _by_owner(self.cluster.stored(POD))
        for rs in self.cluster.stored(RS):
            self._replicaset(rs, pods.get(rs["metadata"]["uid"], []))
        self.workloads.step()
        for pod in self.cluster.stored(POD):
            self._kubelet(pod)

    def _deployment(self, d: Obj, owned: list[Obj]) -> None:
        """``owned``: its ReplicaSets, as stored at the start of the pass."""
        spec = d["spec"]
        want = int(spec.get("replicas", 1))
        owned = [*owned]
        h = template_hash(spec["template"])
        new = next(
            (rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == h), None
        )
        top = max((_revision(rs) for rs in owned), default=0)
        if new is None:
            new = self._new_replicaset(d, h, top + 1)
            owned.append(new)
        elif _revision(new) < top:  # an old template is back (rollout undo): next revision
            new = clone(new)
            new["metadata"]["annotations"][REVISION] = str(top + 1)
            new = self.cluster.put(RS, new)
        old = [rs for rs in owned if rs["metadata"]["uid"] != new["metadata"]["uid"]]
        rev = str(_revision(new))
        if d["metadata"].get("annotations", {}).get(REVISION) != rev:
            d = clone(d)
            d["metadata"].setdefault("annotations", {})[REVISION] = rev
            d = self.cluster.put(DEPLOY, d)

        # rolling update: surge up to 25%, old pods go as new ones become available
        surge = max(1, math.ceil(want * 0.25))
        new_available = int(new.get("status", {}).get("availableReplicas", 0))
        old_total = sum(int(rs["spec"].get("replicas", 0)) for rs in old)
        new_want = min(want, max(int(new["spec"].get("replicas", 0)), want + surge - old_total))
        if int(new["spec"].get("replicas", 0)) != new_want:
            new = clone(new)
            new["spec"]["replicas"] = new_want
            new = self.cluster.put(RS, new)
        keep_old = max(0, want - new_available)
        for stored in sorted(old, key=_revision, reverse=True):
            n = min(int(stored["spec"].get("replicas", 0)), keep_old)
            keep_old -= n
            if int(stored["spec"].get("replicas", 0)) != n:
                rs = clone(stored)
                rs["spec"]["replicas"] = n
                self.cluster.put(RS, rs)
        self._status(d, new, old, want)

    def _new_replicaset(self, d: Obj, h: str, revision: int) -> Obj:
        template = copy.deepcopy(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
        selector = copy.deepcopy(d["spec"].get("selector", {}))
        selector.setdefault("matchLabels", {})["pod-template-hash"] = h
        rs = {
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "namespace": d["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {REVISION: str(revision)},
                "ownerReferences": owner_ref(d),
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        return self.cluster.put(RS, rs)

    def _status(self, d: Obj, new: Obj, old: list[Obj], want: int) -> None:
        def count(rs: Obj, key: str) -> int:
            return int(rs.get("status", {}).get(key, 0))

        everyone = [new, *old]
        status: Obj = {
            "observedGeneration": d["metadata"]["generation"],
            "replicas": sum(count(rs, "replicas") for rs in everyone),
            "updatedReplicas": count(new, "replicas"),
            "readyReplicas": sum(count(rs, "readyReplicas") for rs in everyone),
            "availableReplicas": sum(count(rs, "availableReplicas") for rs in everyone),
        }
        status["unavailableReplicas"] = max(0, want - status["availableReplicas"])
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        complete = (
            count(new, "replicas") == want
            and count(new, "availableReplicas") == want
            and status.get("replicas", 0) == want
        )
        uid = d["metadata"]["uid"]
        signature = json.dumps([d["metadata"]["generation"], status], sort_keys=True)
        seen = self._progress.get(uid)
        moment = time.monotonic()
        if seen is None or seen[0] != signature:
            self._progress[uid] = seen = (signature, moment)
        previous = {c["type"]: c for c in d.get("status", {}).get("conditions", [])}
        rs_name = new["metadata"]["name"]
        deadline = float(d["spec"].get("progressDeadlineSeconds", 600))
        if complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif moment - seen[1] > deadline:
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        max_unavailable = math.floor(want * 0.25)
        available = status.get("availableReplicas", 0) >= want - max_unavailable
        conditions = [
            self._condition(
                previous.get("Available"),
                "Available",
                ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
                if available
                else (
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                ),
            ),
            self._condition(previous.get("Progressing"), "Progressing", progressing),
        ]
        status["conditions"] = conditions
        self.cluster.set_status(DEPLOY, d["metadata"]["namespace"], d["metadata"]["name"], status)

    @staticmethod
    def _condition(before: Obj | None, kind: str, value: tuple[str, str, str]) -> Obj:
        status, reason, message = value
        same = before is not None and (before["status"], before["reason"]) == (status, reason)
        stamp = now()
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastUpdateTime": before["lastUpdateTime"] if same and before else stamp,
            "lastTransitionTime": before["lastTransitionTime"]
            if before is not None and before["status"] == status
            else stamp,
        }

    def _replicaset(self, rs: Obj, owned: list[Obj]) -> None:
        """``owned``: its pods, as stored at the start of the loop."""
        ns = rs["metadata"]["namespace"]
        pods = [*owned]
        want = int(rs["spec"].get("replicas", 0))
        for pod in pods[want:]:
            self.cluster.delete(POD, ns, pod["metadata"]["name"])
            self._born.pop(pod["metadata"]["uid"], None)
        for _ in range(want - len(pods)):
            template = copy.deepcopy(rs["spec"]["template"])
            pod = {
                "metadata": {
                    **template.get("metadata", {}),
                    "name": f"{rs['metadata']['name']}-{uuid.uuid4().hex[:5]}",
                    "namespace": ns,
                    "ownerReferences": owner_ref(rs),
                },
                "spec": template.get("spec", {}),
                "status": {"phase": "Pending"},
            }
            made = self.cluster.put(POD, pod)
            self._born[made["metadata"]["uid"]] = time.monotonic()
            pods.append(made)
        pods = pods[:want]
        ready = sum(1 for p in pods if pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"],
        }
        self.cluster.set_status(RS, ns, rs["metadata"]["name"], status)

    def _kubelet(self, pod: Obj) -> None:
        from shipcaptain.sandbox.doubles.kubernetes import Behaviour

        born = self._born.setdefault(pod["metadata"]["uid"], time.monotonic())
        age = time.monotonic() - born
        step = max(self.cluster.pod_ready_seconds, 0.01)
        statuses = []
        for container in pod["spec"].get("containers", []):
            image = container.get("image", "")
            behaviour = self.cluster.behaviour_of(image)
            digest = self.cluster.image_digest(image)
            repo = (
                image.split("@")[0].rsplit(":", 1)[0]
                if ":" in image.split("/")[-1]
                else image.split("@")[0]
            )
            cs: Obj = {
                "name": container.get("name", ""),
                "image": image,
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
            }
            if age < step or behaviour == Behaviour.STALL:
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            elif behaviour == Behaviour.BAD_IMAGE:
                reason = "ErrImagePull" if age < 3 * step else "ImagePullBackOff"
                message = (
                    "rpc error: code = NotFound desc = failed to pull and unpack image "
                    f'"{image}": not found'
                    if reason == "ErrImagePull"
                    else f'Back-off pulling image "{image}"'
                )
                cs["state"] = {"waiting": {"reason": reason, "message": message}}
            else:
                cs["imageID"] = f"{repo}@{digest}"
                restarts = int(age / step) - 1
                stamp = pod["metadata"]["creationTimestamp"]
                terminated = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": stamp}}
                if behaviour == Behaviour.CRASH_LOOP:
                    cs["restartCount"] = restarts
                    cs["lastState"] = terminated
                    cs["state"] = {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off restarting failed container {cs['name']}",
                        }
                    }
                elif behaviour == Behaviour.RESTARTS:
                    cs["restartCount"] = restarts
                    cs["lastState"] = terminated
                    cs["state"] = {"running": {"startedAt": stamp}}
                    cs["started"] = True
                    cs["ready"] = restarts % 2 == 1
                else:
                    cs["state"] = {"running": {"startedAt": stamp}}
                    cs["ready"] = cs["started"] = True
            statuses.append(cs)
        ready = bool(statuses) and all(cs["ready"] for cs in statuses)
        running = any("running" in cs["state"] for cs in statuses)
        status = {
            "phase": "Running" if running else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses,
        }
        old = pod.get("status", {})
        if old != status:
            self.cluster.set_status(
                POD, pod["metadata"]["namespace"], pod["metadata"]["name"], status
            )
