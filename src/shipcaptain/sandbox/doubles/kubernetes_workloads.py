"""The StatefulSet and DaemonSet controllers of the double, moving the status fields the
way the real controllers do (what ``kubectl rollout status`` reads).

StatefulSet (``RollingUpdate``): pods ``<name>-0..n-1`` labelled with
``controller-revision-hash``; with ``OrderedReady`` (the default) a pod is made only
once the pods before it are ready; an update replaces one pod at a time, highest ordinal
first, down to ``partition``. Status: ``observedGeneration``, ``replicas``,
``readyReplicas``, ``availableReplicas``, ``currentReplicas``, ``updatedReplicas``,
``currentRevision`` (becomes ``updateRevision`` when every pod is updated and ready).

DaemonSet (``RollingUpdate``, ``maxUnavailable`` 1 by default): a pod per node whose
labels match ``nodeSelector``; an update deletes old pods while fewer than
``maxUnavailable`` are unavailable. Status: ``observedGeneration``,
``desiredNumberScheduled``, ``currentNumberScheduled``, ``updatedNumberScheduled``,
``numberReady``, ``numberAvailable``, ``numberUnavailable``, ``numberMisscheduled``.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

from shipcaptain.sandbox.doubles.kubernetes_api import RESOURCES

if TYPE_CHECKING:
    from shipcaptain.sandbox.doubles.kubernetes import Cluster

Obj = dict[str, Any]
STS, DS = RESOURCES["statefulsets"], RESOURCES["daemonsets"]
POD, NODE = RESOURCES["pods"], RESOURCES["nodes"]
HASH = "controller-revision-hash"


def owner_ref(owner: Obj) -> list[Obj]:
    return [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def owned_by(obj: Obj, owner: Obj) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences", [])
    )


def pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _pod(owner: Obj, name: str, revision: str, **spec: Any) -> Obj:
    template = copy.deepcopy(owner["spec"]["template"])
    meta = template.get("metadata") or {}
    return {
        "metadata": {
            **meta,
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(meta.get("labels") or {}), HASH: revision},
            "ownerReferences": owner_ref(owner),
        },
        "spec": {**template.get("spec", {}), **spec},
        "status": {"phase": "Pending"},
    }


def _scaled(value: Any, total: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(total * int(value[:-1]) / 100)
    return int(value)


class WorkloadControllers:
    def __init__(self, cluster: Cluster, template_hash: Any, forget: Any) -> None:
        self.cluster = cluster
        self.template_hash = template_hash
        self.forget = forget  # called with a deleted pod's uid

    def step(self) -> None:
        for sts in self.cluster.list(STS):
            self.statefulset(sts)
        for ds in self.cluster.list(DS):
            self.daemonset(ds)

    def _delete(self, pod: Obj) -> None:
        self.cluster.delete(POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.forget(pod["metadata"]["uid"])

    def statefulset(self, sts: Obj) -> None:
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        spec = sts["spec"]
        want = int(spec.get("replicas", 1))
        revision = f"{name}-{self.template_hash(spec['template'])}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        rolling = spec.get("updateStrategy", {}).get("rollingUpdate") or {}
        partition = int(rolling.get("partition", 0))
        pods = {
            int(p["metadata"]["name"].rsplit("-", 1)[1]): p
            for p in self.cluster.list(POD, ns)
            if owned_by(p, sts)
        }
        for ordinal in sorted(pods, reverse=True):  # scale down, highest first
            if ordinal >= want:
                self._delete(pods.pop(ordinal))
                if ordered:
                    break
        for ordinal in range(want):  # scale up, in order
            if ordinal in pods:
                if ordered and not pod_ready(pods[ordinal]):
                    break
                continue
            pod = _pod(sts, f"{name}-{ordinal}", revision, hostname=f"{name}-{ordinal}")
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = f"{name}-{ordinal}"
            pods[ordinal] = self.cluster.put(POD, pod)
            if ordered:
                break
        everyone_ready = len(pods) == want and all(pod_ready(p) for p in pods.values())
        if everyone_ready:  # rolling update: one pod at a time, highest ordinal first
            for ordinal in sorted(pods, reverse=True):
                if (
                    ordinal >= partition
                    and pods[ordinal]["metadata"]["labels"].get(HASH) != revision
                ):
                    self._delete(pods.pop(ordinal))
                    break
        status = sts.get("status") or {}
        updated = sum(1 for p in pods.values() if p["metadata"]["labels"].get(HASH) == revision)
        current = status.get("currentRevision") or revision
        if updated == want and everyone_ready:
            current = revision
        ready = sum(1 for p in pods.values() if pod_ready(p))
        self.cluster.set_status(
            STS,
            ns,
            name,
            {
                "observedGeneration": sts["metadata"]["generation"],
                "replicas": len(pods),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "currentReplicas": sum(
                    1 for p in pods.values() if p["metadata"]["labels"].get(HASH) == current
                ),
                "updatedReplicas": updated,
                "currentRevision": current,
                "updateRevision": revision,
                "collisionCount": 0,
            },
        )

    def daemonset(self, ds: Obj) -> None:
        ns, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        spec = ds["spec"]
        template_spec = spec["template"].get("spec", {})
        selector = template_spec.get("nodeSelector") or {}
        nodes = [
            n["metadata"]["name"]
            for n in self.cluster.list(NODE)
            if all(n["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        ]
        revision = self.template_hash(spec["template"])
        pods = [p for p in self.cluster.list(POD, ns) if owned_by(p, ds)]
        on_node = {p["spec"].get("nodeName"): p for p in pods}
        for pod in pods:  # misscheduled: the node is gone or no longer matches
            if pod["spec"].get("nodeName") not in nodes:
                self._delete(pod)
                on_node.pop(pod["spec"].get("nodeName"), None)
        for node in nodes:
            if node not in on_node:
                pod = _pod(ds, f"{name}-{self.template_hash({'node': node})[:5]}", revision,
                           nodeName=node)  # fmt: skip
                on_node[node] = self.cluster.put(POD, pod)
        rolling = spec.get("updateStrategy", {}).get("rollingUpdate") or {}
        max_unavailable = max(1, _scaled(rolling.get("maxUnavailable"), len(nodes), 1))
        unavailable = sum(1 for p in on_node.values() if not pod_ready(p))
        for node, pod in sorted(on_node.items()):
            if unavailable >= max_unavailable:
                break
            if pod["metadata"]["labels"].get(HASH) != revision:
                self._delete(pod)
                del on_node[node]
                unavailable += 1
        ready = sum(1 for p in on_node.values() if pod_ready(p))
        status = {
            "observedGeneration": ds["metadata"]["generation"],
            "desiredNumberScheduled": len(nodes),
            "currentNumberScheduled": len(on_node),
            "updatedNumberScheduled": sum(
                1 for p in on_node.values() if p["metadata"]["labels"].get(HASH) == revision
            ),
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": len(nodes) - ready,
            "numberMisscheduled": 0,
        }
        self.cluster.set_status(DS, ns, name, {k: v for k, v in status.items() if v or k in (
            "observedGeneration", "desiredNumberScheduled", "numberMisscheduled")})  # fmt: skip
