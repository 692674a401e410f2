"""``shipcaptain demo --team``: the ValueCanvas release in the production topology, as a
team runs it. State on PostgreSQL (the one given, else a throwaway server), a
``shipcaptain server`` that only serves and two ``shipcaptain worker`` processes, and the
people using the CLI with ``--server``, each with their own token; every one of them its
own process. The stages:

1. casey starts the release through the server and follows it; the demo's people approve
   their gates with ``release approve`` through the server;
2. the worker holding the release is killed (kill -9) while ``rollout_api`` runs: the other
   takes it over and finishes it, without running a finished step again;
3. sam opens a drill incident (deadlines of seconds): a worker sends the reminder and the
   escalation, through the sandbox Slack;
4. casey asks for a rollback, sam approves it; nothing is left waiting.

The acceptance suite (tests/acceptance/test_production_topology.py) runs the same stages
and checks each one against the state database.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from shipcaptain.errors import ShipError
from shipcaptain.sandbox.demo import CAPTAIN, DemoWorld, _with_slack, demo_world
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.sandbox.people import DemoPeople
from shipcaptain.sandbox.topology import Topology, add_drill_severity, approve_through
from shipcaptain.settings import Settings
from shipcaptain.store import StepRunRecord
from shipcaptain.urls import mask_url

SRE = "sam"
#: the step during which the worker holding the release is killed
KILL_AT = "rollout_api"
#: the seconds each stage may take before the demo gives up on it
PATIENCE = 180.0


def wait_until(predicate: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ShipError(f"the demo waited {timeout:g}s for {what}; see the logs")
        time.sleep(0.1)


def stage(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True))


def shown(person: str, args: list[str], done: subprocess.CompletedProcess[str]) -> None:
    """A person's command and what it printed, as in their terminal."""
    click.echo(click.style(f"  {person}$ shipcaptain {' '.join(args)}", fg="cyan"))
    for line in (done.stdout + done.stderr).rstrip().splitlines():
        click.echo(f"    {line}")


def as_person(
    topology: Topology, world: DemoWorld, person: str, *args: str
) -> subprocess.CompletedProcess[str]:
    done = topology.cli(world.tokens[person], *args)
    shown(person, list(args), done)
    return done


@dataclass
class KilledRelease:
    """What stage 1 and 2 did: the release, the worker killed and the one that finished
    it, the steps finished before the kill, what casey's `release start` printed and its
    exit code."""

    release_id: str
    holder: str
    survivor: str
    before_kill: dict[str, StepRunRecord]
    followed: list[str] = field(default_factory=list)
    exit_code: int | None = None


