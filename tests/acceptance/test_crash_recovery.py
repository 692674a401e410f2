"""kill -9 of the process running a release: it continues from its last checkpoint and
no finished step runs again (side effects are counted in a file)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.processes import Processes, wait_for
from helpers.releases import write_runbook
from helpers.team import make_team
from shipcaptain.store import Store

pytestmark = pytest.mark.slow

# slow needs side too: when its command is seen running (the moment of the kill), side and
# b are recorded as finished, not merely run (side beside b, then slow: under load, side's
# command could end before slow started, its result unrecorded at the kill, and run again)
RUNBOOK = """
    name: crashy
    phases:
      - id: one
        steps:
          - {id: a, action: shell, with: {command: "echo a >> effects"}}
          - {id: b, action: shell, needs: [a], with: {command: "echo b >> effects"}}
          - {id: slow, action: shell, needs: [b, side],
             with: {command: "echo slow-start >> effects; sleep 3; echo slow >> effects"}}
          - {id: side, action: shell, needs: [a], with: {command: "echo side >> effects"}}
      - id: two
        steps:
          - {id: c, action: shell, with: {command: "echo c >> effects"}}
"""


@pytest.fixture
def tokens(database_url: str) -> dict[str, str]:
    return make_team(database_url)


@pytest.fixture
def env(database_url: str, tmp_path: Path, tokens: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "SHIPCAPTAIN_DATABASE_URL": database_url,
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
        "SHIPCAPTAIN_TOKEN": tokens["casey"],
    }


@pytest.fixture
def procs() -> Iterator[Processes]:
    running = Processes()
    yield running
    running.stop_all()


def only_release(store: Store) -> str:
    wait_for(lambda: len(store.list_releases()) == 1)
    return store.list_releases()[0].id


def effects(workdir: Path) -> list[str]:
    path = workdir / "effects"
    return path.read_text().split() if path.exists() else []


def test_kill_9_then_release_resume_repeats_no_finished_step(
    env: dict[str, str], store: Store, procs: Processes, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, RUNBOOK)
    first = procs.start(["release", "start", str(runbook), "--json"], env, tmp_path)
    release_id = only_release(store)
    wait_for(lambda: "slow-start" in effects(tmp_path))  # the command itself is running
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    before = effects(tmp_path)
    assert before.count("slow-start") == 1
    assert "slow" not in before

    resumed = procs.start(["release", "resume", release_id, "--json"], env, tmp_path)
    out, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err.decode()
    assert b'"status": "succeeded"' in out

    done = effects(tmp_path)
    # finished before the crash: exactly once
    for step in ("a", "b", "side"):
        assert done.count(step) == 1, done
    # the step that was running at the crash ran again (its command cannot tell it is done)
    assert done.count("slow-start") == 2
    assert done.count("slow") == 1
    assert done.count("c") == 1
    kinds = [(e.kind, e.step_id) for e in store.list_events(release_id=release_id)]
    assert ("step.recovered", "slow") in kinds
    assert ("release.taken_over", None) in kinds
    assert store.get_release(release_id).status == "succeeded"


def test_a_restarted_worker_finishes_its_releases(
    env: dict[str, str], store: Store, procs: Processes, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, RUNBOOK)
    queued = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipcaptain",
            "release",
            "start",
            str(runbook),
            "--detach",
            "--json",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert b'"queued"' in queued.stdout
    release_id = only_release(store)
    worker = procs.start(["worker", "--id", "w1"], env, tmp_path)
    wait_for(lambda: "slow-start" in effects(tmp_path))  # the command itself is running
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert store.get_release(release_id).status == "running"

    restarted = procs.start(["worker", "--id", "w1"], env, tmp_path)
    wait_for(lambda: store.get_release(release_id).status == "succeeded", timeout=60)
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(timeout=30)
    done = effects(tmp_path)
    for step in ("a", "b", "side", "slow", "c"):
        assert done.count(step) == 1, done
    assert done.count("slow-start") == 2


ROLLBACK_RUNBOOK = """
    name: crashy-rollback
    roles:
      release_captain: {title: Release Captain, members: [casey]}
      oncall_sre: {title: On-Call SRE, members: [sam]}
    phases:
      - id: one
        steps:
          - id: a
            action: shell
            with: {command: "echo a >> effects"}
            undo: {action: shell, with: {command: "echo undo-a >> effects"}}
          - id: b
            action: shell
            needs: [a]
            with: {command: "echo b >> effects"}
            undo:
              action: shell
              with: {command: "echo undo-b-start >> effects; sleep 3; echo undo-b >> effects"}
          - id: c
            action: shell
            needs: [b]
            with: {command: "echo c >> effects"}
            undo: {action: shell, with: {command: "echo undo-c >> effects"}}
"""


def test_kill_9_of_the_worker_in_the_middle_of_a_rollback(
    env: dict[str, str],
    tokens: dict[str, str],
    store: Store,
    procs: Processes,
    tmp_path: Path,
) -> None:
    runbook = write_runbook(tmp_path, ROLLBACK_RUNBOOK)
    started = procs.start(["release", "start", str(runbook), "--json"], env, tmp_path)
    started.communicate(timeout=90)
    release_id = only_release(store)
    assert store.get_release(release_id).status == "succeeded"

    worker = procs.start(["worker", "--id", "w1"], env, tmp_path)
    asked = procs.start(
        ["release", "rollback", release_id, "--reason", "errors up", "--detach"], env, tmp_path
    )
    assert asked.wait(timeout=60) == 0
    wait_for(
        lambda: any(
            g.step_id == "rollback/approval"
            for g in store.list_gates(status="waiting", release_id=release_id)
        ),
        timeout=60,
    )
    approve = procs.start(
        ["release", "approve", release_id, "rollback/approval"],
        {**env, "SHIPCAPTAIN_TOKEN": tokens["sam"]},
        tmp_path,
    )
    assert approve.wait(timeout=60) == 0
    wait_for(lambda: "undo-b-start" in effects(tmp_path), timeout=60)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    assert store.get_release(release_id).status == "rolling_back"

    restarted = procs.start(["worker", "--id", "w1"], env, tmp_path)
    wait_for(lambda: store.get_release(release_id).status == "rolled_back", timeout=90)
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(timeout=30)
    done = effects(tmp_path)
    # finished before the crash: exactly once; the undo running at the crash ran again
    assert done.count("undo-c") == 1, done
    assert done.count("undo-b-start") == 2, done
    assert done.count("undo-b") == 1, done
    assert done.count("undo-a") == 1, done
    assert done.index("undo-c") < done.index("undo-b") < done.index("undo-a")
    # one approval, one announcement
    assert len(store.list_decisions(release_id, "rollback/approval")) == 1
    kinds = [e.kind for e in store.list_events(release_id=release_id)]
    assert kinds.count("comms.rollback") == 1
