"""Predictable workflow ids: ``<release>`` for the first run, ``<release>.r<n>`` for a resume,
and ``<run workflow>/<step>`` for each step, so that replay is deterministic and other
processes (CLI, web) can address a step's gate without asking the engine."""

from __future__ import annotations

ENGINE_VERSION = "shipcaptain-engine-4"
"""Pinned DBOS application version. Bump it when the workflow code changes in a way that
would replay differently (2: a step's preparation, first try and result share one
checkpoint; 3: the point-of-no-return warning before a contract migration, the
rollback flow; 4: the worker's start check, ``check_start``, before a run begins).
Releases left in flight by an older version are not replayed by this one: cancel them
before the upgrade and resume them after it (a new run that skips their finished steps)."""

QUEUE_NAME = "shipcaptain-releases"
"""Releases and rollbacks handed to the workers: each worker runs a bounded number."""
CLOCK_QUEUE_NAME = "shipcaptain-clocks"
"""Incident SLA clocks: they mostly sleep, so they are no share of a worker's releases."""
CLOCK_PREFIX = "incident-clock/"
DECISION_TOPIC = "decision"


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
