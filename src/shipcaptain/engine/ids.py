"""Predictable workflow ids: ``<release>`` for the first run, ``<release>.r<n>`` for a resume,
and ``<run workflow>/<step>`` for each step, so that replay is deterministic and other
processes (CLI, web) can address a step's gate without asking the engine."""

from __future__ import annotations

from typing import Any

ENGINE_VERSION = "shipcaptain-engine-6"
"""Pinned DBOS application version. Bump it when the workflow code changes in a way that
would replay differently (2: a step's preparation, first try and result share one
checkpoint; 3: the point-of-no-return warning before a contract migration, the
rollback flow; 4: the worker's start check, ``check_start``, before a run begins; 5: a
step that needs none of DBOS's primitives runs inside its release's workflow instead of
as a child workflow; 6: so does a ``wait``, timed from its try's recorded start, and the
release's start, failed and complete messages make no checkpoint when the runbook has no
template for them, and the release workflow's prologue, load, start check and start, is
one checkpoint, ``begin_release``). Releases
left in flight by an older version are not replayed by this one, and taking one over is
refused (:func:`older_engine`): cancel them and resume them (a new run that skips their
finished steps)."""

QUEUE_NAME = "shipcaptain-releases"
"""Releases and rollbacks handed to the workers: each worker runs a bounded number."""
CLOCK_QUEUE_NAME = "shipcaptain-clocks"
"""Incident SLA clocks: they mostly sleep, so they are no share of a worker's releases."""
CLOCK_PREFIX = "incident-clock/"
DECISION_TOPIC = "decision"


def dbos_url(state_url: str) -> str:
    """DBOS takes plain ``postgresql://`` or ``sqlite:///`` URLs. Here, not in the engine's
    module: a command that only hands DBOS a message or a release for the workers (``release
    approve``, ``release start --detach``, ``incident open``) imports DBOS's client, not the
    engine (~90 ms of CPU; issue 27)."""
    if state_url.startswith("postgres://"):
        return "postgresql://" + state_url[len("postgres://") :]
    return state_url.replace("postgresql+psycopg://", "postgresql://")


def release_workflow_id(release_id: str, run: int) -> str:
    return release_id if run <= 1 else f"{release_id}.r{run}"


def release_and_run_of(workflow_id: str) -> tuple[str, int]:
    """The release and run of any of its workflow ids (``<release>``, ``<release>.r<n>``,
    ``<release>[.r<n>]/<step>``, ``.../rollback/<key>``)."""
    head = workflow_id.split("/", 1)[0]
    release, dot, tail = head.rpartition(".r")
    return (release, int(tail)) if dot and tail.isdigit() else (head, 1)


def step_workflow_id(release_id: str, run: int, step_id: str, *, rollback: bool = False) -> str:
    base = release_workflow_id(release_id, run)
    return f"{base}/rollback/{step_id}" if rollback else f"{base}/{step_id}"


def clock_workflow_id(incident_id: str) -> str:
    """The SLA clock of an incident: one per incident, whoever queues it."""
    return f"{CLOCK_PREFIX}{incident_id}"


def older_engine(workflows: Any, release_id: str, run: int) -> str | None:
    """Why this engine cannot continue ``run`` of a release, or None when it can: a run
    started by another engine version (DBOS runs a workflow only in a process of the
    version that started it, and this version's release workflow calls other steps).
    ``workflows``: DBOS or a DBOSClient."""
    found = workflows.list_workflows(
        workflow_ids=[release_workflow_id(release_id, run)], load_input=False, load_output=False
    )
    version = found[0].app_version if found else None
    if version is None or version == ENGINE_VERSION:
        return None
    return (
        f"run {run} of release {release_id} was started by the engine version {version}, "
        f"and this shipcaptain runs {ENGINE_VERSION}, which cannot continue it: cancel it "
        f"(shipcaptain release cancel {release_id}) and resume it as a new run (shipcaptain "
        "release resume), which skips every step already done"
    )
