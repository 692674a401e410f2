"""The production topology, as a team runs it: PostgreSQL state, two `shipcaptain worker`
processes and a `shipcaptain server` (serving only), each its own process, and people using
the CLI with --server, each with their own token. The ValueCanvas runbook runs end to end in
its sandbox (git, GitHub, Kubernetes API, Slack and Prometheus doubles, a throwaway
production PostgreSQL with a replica); the worker holding the release is killed (kill -9)
and the other finishes it; an incident with short SLAs gets its reminder and escalation
from a worker through the Slack double; the captain rolls the release back and the SRE
approves, and nothing is left waiting."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from helpers.databases import temporary_database
from helpers.processes import wait_for
from shipcaptain.sandbox.demo import CAPTAIN, DemoWorld, _with_slack, demo_world
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.sandbox.team_demo import (
    KILL_AT,
    SRE,
    KilledRelease,
    add_drill,
    incident_drill,
    manual_rollback,
    release_with_a_kill,
    topology_of,
)
from shipcaptain.sandbox.topology import Topology
from shipcaptain.settings import Settings
from shipcaptain.store import Store

#: the whole story takes about a minute and a half on two busy cores
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]


@pytest.fixture
def environ() -> Iterator[None]:
    """The sandbox puts its services' addresses in this process's environment (the
    processes it starts inherit them): put it back afterwards."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, (done.args, done.stdout, done.stderr)
    return done.stdout


def clock_executor(url: str, incident_id: str) -> str | None:
    """The engine process that ran the incident's SLA clock (DBOS's own record)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT executor_id FROM dbos.workflow_status WHERE workflow_uuid = %s",
            (f"incident-clock/{incident_id}",),
        ).fetchone()
    return None if row is None else str(row[0])


def unfinished(store: Store, release_id: str) -> list[str]:
    """What of the release is still waiting or running: gates and steps."""
    gates = [f"gate {g.step_id}" for g in store.list_gates(status="waiting", release_id=release_id)]
    steps = [
        f"step {k} {r.status}"
        for k, r in store.latest_step_runs(release_id).items()
        if r.status in ("pending", "running", "waiting")
    ]
    return gates + steps


def test_the_valuecanvas_release_in_the_production_topology(tmp_path: Path, environ: None) -> None:
    slack = SlackDouble()
    slack.start()
    try:
        with temporary_database("postgresql", tmp_path) as url:
            settings = _with_slack(
                Settings(database_url=url, data_dir=tmp_path / "data", poll_interval=0.1), slack
            )
            with demo_world(
                settings, tmp_path / "sandbox", version="1.4.0", bad_metrics=False, bad_image=False
            ) as world:
                drill = add_drill(world)
                with topology_of(world, url, tmp_path / "logs") as topology:
                    try:
                        run_the_scenario(url, world, topology, slack, drill)
                    except BaseException:
                        for name in ("server", *topology.worker_ids):
                            print(f"---- {name}.log\n{topology.log(name)[-4000:]}")
                        raise
    finally:
        slack.stop()


def run_the_scenario(
    url: str, world: DemoWorld, topology: Topology, slack: SlackDouble, drill: str
) -> None:
    """The stages of `shipcaptain demo --team` (shipcaptain.sandbox.team_demo), each
    checked against the state database, DBOS's records and the Slack double."""
    store = world.client.store
    wait_for(
        lambda: {w.executor_id for w in store.list_workers()} >= set(topology.worker_ids),
        timeout=60,
        what="both workers send heartbeats",
    )
    started = time.monotonic()
    killed = release_with_a_kill(world, topology)
    finished_on_the_survivor(world, topology, killed)
    print(f"[figures] release with a kill -9: {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    incident_id = incident_drill(world, topology, slack, drill, killed.release_id)
    kinds = [e.kind for e in store.list_events(release_id=killed.release_id)]
    assert "incident.reminder" in kinds
    assert "incident.breached" in kinds
    # the SLA clock ran on a worker (the server serves only; the CLI has no engine)
    assert clock_executor(url, incident_id) == killed.survivor
    assert store.get_incident(incident_id).acknowledged_by == SRE
    print(f"[figures] incident, reminder and escalation: {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    assert manual_rollback(world, topology, killed.release_id) == "rolled_back"
    print(f"[figures] manual rollback: {time.monotonic() - started:.1f}s")
    decisions = store.list_decisions(killed.release_id, "rollback/approval")
    assert [(d.user, d.decision) for d in decisions] == [(SRE, "approve")]
    # [topology-engine] the manual rollback's approval step is closed, not left waiting
    assert unfinished(store, killed.release_id) == []
    incident = store.get_incident(incident_id)
    assert (incident.status, incident.mitigated_by) == ("mitigated", "engine")
    # the CLI went through the server only: it made no state of its own
    assert not topology.cli_data_dir.exists() or not any(topology.cli_data_dir.iterdir())


def finished_on_the_survivor(world: DemoWorld, topology: Topology, killed: KilledRelease) -> None:
    """The other worker took the release over and finished it without running again what
    had finished; the captain's CLI followed it to the end; the CLI shows it through the
    server."""
    store = world.client.store
    tokens = world.tokens
    release_id, holder, survivor = killed.release_id, killed.holder, killed.survivor
    assert holder in topology.worker_ids
    assert killed.exit_code == 0, "".join(killed.followed)[-3000:]
    release = store.get_release(release_id)
    assert release.status == "succeeded", release.reason
    assert release.executor_id == survivor
    taken = [e for e in store.list_events(release_id=release_id) if e.kind == "release.taken_over"]
    assert [e.data["from"] for e in taken] == [holder]
    after = store.latest_step_runs(release_id)
    for step_id, rec in killed.before_kill.items():
        # what had finished before the kill did not run again on the survivor
        assert (after[step_id].run, after[step_id].attempt, after[step_id].started_at) == (
            rec.run,
            rec.attempt,
            rec.started_at,
        ), step_id
    assert KILL_AT in after
    assert "".join(killed.followed).rstrip().splitlines()[-1].split()[1] == "release.succeeded"
    shown = json.loads(ok(topology.cli(tokens[SRE], "release", "show", release_id, "--json")))
    assert shown["release"]["status"] == "succeeded"
    assert {d["user"] for d in shown["decisions"]} >= {"fola", "dev", CAPTAIN}
    assert any(n["kind"] == "comms.complete" for n in shown["notifications"])
    workers = {
        w["executor_id"]: w["alive"]
        for w in json.loads(ok(topology.cli(tokens[SRE], "workers", "--json")))
    }
    assert workers == {holder: False, survivor: True}
