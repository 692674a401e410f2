"""The rollout decision for StatefulSets and DaemonSets, on the status fields kubectl's
``rollout status`` reads (one case per row: what the API says -> done, waiting, failed)."""

from __future__ import annotations

from typing import Any

import pytest

from shipcaptain.integrations.k8s_rollout_status import observe, workload
from shipcaptain.integrations.kubernetes import KubernetesError

Obj = dict[str, Any]


class FakeApi:
    """The two reads ``observe`` makes of a StatefulSet or DaemonSet."""

    def __init__(self, obj: Obj, pods: list[Obj] | None = None) -> None:
        self.obj, self._pods = obj, pods or []

    def workload(self, namespace: str, kind: str, name: str) -> Obj | None:
        return self.obj if self.obj["kind"] == kind else None

    def pods(self, namespace: str, selector: str) -> list[Obj]:
        return self._pods


def sts(status: Obj, *, generation: int = 2, partition: int | None = None, **spec: Any) -> Obj:
    strategy: Obj = {"type": spec.pop("strategy", "RollingUpdate")}
    if partition is not None:
        strategy["rollingUpdate"] = {"partition": partition}
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": generation},
        "spec": {"replicas": 3, "updateStrategy": strategy, "selector": {}, **spec},
        "status": status,
    }


def ds(status: Obj, *, generation: int = 2) -> Obj:
    return {
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "generation": generation},
        "spec": {"updateStrategy": {"type": "RollingUpdate"}, "selector": {}, "template": {}},
        "status": status,
    }


DONE_STS = {"observedGeneration": 2, "readyReplicas": 3, "updatedReplicas": 3,
            "currentRevision": "db-2", "updateRevision": "db-2"}  # fmt: skip


@pytest.mark.parametrize(
    ("obj", "done", "says"),
    [
        (sts(DONE_STS), True, "done at revision db-2"),
        (sts({**DONE_STS, "observedGeneration": 1}), False, "waiting for the controller"),
        (sts({**DONE_STS, "readyReplicas": 2}), False, "3/3 updated, 2 ready"),
        (sts({**DONE_STS, "updatedReplicas": 1, "currentRevision": "db-1"}), False, "1/3"),
        (
            sts({**DONE_STS, "updatedReplicas": 1, "currentRevision": "db-1"}, partition=2),
            True,
            "done",
        ),
        (
            sts({**DONE_STS, "updatedReplicas": 0, "currentRevision": "db-1"}, partition=2),
            False,
            "0/3",
        ),
        (
            ds(
                {
                    "observedGeneration": 2,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 3,
                }
            ),
            True,
            "3/3 updated, 3 available, done",
        ),
        (
            ds(
                {
                    "observedGeneration": 2,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 2,
                    "numberAvailable": 3,
                }
            ),
            False,
            "2/3 updated",
        ),
        (
            ds(
                {
                    "observedGeneration": 2,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 2,
                }
            ),
            False,
            "2 available",
        ),
        (
            ds(
                {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 3,
                }
            ),
            False,
            "waiting for the controller",
        ),
    ],
)
def test_the_rollout_decision(obj: Obj, done: bool, says: str) -> None:
    ref = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
    state = observe(FakeApi(obj), "ns", ref)  # type: ignore[arg-type]
    assert state.done is done
    assert state.failure is None
    assert says in state.line


def test_on_delete_has_no_rollout_to_watch() -> None:
    state = observe(FakeApi(sts(DONE_STS, strategy="OnDelete")), "ns", "sts/db")  # type: ignore[arg-type]
    assert state.failure == (
        "sts/db: rollout status is only available for the RollingUpdate strategy "
        "(this one uses OnDelete)"
    )


def test_a_new_pod_in_crash_loop_fails_the_statefulset_at_once() -> None:
    pod = {
        "metadata": {"name": "db-2", "labels": {"controller-revision-hash": "db-2"}},
        "status": {
            "containerStatuses": [
                {
                    "name": "db",
                    "image": "pg:2",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                }
            ]
        },
    }
    old = {**pod, "metadata": {"name": "db-1", "labels": {"controller-revision-hash": "db-1"}}}
    status = {**DONE_STS, "readyReplicas": 2, "currentRevision": "db-1", "updatedReplicas": 1}
    state = observe(FakeApi(sts(status), [old, pod]), "ns", "statefulset/db")  # type: ignore[arg-type]
    assert (
        state.failure == "statefulset/db: pod db-2 container db is in CrashLoopBackOff (image pg:2)"
    )


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("api", ("Deployment", "api")),
        ("deploy/api", ("Deployment", "api")),
        ("StatefulSet/db", ("StatefulSet", "db")),
        ("ds/agent", ("DaemonSet", "agent")),
    ],
)
def test_workload_references(ref: str, expected: tuple[str, str]) -> None:
    assert workload(ref) == expected


def test_a_kind_rollout_status_does_not_know_is_refused() -> None:
    with pytest.raises(KubernetesError, match="cronjob/backup: kubectl rollout status supports"):
        workload("cronjob/backup")
