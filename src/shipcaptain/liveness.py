"""Whether anybody runs a release: the one computation behind every view of a release
(``release show`` and its JSON, the API's release detail, the dashboard's release page).

Every engine process says it is alive every ``heartbeat_interval`` seconds. A process whose
last heartbeat is older than ``takeover_after`` seconds, or that no longer exists on this
host, has stopped; a live worker (kind ``worker``) takes its releases over, and without one
the release waits until someone resumes it or starts a worker. The views say which, and what
to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timedelta

from shipcaptain.records import EngineHealth, EventRecord, ReleaseRecord, WorkerRecord

__all__ = ["EngineHealth", "engine_health", "is_alive", "pid_exists"]

FINISHED = frozenset({"succeeded", "failed", "cancelled", "rolled_back"})


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a killed child that was not reaped yet is a zombie: gone for our purposes
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def is_alive(worker: WorkerRecord, now: datetime, takeover_after: float) -> bool:
    """A heartbeat within ``takeover_after`` seconds, and (on this host) a process that
    still exists: a kill -9 on this host shows at once, elsewhere after the window."""
    if now - worker.heartbeat_at >= timedelta(seconds=takeover_after):
        return False
    import socket  # here: `release list` and the other reads without workers never need it

    return worker.hostname != socket.gethostname() or pid_exists(worker.pid)


def engine_health(
    release: ReleaseRecord,
    workers: Iterable[WorkerRecord],
    *,
    now: datetime,
    takeover_after: float,
    taken_over: EventRecord | None = None,
) -> EngineHealth:
    """``taken_over``: the ``release.taken_over`` event of a release a worker took over
    that still waits on the release queue for a worker with room (``awaiting_pickup``):
    then the release is queued, whatever its status says, and nobody runs it yet."""
    known = {w.executor_id: w for w in workers}
    live = sorted(
        w.executor_id
        for w in known.values()
        if w.kind == "worker" and is_alive(w, now, takeover_after)
    )
    runner = known.get(release.executor_id or "")
    beat = runner.heartbeat_at if runner is not None else None
    if release.status in FINISHED:
        return EngineHealth("finished", release.executor_id, beat, live, "")
    start_one = "start one with `shipcaptain worker`"
    if taken_over is not None:
        gone, by = taken_over.data.get("from"), taken_over.data.get("to")
        then = (
            f"the first live worker ({', '.join(live)}) with room takes it; each runs up "
            "to --concurrency releases at once"
            if live
            else f"no worker is alive to take it: {start_one}, or run it here with "
            f"`shipcaptain release resume {release.id}`"
        )
        if taken_over.data.get("handed"):
            message = (
                f"queued, waiting for a worker slot: its process {gone} handed it to the "
                f"workers at {taken_over.at:%H:%M:%S}Z while it waited for people; {then}"
            )
            return EngineHealth("queued", None, None, live, message)
        message = (
            f"queued, waiting for a worker slot: {by} took it over from the stopped process "
            f"{gone} at {taken_over.at:%H:%M:%S}Z and put it back on the release queue; {then}"
        )
        return EngineHealth("queued", by, None, live, message)
    if release.executor_id is None:
        waiting = (
            ""
            if live
            else "queued, and no worker is alive to take it: "
            f"{start_one}, or run it here with `shipcaptain release resume {release.id}`"
        )
        return EngineHealth("queued", None, None, live, waiting)
    if runner is not None and is_alive(runner, now, takeover_after):
        return EngineHealth("running", release.executor_id, beat, live, "")
    since = f"since {beat:%H:%M:%S}Z" if beat is not None else "ever"
    others = [w for w in live if w != release.executor_id]
    then = (
        f"a live worker ({', '.join(others)}) takes it over within {takeover_after:g}s "
        "of that heartbeat"
        if others
        else f"no worker is alive to take it over: {start_one}, or run it here with "
        f"`shipcaptain release resume {release.id}`"
    )
    message = (
        f"nobody runs this release: its process {release.executor_id} has sent no "
        f"heartbeat {since} and has stopped; {then}"
    )
    return EngineHealth("stopped", release.executor_id, beat, live, message)
