"""Several worker processes on one PostgreSQL state database: when one dies (kill -9),
a live one takes over its releases from their last checkpoints, only one takes each
release, and no finished step runs again."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.databases import temporary_database
from helpers.processes import Processes, wait_for
from helpers.releases import write_runbook
from helpers.team import make_team, run_here
from helpers.topology import SLOW_STEP_RUNBOOK as RUNBOOK
from helpers.topology import effects
from shipcaptain.store import Store, open_store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

RELEASES = 4


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    with temporary_database("postgresql", tmp_path) as url:
        store = open_store(url)
        store.migrate()
        try:
            yield url, store
        finally:
            store.close()


@pytest.fixture
def procs() -> Iterator[Processes]:
    running = Processes()
    yield running
    running.stop_all()


def start_releases(env: dict[str, str], workdir: Path, count: int) -> None:
    """``count`` releases queued for the workers, in this process (``run_here``): the
    precondition; the workers and the kill are real processes."""
    runbook = write_runbook(workdir, RUNBOOK)
    for _ in range(count):
        queued = run_here(env, workdir, "release", "start", str(runbook), "--detach")
        assert queued.returncode == 0, queued.stderr


@pytest.mark.parametrize("workers", [2, 3])
def test_live_workers_take_over_the_releases_of_a_killed_one(
    state: tuple[str, Store], procs: Processes, tmp_path: Path, workers: int
) -> None:
    url, store = state
    env = {
        **os.environ,
        "SHIPCAPTAIN_DATABASE_URL": url,
        "SHIPCAPTAIN_TOKEN": make_team(url)["casey"],
        "SHIPCAPTAIN_HEARTBEAT_INTERVAL": "0.5",
        "SHIPCAPTAIN_TAKEOVER_AFTER": "3",
    }
    start_releases(env, tmp_path, RELEASES)
    # w0 starts first and takes the queued releases; the others join while it works
    running = {"w0": procs.start(["worker", "--id", "w0"], env, tmp_path)}

    def victim_busy() -> bool:
        mine = [r for r in store.list_releases() if r.executor_id == "w0"]
        return any(effects(tmp_path)[f"{r.id}-slow-start"] for r in mine)

    wait_for(victim_busy, timeout=60)
    for i in range(1, workers):
        running[f"w{i}"] = procs.start(["worker", "--id", f"w{i}"], env, tmp_path)
    wait_for(lambda: len(store.list_workers()) == workers, timeout=30)
    victims = {r.id for r in store.releases_run_by("w0")}
    running["w0"].send_signal(signal.SIGKILL)
    running["w0"].wait(timeout=10)
    at_kill = effects(tmp_path)  # w0's work stops here; the others take over 3 s later

    def all_succeeded() -> bool:
        return all(r.status == "succeeded" for r in store.list_releases())

    wait_for(all_succeeded, timeout=90)
    releases = store.list_releases()
    assert len(releases) == RELEASES
    done = effects(tmp_path)
    for r in releases:
        # those w0 had finished before the kill (a loaded machine starts workers slowly) are its
        assert r.executor_id != "w0" or r.id not in victims
        for step in ("a", "slow", "b"):
            assert done[f"{r.id}-{step}"] == 1, (r.id, step, done)
    for release_id in victims:
        takeovers = [
            e for e in store.list_events(release_id=release_id) if e.kind == "release.taken_over"
        ]
        assert len(takeovers) == 1, takeovers  # only one live worker took it
        assert takeovers[0].data["from"] == "w0"
        # the step that was running at the kill ran again; what had finished did not (a
        # release w0 had not brought to its slow step yet runs it once, on its new worker)
        interrupted = at_kill[f"{release_id}-slow-start"] and not at_kill[f"{release_id}-slow"]
        assert done[f"{release_id}-slow-start"] == (2 if interrupted else 1), (release_id, at_kill)
    for name, proc in running.items():
        if name != "w0":
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
