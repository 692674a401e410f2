"""`release start` in a terminal and a release that waits for people at a gate, as separate
processes on PostgreSQL: with a live worker, the CLI hands the release to the workers and
ends (exit 12: not finished) instead of holding the terminal until someone decides; with
none, it keeps running the release itself and says so; `--stay` keeps it here whatever."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.processes import wait_for
from helpers.releases import write_runbook
from helpers.topology import Topology, effects, topology
from shipcaptain.records import ReleaseRecord

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

GATED = """
name: gated
environment: "{{ environment }}"
parameters:
  environment: {default: staging}
phases:
  - id: one
    steps:
      - {id: a, action: shell, with: {command: "echo {{ release.id }}-a >> effects"}}
      - {id: go, action: approval, needs: [a], with: {prompt: "go on?"}}
      - {id: b, action: shell, needs: [go], with: {command: "echo {{ release.id }}-b >> effects"}}
"""


@pytest.fixture
def top(tmp_path: Path) -> Iterator[Topology]:
    with topology(tmp_path) as running:
        write_runbook(running.workdir, GATED)
        yield running


@contextmanager
def terminal(top: Topology, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`release start runbook.yaml ARGS` in a process of its own, the captain's terminal;
    killed if it still runs when the block ends."""
    with subprocess.Popen(
        [sys.executable, "-m", "shipcaptain", "release", "start", "runbook.yaml", *args],
        env=top.env("casey"),
        cwd=top.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as cli:
        try:
            yield cli
        finally:
            if cli.poll() is None:
                cli.kill()


def the_gate_waits(top: Topology) -> ReleaseRecord:
    """The one release, once its gate waits."""
    wait_for(
        lambda: any(g.status == "waiting" for g in top.store.list_gates()), 60, what="the gate"
    )
    (release,) = top.store.list_releases()
    return release


def test_start_hands_a_release_waiting_at_a_gate_to_a_live_worker(top: Topology) -> None:
    worker = top.running_worker("w1")
    started = top.cli("release", "start", "runbook.yaml", "--json")
    assert started.returncode == 12, started.stderr  # handed over, not finished
    said = json.loads(started.stdout.strip().splitlines()[-1])
    assert said["status"] == "waiting"
    assert said["handed_to_workers"] is True
    assert said["waiting_gates"] == ["go"]
    rid = said["id"]
    # the CLI's process is gone from the workers, and its takeover is recorded once
    assert f"cli-{rid}" not in top.alive()
    handed = [e for e in top.store.list_events(release_id=rid) if e.kind == "release.taken_over"]
    assert [e.data["handed"] for e in handed] == [True]
    assert handed[0].data["from"] == f"cli-{rid}"

    # the worker picks it up from the release queue and holds the gate from there
    def picked_up() -> bool:  # the run's executor first, then the event, one after the other
        events = top.store.list_events(release_id=rid)
        return top.store.get_release(rid).executor_id == "w1" and any(
            e.kind == "release.picked_up" for e in events
        )

    wait_for(picked_up, 60, what="the pickup")
    assert top.store.get_release(rid).status == "waiting"

    assert top.here("release", "approve", rid, "go", user="sam").returncode == 0
    wait_for(lambda: top.store.get_release(rid).status == "succeeded", 60, what="the end")
    done = effects(top.workdir)
    assert done[f"{rid}-a"] == 1  # not run again by the worker
    assert done[f"{rid}-b"] == 1  # run by the worker after the decision
    assert "not a registered workflow function" not in worker.output
    assert worker.stop() == 0


def test_start_keeps_the_release_when_no_worker_is_alive(top: Topology) -> None:
    keeps = "no worker is alive to hand it to, so this process keeps running it"
    with terminal(top, "--json") as cli:
        release = the_gate_waits(top)
        # it says so at the gate, before anyone decides (a decision at once could come
        # before the terminal looked at the gate at all)
        assert cli.stderr is not None
        said = [cli.stderr.readline()]
        while said[-1] and keeps not in said[-1]:
            said.append(cli.stderr.readline())
        assert keeps in said[-1], said
        assert top.here("release", "approve", release.id, "go", user="sam").returncode == 0
        out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "succeeded"
    assert top.store.get_release(release.id).executor_id == f"cli-{release.id}"
    assert not any(e.kind == "release.taken_over" for e in top.store.list_events())


def test_start_with_stay_runs_the_release_here_to_its_end(top: Topology) -> None:
    worker = top.running_worker("w1")
    with terminal(top, "--stay") as cli:
        release = the_gate_waits(top)
        assert cli.poll() is None  # still holding it
        assert top.here("release", "approve", release.id, "go", user="sam").returncode == 0
        _, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    final = top.store.get_release(release.id)
    assert final.status == "succeeded"
    assert final.executor_id == f"cli-{release.id}"
    assert worker.stop() == 0


def test_resume_hands_the_new_run_over_at_its_gate(top: Topology) -> None:
    """A release rejected at its gate (run here with --stay), then resumed in a terminal
    while a worker is alive: its new run reaches the gate again and is handed over."""
    worker = top.running_worker("w1")
    with terminal(top, "--stay") as cli:
        release = the_gate_waits(top)
        rejected = top.here("release", "reject", release.id, "go", "-m", "not yet", user="sam")
        assert rejected.returncode == 0, rejected.stderr
        _, err = cli.communicate(timeout=60)
    assert cli.returncode == 10, err  # failed at the gate
    resumed = top.cli("release", "resume", release.id, "--json")
    assert resumed.returncode == 12, resumed.stderr
    said = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (said["run"], said["handed_to_workers"], said["waiting_gates"]) == (2, True, ["go"])

    assert top.here("release", "approve", release.id, "go", user="sam").returncode == 0
    wait_for(lambda: top.store.get_release(release.id).status == "succeeded", 60, what="the end")
    assert top.store.get_release(release.id).executor_id == "w1"
    kinds = [e.kind for e in top.store.list_events(release_id=release.id)]
    # the new run was the terminal's until it handed it over: no worker took it before
    assert kinds.count("release.taken_over") == 1
    done = effects(top.workdir)
    assert done[f"{release.id}-a"] == 1  # done in run 1: not run again in run 2
    assert done[f"{release.id}-b"] == 1
    assert worker.stop() == 0
