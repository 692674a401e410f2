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
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers.databases import temporary_database
from helpers.processes import wait_for
from shipcaptain.sandbox.demo import CAPTAIN, _with_slack, demo_world
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.sandbox.people import DemoPeople
from shipcaptain.sandbox.topology import Topology, add_drill_severity, approve_through
from shipcaptain.settings import Settings
from shipcaptain.store import StepRunRecord, Store

#: the whole story takes about a minute and a half on two busy cores
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

SRE = "sam"
#: the step during which the worker holding the release is killed
KILL_AT = "rollout_api"


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
                drill = add_drill_severity(world.sandbox.runbook)
                with Topology(
                    url,
                    env=dict(os.environ),
                    logs=tmp_path / "logs",
                    runbooks=world.sandbox.app,
                    worker_token=world.tokens[CAPTAIN],
                ) as topology:
                    try:
                        run_the_scenario(url, world, topology, slack, drill)
                    except BaseException:
                        for name in ("server", *topology.worker_ids):
                            print(f"---- {name}.log\n{topology.log(name)[-4000:]}")
                        raise
    finally:
        slack.stop()


def run_the_scenario(
    url: str, world: Any, topology: Topology, slack: SlackDouble, drill: str
) -> None:
    store: Store = world.client.store
    wait_for(
        lambda: {w.executor_id for w in store.list_workers()} >= set(topology.worker_ids),
        timeout=60,
        what="both workers send heartbeats",
    )
    started = time.monotonic()
    release_id, holder, before_kill, followed = release_with_a_kill(world, topology)
    survivor = finished_on_the_survivor(world, topology, release_id, holder, before_kill, followed)
    print(f"[figures] release with a kill -9: {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    incident_id = incident_clock_on_a_worker(url, world, topology, slack, drill, release_id)
    assert clock_executor(url, incident_id) == survivor
    print(f"[figures] incident, reminder and escalation: {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    manual_rollback(world, topology, release_id, incident_id)
    print(f"[figures] manual rollback: {time.monotonic() - started:.1f}s")
    # the CLI went through the server only: it made no state of its own
    assert not topology.cli_data_dir.exists() or not any(topology.cli_data_dir.iterdir())


def release_with_a_kill(
    world: Any, topology: Topology
) -> tuple[str, str, dict[str, StepRunRecord], str]:
    """The captain starts the release through the server and follows it until it ends;
    the worker holding it is killed while KILL_AT runs. The release, the killed worker,
    the steps finished before the kill, and what the captain's CLI printed."""
    store: Store = world.client.store
    tokens: dict[str, str] = world.tokens
    params = [f"-p{k}={v}" for k, v in world.params().items()]
    follower = subprocess.Popen(
        [*topology.cli_args(), "release", "start", "runbook.yaml", "--on-server", *params],
        env=topology.cli_env(tokens[CAPTAIN]),
        cwd=world.sandbox.app,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert follower.stdout is not None
    first = follower.stdout.readline()
    assert first.startswith("release rel-"), first
    assert first.rstrip().endswith("started by casey"), first
    release_id = first.split()[1]
    followed: list[str] = []
    reader = threading.Thread(target=lambda: followed.extend(follower.stdout or []), daemon=True)
    reader.start()

    stop = threading.Event()
    rb = world.client.runbook_of(store.get_release(release_id))
    people = DemoPeople(
        world.client,
        release_id,
        rb,
        CAPTAIN,
        tokens,
        decide=approve_through(topology, tokens, release_id),
    )
    people.start()
    cluster = world.play(release_id, stop)
    try:
        # ---- kill -9 of the worker holding the release, while KILL_AT runs ------------
        def at_the_kill_point() -> bool:
            rec = store.latest_step_runs(release_id).get(KILL_AT)
            return rec is not None and rec.status == "running"

        wait_for(at_the_kill_point, timeout=120, what=f"{KILL_AT} runs")
        holder = store.get_release(release_id).executor_id
        assert holder in topology.worker_ids, holder
        before_kill: dict[str, StepRunRecord] = {
            k: r for k, r in store.latest_step_runs(release_id).items() if r.status == "succeeded"
        }
        topology.kill(holder)
        assert follower.wait(timeout=180) == 0, "".join(followed)[-3000:]
    finally:
        stop.set()
        people.stop.set()
        people.join(timeout=30)
        cluster.join(timeout=5)
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        reader.join(timeout=5)
        follower.stdout.close()
    return release_id, holder, before_kill, "".join(followed)


def finished_on_the_survivor(
    world: Any,
    topology: Topology,
    release_id: str,
    holder: str,
    before_kill: dict[str, StepRunRecord],
    followed: str,
) -> str:
    """The other worker took the release over and finished it without running again what
    had finished; the CLI shows it through the server. The surviving worker."""
    store: Store = world.client.store
    tokens: dict[str, str] = world.tokens
    survivor = next(w for w in topology.worker_ids if w != holder)
    release = store.get_release(release_id)
    assert release.status == "succeeded", release.reason
    assert release.executor_id == survivor
    taken = [e for e in store.list_events(release_id=release_id) if e.kind == "release.taken_over"]
    assert [e.data["from"] for e in taken] == [holder]
    after = store.latest_step_runs(release_id)
    for step_id, rec in before_kill.items():
        # what had finished before the kill did not run again on the survivor
        assert (after[step_id].run, after[step_id].attempt, after[step_id].started_at) == (
            rec.run,
            rec.attempt,
            rec.started_at,
        ), step_id
    assert followed.rstrip().splitlines()[-1].split()[1] == "release.succeeded"
    shown = json.loads(ok(topology.cli(tokens[SRE], "release", "show", release_id, "--json")))
    assert shown["release"]["status"] == "succeeded"
    assert {d["user"] for d in shown["decisions"]} >= {"fola", "dev", CAPTAIN}
    assert any(n["kind"] == "comms.complete" for n in shown["notifications"])
    workers = {
        w["executor_id"]: w["alive"]
        for w in json.loads(ok(topology.cli(tokens[SRE], "workers", "--json")))
    }
    assert workers == {holder: False, survivor: True}
    return survivor


def incident_clock_on_a_worker(
    url: str,
    world: Any,
    topology: Topology,
    slack: SlackDouble,
    drill: str,
    release_id: str,
) -> str:
    """The SRE opens an incident with short SLAs through the server; a worker runs its
    clock: the reminder and the escalation arrive in the Slack double. The incident."""
    store: Store = world.client.store
    tokens: dict[str, str] = world.tokens
    command = ["incident", "open", "--severity", drill, "--release", release_id, "--json"]
    command += ["--summary", "checkout errors after v1.4.0"]
    opened = json.loads(ok(topology.cli(tokens[SRE], *command)))
    incident_id = opened["id"]

    def said(text: str) -> bool:
        return any(
            text in m.text and incident_id in m.text for m in slack.channel_messages("#releases")
        )

    wait_for(lambda: said("Reminder to"), timeout=60, what="the SLA reminder in Slack")
    wait_for(lambda: said("ESCALATION"), timeout=60, what="the SLA escalation in Slack")
    kinds = [e.kind for e in store.list_events(release_id=release_id)]
    assert "incident.reminder" in kinds
    assert "incident.breached" in kinds
    acked = json.loads(ok(topology.cli(tokens[SRE], "incident", "ack", incident_id, "--json")))
    assert acked["acknowledged_by"] == SRE
    return str(incident_id)


def manual_rollback(world: Any, topology: Topology, release_id: str, incident_id: str) -> None:
    """The captain asks for a rollback through the server, the SRE approves it; the release
    is rolled back, nothing of it is left waiting, and the incident is mitigated."""
    store: Store = world.client.store
    tokens: dict[str, str] = world.tokens
    command = ["release", "rollback", release_id, "--reason", "checkout errors", "--detach"]
    command += ["--restore-procedure", "restore the 03:00 backup of the dropped columns", "--json"]
    asked = json.loads(ok(topology.cli(tokens[CAPTAIN], *command)))
    assert asked == {"id": release_id, "run": 2, "status": "queued"}
    wait_for(
        lambda: any(
            g.step_id == "rollback/approval"
            for g in store.list_gates(status="waiting", release_id=release_id)
        ),
        timeout=60,
        what="the rollback's approval gate",
    )
    own = topology.cli(tokens[CAPTAIN], "release", "approve", release_id, "rollback/approval")
    assert own.returncode == 4, own.stderr
    ok(topology.cli(tokens[SRE], "release", "approve", release_id, "rollback/approval", "-m", "go"))
    wait_for(
        lambda: store.get_release(release_id).status in ("rolled_back", "failed"),
        timeout=120,
        what="the rollback ends",
    )
    assert store.get_release(release_id).status == "rolled_back"
    # [topology-engine] the manual rollback's approval step is closed, not left waiting
    assert unfinished(store, release_id) == []
    incident = store.get_incident(incident_id)
    assert (incident.status, incident.mitigated_by) == ("mitigated", "engine")
