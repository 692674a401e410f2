"""Every durable function of the engine, registered in every engine process.

DBOS runs (and recovers) a workflow or a step by the name it was registered under, and a
function is registered when the module that defines it is imported. A process that never
imported a module cannot run the workflows it defines: it fails them with "... is not a
registered workflow function". So no module with a durable function may be imported lazily
by the code path that happens to need it first; this module imports them all, and
``engine.Engine`` imports this module, so every engine process (``shipcaptain worker``,
``shipcaptain server`` with workers, a CLI that runs a release itself, the demo) has them
all before it launches. ``tests/acceptance/test_topology.py`` starts a fresh worker and
checks its list against every ``@DBOS.workflow`` and ``@DBOS.step`` in the source.
"""

from __future__ import annotations

from shipcaptain.engine import (
    dbos_private,
    durable,
    gates,
    incident_clock,
    notify,
    rollback,
    steps,
    workflows,
)

#: the modules that define durable functions (a new one goes here)
MODULES = (durable, gates, incident_clock, notify, rollback, steps, workflows)

#: how DBOS names the workflow it wraps a step in when the step runs on its own
STEP_PREFIX = dbos_private.TEMP_PREFIX


def registered() -> tuple[list[str], list[str]]:
    """The durable functions registered in this process: (workflows, steps), sorted."""
    names = dbos_private.registered_names()
    found = [n for n in names if n.startswith("shipcaptain.") or n.startswith(STEP_PREFIX)]
    workflow_names = sorted(n for n in found if not n.startswith(STEP_PREFIX))
    step_names = sorted(n[len(STEP_PREFIX) :] for n in found if n.startswith(STEP_PREFIX))
    return workflow_names, [n for n in step_names if n.startswith("shipcaptain.")]


def summary() -> str:
    """One line for a worker's start: how many of each, and their names."""
    wfs, sts = registered()
    return (
        f"durable functions: {len(wfs)} workflows ({', '.join(wfs)}); "
        f"{len(sts)} steps ({', '.join(sts)})"
    )