def release_with_a_kill(world: DemoWorld, topology: Topology) -> KilledRelease:
    """casey starts the release through the server and follows it; the worker holding it
    is killed while KILL_AT runs; the other finishes it."""
    store = world.client.store
    params = [f"-p{k}={v}" for k, v in world.params().items()]
    args = ["release", "start", "runbook.yaml", "--on-server", *params]
    click.echo(click.style(f"  {CAPTAIN}$ shipcaptain {' '.join(args[:4])} -p ...", fg="cyan"))
    follower = subprocess.Popen(
        [*topology.cli_args(), *args],
        env=topology.cli_env(world.tokens[CAPTAIN]),
        cwd=world.sandbox.app,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert follower.stdout is not None
    first = follower.stdout.readline()
    click.echo(f"    {first.rstrip()}")
    if not first.startswith("release rel-"):
        follower.kill()
        follower.communicate()
        raise ShipError(f"the release did not start: {first}")
    killed = KilledRelease(first.split()[1], "", "", {})

    def read() -> None:
        for line in follower.stdout or []:
            killed.followed.append(line)
            click.echo(f"    {line.rstrip()}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stop = threading.Event()
    release_id = killed.release_id
    people = DemoPeople(
        world.client,
        release_id,
        world.client.runbook_of(store.get_release(release_id)),
        CAPTAIN,
        world.tokens,
        decide=approve_through(topology, world.tokens, release_id),
    )
    people.start()
    cluster = world.play(release_id, stop)
    try:

        def at_the_kill_point() -> bool:
            rec = store.latest_step_runs(release_id).get(KILL_AT)
            return rec is not None and rec.status == "running"

        wait_until(at_the_kill_point, f"{KILL_AT} to run")
        killed.holder = str(store.get_release(release_id).executor_id)
        killed.before_kill = {
            k: r for k, r in store.latest_step_runs(release_id).items() if r.status == "succeeded"
        }
        pid = topology.kill(killed.holder)
        killed.survivor = next(w for w in topology.worker_ids if w != killed.holder)
        click.echo(
            click.style(
                f"\n  [demo] kill -9 of {killed.holder} (pid {pid}), the worker holding the "
                f"release, while {KILL_AT} runs; {killed.survivor} takes it over when its "
                "heartbeats stop\n",
                fg="red",
                bold=True,
            )
        )
        killed.exit_code = follower.wait(timeout=PATIENCE)
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
    return killed


def incident_drill(
    world: DemoWorld, topology: Topology, slack: SlackDouble, drill: str, release_id: str
) -> str:
    """sam opens a drill incident through the server; a worker runs its SLA clock: the
    reminder and the escalation arrive in the sandbox Slack; then sam acknowledges it.
    The incident's id."""
    opened = as_person(
        topology, world, SRE, "incident", "open", "--severity", drill, "--release", release_id,
        "--summary", "checkout errors after v1.4.0",
    )  # fmt: skip
    if opened.returncode != 0:
        raise ShipError("the incident could not be opened")
    incident_id = opened.stdout.split()[0]  # "inc-... P3 open (release ...): ..."
    seen: set[str] = set()

    def said(text: str) -> bool:
        for m in slack.channel_messages("#releases"):
            if incident_id in m.text and m.ts not in seen and m.via == "api":
                seen.add(m.ts)
                click.echo(click.style(f"  [sandbox Slack] #releases: {m.text}", fg="magenta"))
        return any(
            text in m.text and incident_id in m.text for m in slack.channel_messages("#releases")
        )

    wait_until(lambda: said("Reminder to"), "the SLA reminder")
    wait_until(lambda: said("ESCALATION"), "the SLA escalation")
    as_person(topology, world, SRE, "incident", "ack", incident_id)
    return incident_id


def manual_rollback(world: DemoWorld, topology: Topology, release_id: str) -> str:
    """casey asks for a rollback through the server; sam approves; the release's status
    at the end."""
    store = world.client.store
    asked = as_person(
        topology, world, CAPTAIN, "release", "rollback", release_id, "--reason",
        "checkout errors", "--detach",
    )  # fmt: skip
    if asked.returncode != 0:
        raise ShipError("the rollback was refused")
    wait_until(
        lambda: any(
            g.step_id == "rollback/approval"
            for g in store.list_gates(status="waiting", release_id=release_id)
        ),
        "the rollback's approval gate",
    )
    as_person(topology, world, SRE, "release", "approve", release_id, "rollback/approval",
              "-m", "errors confirmed on the dashboard")  # fmt: skip
    wait_until(
        lambda: store.get_release(release_id).status in ("rolled_back", "failed"),
        "the rollback to end",
    )
    return store.get_release(release_id).status


def topology_of(world: DemoWorld, url: str, logs: Path) -> Topology:
    """The topology on the state database ``url`` with the sandbox's environment, its
    runbooks in the app's repository, and casey (worker.run) running the workers."""
    # every process writing to the state database signs with one audit key and anchors in
    # one place (the demo's own process has written events already)
    shared = {
        "SHIPCAPTAIN_AUDIT_KEY_FILE": str(world.settings.audit_key_path),
        "SHIPCAPTAIN_AUDIT_ANCHOR_DIR": str(world.settings.anchor_path.parent),
    }
    return Topology(
        url,
        env={**os.environ, **shared},
        logs=logs,
        runbooks=world.sandbox.app,
        worker_token=world.tokens[CAPTAIN],
    )


@contextlib.contextmanager
def state_database(settings: Settings) -> Iterator[str]:
    """The PostgreSQL state database: the one configured, else a throwaway server."""
    url = settings.database_url or ""
    if url.startswith(("postgresql", "postgres:")):
        yield url
        return
    from shipcaptain.sandbox.postgres import PostgresServer

    with PostgresServer() as server:
        click.echo(f"state database: a throwaway PostgreSQL server at {server.url}")
        yield server.url


def run_team_demo(settings: Settings, *, workspace: Path | None, version: str) -> int:
    root = (workspace or Path(tempfile.mkdtemp(prefix="shipcaptain-team-demo-"))).resolve()
    slack = SlackDouble()
    slack.start()
    try:
        with state_database(settings) as url:
            team_settings = _with_slack(settings.model_copy(update={"database_url": url}), slack)
            with demo_world(
                team_settings, root, version=version, bad_metrics=False, bad_image=False
            ) as world:
                return _run_stages(world, slack, url, root)
    finally:
        slack.stop()


def add_drill(world: DemoWorld) -> str:
    """Add the drill severity to the sandbox's runbook (see ``add_drill_severity``); that
    changed its text, so its digest: the team's admin puts the runbook as it now is on
    production's allow-list (production is protected). The drill severity's name."""
    from shipcaptain.identity import authenticate
    from shipcaptain.team import allow_runbook, runbook_rule

    store = world.client.store
    admin = next(p.name for p in store.list_people() if p.admin and p.name in world.tokens)
    drill = add_drill_severity(world.sandbox.runbook)
    rule = runbook_rule("production", str(world.sandbox.runbook), note="the drill's runbook")
    allow_runbook(store, rule, by=authenticate(store, world.tokens[admin]))
    click.echo(f"allow-list: {admin} allowed the drill's {world.sandbox.runbook.name}")
    return drill


def _run_stages(world: DemoWorld, slack: SlackDouble, url: str, root: Path) -> int:
    drill = add_drill(world)
    stage("the production topology: a server and two workers, each its own process")
    with topology_of(world, url, root / "logs") as topology:
        store = world.client.store
        wait_until(
            lambda: {w.executor_id for w in store.list_workers()} >= set(topology.worker_ids),
            "both workers' heartbeats",
        )
        pids = ", ".join(str(p.pid) for p in topology.workers.values())
        click.echo(
            f"  server {topology.url} (--no-workers), state {mask_url(url)}\n"
            f"  workers {', '.join(topology.worker_ids)} (pids {pids}); logs in {topology.logs}\n"
            f"  everyone below uses the CLI with --server {topology.url} and their own token"
        )
        stage(f"1-2. {CAPTAIN} starts the release through the server; a worker dies mid-way")
        killed = release_with_a_kill(world, topology)
        release = store.get_release(killed.release_id)
        click.echo(
            f"  release {release.id} {release.status} on {release.executor_id} "
            f"(started on {killed.holder}, killed at {KILL_AT})"
        )
        stage(f"3. {SRE} opens a drill incident ({drill}: acknowledge within seconds)")
        incident_drill(world, topology, slack, drill, killed.release_id)
        stage(f"4. {CAPTAIN} rolls the release back, {SRE} approves")
        final = manual_rollback(world, topology, killed.release_id)
        as_person(topology, world, SRE, "workers")
        left = [g.step_id for g in store.list_gates(status="waiting", release_id=release.id)]
        click.echo(
            f"\nrelease {release.id}: {release.status} after a kill -9, then {final}; "
            f"waiting gates left: {', '.join(left) or 'none'}"
        )
        cli_state = topology.cli_data_dir.exists() and any(topology.cli_data_dir.iterdir())
        click.echo(
            f"  the CLI made {'state of its own!' if cli_state else 'no state of its own'}: "
            f"everyone talked to {topology.url} only"
        )
        good = release.status == "succeeded" and final == "rolled_back" and not left
        return 0 if good and killed.exit_code == 0 and not cli_state else 10
