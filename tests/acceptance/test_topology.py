"""The production topology, each piece its own process on PostgreSQL: `shipcaptain worker`
processes and CLI commands. What only shows there: a durable function a worker never
registered, work that outlives the process that created it (an SLA clock, a gate's
deadline), the environment lock between two workers, and workers refusing to start."""

from __future__ import annotations

import ast
import html
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

import shipcaptain
from helpers.processes import wait_for
from helpers.releases import write_runbook
from helpers.team import OPEN_PERMISSIONS, make_team
from helpers.topology import SLOW_STEP_RUNBOOK, Topology, WorkerProcess, effects, topology
from helpers.web import bearer, server_process
from shipcaptain.client import Client
from shipcaptain.engine.system_database import SYSTEM_DB_POOL_KEPT
from shipcaptain.records import Person, WorkerRecord
from shipcaptain.sandbox.doubles.slack import SlackDouble
from shipcaptain.sandbox.tcp_proxy import TcpProxy
from shipcaptain.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SOURCE = Path(shipcaptain.__file__).parent


@pytest.fixture
def top(tmp_path: Path) -> Iterator[Topology]:
    with topology(tmp_path) as running:
        yield running


def durable_functions_in_source() -> dict[str, set[str]]:
    """Every ``DBOS.workflow(name=...)`` and ``DBOS.step(name=...)`` in the package, as a
    decorator or called on a function: {"workflow": names, "step": names}."""
    found: dict[str, set[str]] = {"workflow": set(), "step": set()}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "DBOS"
                and node.func.attr in found
            ):
                continue
            names = [k.value for k in node.keywords if k.arg == "name"]
            where = f"{path}:{node.lineno}: a durable function needs a fixed name=..."
            assert len(names) == 1, where
            assert isinstance(names[0], ast.Constant), where
            found[node.func.attr].add(str(names[0].value))
    return found


def registered_by(output: str) -> dict[str, set[str]]:
    """What a worker says it registered: ``durable functions: N workflows (a, b); M steps
    (c, d)``."""
    match = re.search(
        r"durable functions: \d+ workflows \(([^)]*)\); \d+ steps \(([^)]*)\)", output
    )
    assert match, output
    return {kind: set(match.group(i).split(", ")) for i, kind in ((1, "workflow"), (2, "step"))}


def test_a_fresh_worker_registers_every_durable_function(top: Topology) -> None:
    in_source = durable_functions_in_source()
    assert "shipcaptain.incident_clock" in in_source["workflow"]
    assert len(in_source["step"]) > 10
    worker = top.worker("w1")
    wait_for(lambda: "durable functions:" in worker.output, 60, what="the worker's banner")
    assert registered_by(worker.output) == in_source
    assert worker.stop() == 0
    # the server runs workers too
    data = top.workdir / "data"
    with server_process(top.url, data, top.workdir, token=top.tokens["ops"]) as server:
        wait_for(lambda: "durable functions:" in "".join(server.stderr), 60, what="its banner")
        assert registered_by("".join(server.stderr)) == in_source
        assert server.stop() == 0


SLA_RUNBOOK = """
name: payments
environment: "{{ environment }}"
parameters:
  environment: {default: production}
roles:
  oncall_sre: {title: On-call SRE, members: [sam]}
phases:
  - id: all
    steps:
      - {id: noop, action: shell, with: {command: "true"}}
slas:
  P1: {acknowledge: 2s, mitigate: 5s}
incidents: {owners: [oncall_sre]}
comms:
  channel: "#releases"
"""


def reminded_and_escalated(top: Topology, release_id: str) -> None:
    """Wait for both deadlines of the release's incident to pass: a reminder, then an
    escalation, for acknowledge and for mitigate, each once."""

    def clock() -> list[str]:
        return [
            e.kind
            for e in top.store.list_events(release_id=release_id)
            if e.kind in ("incident.reminder", "incident.breached")
        ]

    wait_for(lambda: clock().count("incident.breached") == 2, 45, what="two escalations")
    assert clock() == ["incident.reminder", "incident.breached"] * 2


def test_incident_open_with_a_worker_running_reminds_and_escalates(top: Topology) -> None:
    with SlackDouble() as slack:
        top.settings.update(
            SHIPCAPTAIN_SLACK_TOKEN=slack.token,
            SHIPCAPTAIN_SLACK_API_URL=slack.api_url,
            SHIPCAPTAIN_NOTIFY_BACKOFF="0.01",
        )
        runbook = write_runbook(top.workdir, SLA_RUNBOOK)
        # a release whose runbook has short SLAs (it need not run: the incident is about it)
        with Client(Settings(database_url=top.url, data_dir=top.workdir / "data")) as client:
            release = client.create_release(runbook, {}, user="casey")
        worker = top.running_worker("w1")
        opened = top.cli(
            "incident", "open", "--severity", "P1", "--summary", "payments down",
            "--release", release.id, "--json", user="sam",
        )  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        assert json.loads(opened.stdout)["severity"] == "P1"

        # the CLI process is gone: the worker runs the clock, both deadlines pass
        reminded_and_escalated(top, release.id)
        (incident,) = top.store.list_incidents()
        # each went to Slack too (sent just after the worker recorded it)
        said = (
            f"Reminder to sam: P1 incident {incident.id}",
            f"ESCALATION: P1 incident {incident.id} was not acknowledged",
            f"ESCALATION: P1 incident {incident.id} was not mitigated",
        )

        def unsent() -> list[str]:
            texts = [m.text for m in slack.channel_messages("#releases")]
            return [s for s in said if not any(t.startswith(s) for t in texts)]

        wait_for(lambda: not unsent(), 15, what="the reminder and both escalations on Slack")
        assert "not a registered workflow function" not in worker.output
        assert worker.stop() == 0


def clock_of(top: Topology, incident_id: str) -> tuple[str, str | None] | None:
    """The SLA clock's DBOS status and the process that runs it."""
    with psycopg.connect(top.url) as conn:
        row = conn.execute(
            "SELECT status, executor_id FROM dbos.workflow_status WHERE workflow_uuid = %s",
            (f"incident-clock/{incident_id}",),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def test_the_sla_clock_of_a_killed_worker_goes_on_on_another(top: Topology) -> None:
    write_runbook(top.workdir, SLA_RUNBOOK.replace("2s, mitigate: 5s", "10s, mitigate: 14s"))
    with Client(Settings(database_url=top.url, data_dir=top.workdir / "data")) as client:
        release = client.create_release(top.workdir / "runbook.yaml", {}, user="casey")
    # both workers run before the incident opens: its deadlines count from then, and a
    # worker started after it (seconds under load) could find the clock already over
    workers = {name: top.running_worker(name) for name in ("w1", "w2")}
    opened = top.cli(
        "incident", "open", "--severity", "P1", "--summary", "payments down",
        "--release", release.id, "--json", user="sam",
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    incident_id = json.loads(opened.stdout)["id"]

    holders: list[str] = []  # who runs the clock, once one does

    def held() -> bool:
        clock = clock_of(top, incident_id)
        if clock is not None and clock[0] == "PENDING" and clock[1] in workers:
            holders.append(clock[1])
        return bool(holders)

    wait_for(held, 30, what="a worker to run the clock")
    (holder,) = holders
    (survivor,) = set(workers) - {holder}
    workers[holder].kill()
    # the survivor takes the clock over (and may have run it to its end when we look)
    wait_for(
        lambda: clock_of(top, incident_id) in {("PENDING", survivor), ("SUCCESS", survivor)},
        30,
        what="the survivor's clock",
    )
    reminded_and_escalated(top, release.id)


FAILING_CHECK = SLA_RUNBOOK.replace(
    "slas:",
    """  - id: post_deploy
    steps:
      - {id: error_rate, action: shell, needs: [noop], with: {command: "exit 1"}}
slas:""",
)


def test_an_incident_a_release_opens_in_a_terminal_outlives_the_terminal(top: Topology) -> None:
    """`release start` runs the release in its own process, which ends when the release
    does; the incident its failed check opened is reminded and escalated by a worker."""
    write_runbook(top.workdir, FAILING_CHECK)
    worker = top.running_worker("w1")
    ran = top.cli("--debug", "release", "start", "runbook.yaml", "--json")
    assert ran.returncode == 10, ran.stderr  # failed
    # the CLI's own engine has every durable function too (its debug log lists them)
    assert registered_by(ran.stderr) == durable_functions_in_source()
    (release,) = top.store.list_releases()
    assert release.status == "failed"
    assert release.executor_id != "w1"  # it ran in the CLI's own process, now gone
    (incident,) = top.store.list_incidents()
    assert incident.release_id == release.id

    reminded_and_escalated(top, release.id)
    assert "not a registered workflow function" not in worker.output
    assert worker.stop() == 0


def test_a_terminal_release_that_opens_an_incident_says_when_no_worker_runs_its_clock(
    top: Topology,
) -> None:
    write_runbook(top.workdir, FAILING_CHECK)
    ran = top.cli("release", "start", "runbook.yaml", "--json")
    assert ran.returncode == 10, ran.stderr
    (incident,) = top.store.list_incidents()
    assert (
        f"incident {incident.id}: its SLA clock (reminders, escalations) runs on a worker, "
        "and no worker is alive: start one with `shipcaptain worker`"
    ) in ran.stderr
    # the clock waits on its queue for the first worker (the CLI's engine did not take it)
    clock = clock_of(top, incident.id)
    assert clock is not None
    assert clock[0] == "ENQUEUED"
    worker = top.worker("w1")
    wait_for(
        lambda: any(e.kind == "incident.reminder" for e in top.store.list_events()),
        45,
        what="the first reminder",
    )
    assert worker.stop() == 0


GATED = """
name: gated
environment: "{{ environment }}"
parameters:
  environment: {default: staging}
roles:
  oncall_sre: {title: On-call SRE, members: [sam]}
phases:
  - id: all
    steps:
      - {id: before, action: shell, with: {command: "echo before >> effects"}}
      - {id: gate, action: approval, needs: [before],
         with: {prompt: ship it?, roles: [oncall_sre], timeout: 8s}}
      - {id: after, action: shell, needs: [gate], with: {command: "echo after >> effects"}}
"""


def test_a_gate_deadline_fires_on_another_worker_after_a_kill_9(top: Topology) -> None:
    write_runbook(top.workdir, GATED)
    first = top.running_worker("w1")
    started = top.here("release", "start", "runbook.yaml", "--detach", "--json")
    assert started.returncode == 0, started.stderr
    (release,) = top.store.list_releases()

    def gate_status() -> str | None:
        gates = [g for g in top.store.list_gates(release_id=release.id) if g.step_id == "gate"]
        return gates[0].status if gates else None

    wait_for(lambda: gate_status() == "waiting", 60, what="the gate to open on w1")
    assert top.store.get_release(release.id).executor_id == "w1"
    second = top.running_worker("w2")
    first.kill()
    wait_for(lambda: gate_status() == "timed_out", 60, what="the deadline")
    wait_for(lambda: top.store.get_release(release.id).status == "failed", 30, what="failed")
    final = top.store.get_release(release.id)
    assert final.executor_id == "w2"
    events = top.store.list_events(release_id=release.id)
    (taken,) = [e for e in events if e.kind == "release.taken_over"]
    assert (taken.data["from"], taken.data["to"]) == ("w1", "w2")
    closed = next(e for e in events if e.kind == "gate.closed")
    assert closed.at > taken.at  # the deadline fired after the takeover, on w2
    assert (top.workdir / "effects").read_text().split() == ["before"]  # nothing twice
    assert second.stop() == 0


LOCKED = """
name: api
environment: "{{ environment }}"
parameters:
  environment: {default: production}
phases:
  - id: deploy
    steps:
      - id: rollout
        action: shell
        with:
          command: >-
            python3 -c "import time; print('{{ release.id }}', time.time())" >> spans;
            sleep 3;
            python3 -c "import time; print('{{ release.id }}', time.time())" >> spans
"""


def test_two_workers_never_deploy_one_service_to_production_at_once(top: Topology) -> None:
    write_runbook(top.workdir, LOCKED)
    for _ in range(2):
        queued = top.here("release", "start", "runbook.yaml", "--detach")
        assert queued.returncode == 0, queued.stderr
    # one release at a time per worker: each worker takes one, both want the lock
    for name in ("w1", "w2"):
        top.worker(name, "--concurrency", "1")

    def finished() -> bool:
        return all(r.status == "succeeded" for r in top.store.list_releases())

    wait_for(finished, 90, what="both releases to succeed")
    releases = top.store.list_releases()
    assert {r.executor_id for r in releases} == {"w1", "w2"}  # both workers ran one
    spans: dict[str, list[float]] = {}
    for line in (top.workdir / "spans").read_text().splitlines():
        release_id, at = line.split()
        spans.setdefault(release_id, []).append(float(at))
    (_, a_end), (b_start, _) = sorted(spans.values())
    assert a_end <= b_start, spans  # the second started only after the first had ended
    waited = [
        e
        for r in releases
        for e in top.store.list_events(release_id=r.id)
        if e.kind == "release.queued"
    ]
    assert len(waited) == 1
    assert "production lock of api" in waited[0].message


def test_a_worker_without_the_permission_does_not_start(top: Topology) -> None:
    robot = Person(name="robot", roles={"*": ("worker",)})
    only_workers = {**OPEN_PERMISSIONS, "worker.run": {"*": ["worker"]}}
    dev = Person(name="dev", roles={"*": ("feature_owner",)})  # not "*": every role
    top.tokens.update(make_team(top.url, [robot, dev], admin="robot", permissions=only_workers))
    refused = top.worker("w1", user="dev")
    assert refused.proc.wait(timeout=60) == 4
    assert "error[SC" in refused.output, refused.output
    assert "worker.run" in refused.output, refused.output
    assert "w1" not in top.alive()
    assert not [e for e in top.store.list_events() if e.kind == "worker.started"]
    allowed = top.running_worker("w2", user="robot")
    assert "w2" in top.alive()
    assert allowed.stop() == 0


def test_a_second_worker_with_a_live_workers_id_is_refused(top: Topology) -> None:
    first = top.worker("w1")
    wait_for(lambda: "durable functions:" in first.output, 60, what="the first worker")
    before = next(w for w in top.store.list_workers() if w.executor_id == "w1")
    twin = top.workers["twin"] = WorkerProcess("w1", top.env(), top.workdir)
    assert twin.proc.wait(timeout=60) == 5
    assert "a process with the id w1 is alive" in twin.output, twin.output

    def beat() -> WorkerRecord:
        return next(w for w in top.store.list_workers() if w.executor_id == "w1")

    # the live one keeps its place: its pid, still beating
    wait_for(lambda: beat().heartbeat_at > before.heartbeat_at, 10, what="a next heartbeat")
    assert beat().pid == before.pid == first.proc.pid
    assert first.stop() == 0
    # once it has stopped, the same id starts again (a restart)
    again = top.workers["again"] = WorkerProcess("w1", top.env(), top.workdir)
    wait_for(lambda: "durable functions:" in again.output, 60, what="the restarted worker")
    assert beat().pid == again.proc.pid
    assert again.stop() == 0
    # two started at the same moment: one gets the id, the other is refused
    twins = [WorkerProcess("w2", top.env(), top.workdir) for _ in range(2)]
    top.workers.update({f"twin{i}": w for i, w in enumerate(twins)})
    wait_for(lambda: any(w.proc.poll() is not None for w in twins), 60, what="a refusal")
    (refused,) = [w for w in twins if w.proc.poll() is not None]
    (running,) = [w for w in twins if w is not refused]
    assert refused.proc.returncode == 5, refused.output
    wait_for(lambda: "durable functions:" in running.output, 60, what="the other twin")
    assert running.stop() == 0


def test_a_release_whose_worker_died_says_so_in_every_view(top: Topology) -> None:
    """release show, its JSON, the API's release detail and the release page: nobody runs
    it, and what to do; once a worker has taken it over, all is well again."""
    write_runbook(top.workdir, GATED.replace("timeout: 8s", "timeout: 1h"))
    first = top.worker("w1")
    started = top.here("release", "start", "runbook.yaml", "--detach", "--json")
    assert started.returncode == 0, started.stderr
    release_id = json.loads(started.stdout)["id"]
    wait_for(
        lambda: any(g.status == "waiting" for g in top.store.list_gates(release_id=release_id)),
        60,
        what="the gate to open on w1",
    )

    def shown() -> dict[str, Any]:  # polled: in this process (the text view is a child)
        answer = top.here("release", "show", release_id, "--json", user="sam")
        assert answer.returncode == 0, answer.stderr
        engine: dict[str, Any] = json.loads(answer.stdout)["engine"]
        return engine

    assert (shown()["state"], shown()["message"]) == ("running", "")
    with (
        server_process(top.url, top.workdir / "data", top.workdir, "--no-workers") as server,
        httpx.Client(base_url=server.url, headers=bearer(top.tokens["sam"]), timeout=30) as api,
    ):
        first.kill()
        engine = shown()
        assert (engine["state"], engine["executor_id"]) == ("stopped", "w1")
        message = engine["message"]
        assert message.startswith("nobody runs this release: its process w1 has sent no heartbeat")
        assert f"shipcaptain release resume {release_id}" in message
        assert "shipcaptain worker" in message
        text = top.cli("release", "show", release_id, user="sam")
        assert message in " ".join(text.stdout.split()), text.stdout
        detail = api.get(f"/api/v1/releases/{release_id}").json()
        assert detail["engine"]["state"] == "stopped"
        assert detail["engine"]["message"] == message
        page = api.get(f"/releases/{release_id}")
        assert page.status_code == 200
        assert html.escape(message, quote=False) in page.text
        # a worker comes: it takes the release over, and every view says it runs again
        top.worker("w2")
        wait_for(lambda: shown()["executor_id"] == "w2", 60, what="the takeover")
        # taken over, it goes back on the release queue ("queued") until w2 picks it up
        wait_for(lambda: shown()["state"] != "queued", 30, what="w2 to pick it up")
        assert (shown()["state"], shown()["message"]) == ("running", "")
        detail = api.get(f"/api/v1/releases/{release_id}").json()
        assert (detail["engine"]["state"], detail["engine"]["message"]) == ("running", "")
        assert 'id="engine-health"' not in api.get(f"/releases/{release_id}").text


def test_a_few_seconds_without_the_state_database_lose_nothing_and_run_nothing_twice(
    top: Topology,
) -> None:
    """Two workers reach PostgreSQL through a proxy that the test cuts for longer than
    the takeover window, while each runs a release: both wait, neither takes the other's
    release over, and every step runs once."""
    target = make_url(top.url)
    with TcpProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
        through = target.set(host="127.0.0.1", port=proxy.port)
        top.settings["SHIPCAPTAIN_DATABASE_URL"] = through.render_as_string(hide_password=False)
        write_runbook(top.workdir, SLOW_STEP_RUNBOOK)
        for _ in range(2):
            assert top.here("release", "start", "runbook.yaml", "--detach").returncode == 0
        workers = [top.worker(name, "--concurrency", "1") for name in ("w1", "w2")]

        wait_for(
            lambda: sum(k.endswith("-slow-start") for k in effects(top.workdir)) == 2,
            90,
            what="both releases in their slow step",
        )
        proxy.outage(5.0)  # longer than the takeover window (3 s) and the slow steps
        assert proxy.refused > 0  # the workers did try, and could not connect

        def finished() -> bool:
            return all(r.status == "succeeded" for r in top.store.list_releases())

        wait_for(finished, 90, what="both releases to succeed")
        releases = top.store.list_releases()
        assert {r.executor_id for r in releases} == {"w1", "w2"}
        done = effects(top.workdir)
        for r in releases:
            for step in ("a", "slow-start", "slow", "b"):
                assert done[f"{r.id}-{step}"] == 1, (r.id, step, done)
            kinds = [e.kind for e in top.store.list_events(release_id=r.id)]
            assert "release.taken_over" not in kinds
        for w in workers:
            assert w.proc.poll() is None, w.output
            assert "unreachable" in w.output or "heartbeat failed" in w.output, w.output
            assert w.stop() == 0


def test_queued_releases_spread_over_the_live_workers(top: Topology) -> None:
    """A worker takes at most --concurrency releases; the rest wait for the next worker
    with room, so a second worker adds throughput instead of idling."""
    write_runbook(top.workdir, SLOW_STEP_RUNBOOK)
    for _ in range(5):
        assert top.here("release", "start", "runbook.yaml", "--detach").returncode == 0
    top.worker("w1", "--concurrency", "2")

    def taken() -> dict[str, int]:
        return dict(Counter(r.executor_id for r in top.store.list_releases()))

    wait_for(lambda: taken().get("w1") == 2, 60, what="w1 to take two releases")
    slow_started = sum(k.endswith("-slow-start") for k in effects(top.workdir))
    assert taken() == {"w1": 2, None: 3}, slow_started  # the rest stay queued
    top.worker("w2", "--concurrency", "2")

    def finished() -> bool:
        return all(r.status == "succeeded" for r in top.store.list_releases())

    wait_for(finished, 90, what="every release to succeed")
    ran = taken()
    assert set(ran) == {"w1", "w2"}, ran
    assert ran["w2"] >= 1, ran
    done = effects(top.workdir)
    assert all(done[f"{r.id}-b"] == 1 for r in top.store.list_releases()), done


PARALLEL = "name: parallel\nphases:\n  - id: one\n    steps:\n" + "".join(
    f"      - {{id: s{i}, action: shell, with: {{command: 'sleep 0.3'}}}}\n" for i in range(12)
)


def test_an_idle_worker_gives_back_the_engines_connections(top: Topology) -> None:
    """A team sizes PostgreSQL's ``max_connections`` by what its processes hold: the
    engine (DBOS) of a worker that ran twelve steps at once closes what it opened for them
    once they are done, keeping two besides its listener's and its notifier's."""
    worker = top.running_worker("w1")
    write_runbook(top.workdir, PARALLEL)
    assert top.here("release", "start", "runbook.yaml", "--detach").returncode == 0
    wait_for(
        lambda: [r.status for r in top.store.list_releases()] == ["succeeded"],
        60,
        what="the release to succeed",
    )
    database = make_url(top.url).database
    kept = SYSTEM_DB_POOL_KEPT + 2
    seen: list[int] = []

    def few() -> bool:
        with psycopg.connect(top.url, dbname="postgres") as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'dbos_transact'",
                [database],
            ).fetchone()
        seen.append(row[0] if row else 0)
        return seen[-1] <= kept

    try:
        wait_for(few, 10, what=f"the worker's engine to hold at most {kept} connections")
    except AssertionError as failed:
        raise AssertionError(f"{failed}; it holds {seen[-1]}") from None
    assert worker.proc.poll() is None, worker.output


TIMED = """
name: timed
environment: staging
parameters:
  pause: {default: "8"}
phases:
  - id: one
    steps:
      - {id: a, action: shell, with: {command: "echo {{ release.id }} a $(date +%s.%N) >> spans"}}
      - {id: slow, action: shell, needs: [a],
         with: {command: "echo {{ release.id }} slow-start $(date +%s.%N) >> spans;
                          sleep {{ pause }}; echo {{ release.id }} slow $(date +%s.%N) >> spans"}}
      - {id: b, action: shell, needs: [slow],
         with: {command: "echo {{ release.id }} b $(date +%s.%N) >> spans"}}
"""


def spans(workdir: Path) -> list[tuple[str, str, float]]:
    """What the steps of ``TIMED`` wrote, in order: (release, mark, epoch seconds)."""
    path = workdir / "spans"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(r, mark, float(at)) for r, mark, at in (line.split() for line in lines)]


def test_a_release_taken_over_counts_against_the_survivors_concurrency(top: Topology) -> None:
    """Two workers with --concurrency 1, each running one release; the holder of one is
    killed (kill -9). The survivor takes that release over, but runs it only once its own
    release has ended: a takeover goes back on the release queue, it does not run beside
    the worker's releases beyond its limit."""
    write_runbook(top.workdir, TIMED)
    workers = {name: top.running_worker(name, "--concurrency", "1") for name in ("w1", "w2")}
    for _ in range(2):
        assert top.here("release", "start", "runbook.yaml", "--detach").returncode == 0

    def slow_started() -> set[str]:
        return {r for r, mark, _ in spans(top.workdir) if mark == "slow-start"}

    wait_for(lambda: len(slow_started()) == 2, 60, what="both releases in their slow step")
    holder = {r.id: r.executor_id for r in top.store.list_releases()}
    assert set(holder.values()) == {"w1", "w2"}, holder  # one each: the limit is 1
    # kill the worker whose release is further on: the other's own release then runs for
    # most of the slow step after the takeover
    victim, kept = [r for r, mark, _ in spans(top.workdir) if mark == "slow-start"]
    killed, survivor = holder[victim], holder[kept]
    workers[killed].kill()

    def finished() -> bool:
        return all(r.status == "succeeded" for r in top.store.list_releases())

    wait_for(finished, 90, what="both releases to succeed on the survivor")
    assert top.store.get_release(victim).executor_id == survivor
    (taken,) = [
        e for e in top.store.list_events(release_id=victim) if e.kind == "release.taken_over"
    ]
    assert (taken.data["from"], taken.data["to"]) == (killed, survivor)
    marks = spans(top.workdir)
    kept_end = max(at for r, mark, at in marks if r == kept and mark == "b")
    rerun = [at for r, mark, at in marks if r == victim and mark == "slow-start"]
    assert len(rerun) == 2, marks  # the slow step ran again after the kill, once
    # on the survivor, the taken-over release went on only after its own release had ended
    assert rerun[1] > kept_end, marks
    assert [m for r, m, _ in marks if r == victim].count("a") == 1  # finished: not again
    assert workers[survivor].stop() == 0


def test_a_worker_or_server_with_another_audit_key_refuses_to_start(top: Topology) -> None:
    """Every process of a database must sign with the same audit key; a worker or a server
    with a key of its own would write events that verify as forged, so it refuses to start,
    naming both keys and the fix, and writes nothing. With --rotate-audit-key (a deliberate
    rotation) it starts, and says so."""
    from shipcaptain.audit.keys import audit_key_of

    write_runbook(top.workdir, SLOW_STEP_RUNBOOK)
    assert top.here("release", "start", "runbook.yaml", "--detach").returncode == 0
    same = top.running_worker("w1")
    assert "audit key" not in same.output, same.output
    shared = audit_key_of(top.workdir / "data" / "audit-key.pem").id
    other_key = top.workdir / "another-key.pem"
    top.settings["SHIPCAPTAIN_AUDIT_KEY_FILE"] = str(other_key)
    other_id = audit_key_of(other_key).id
    assert other_id != shared

    def beside_the_release() -> list[str]:
        """What was logged outside the release that runs meanwhile (a worker's start)."""
        return [e.kind for e in top.store.list_events() if e.release_id is None]

    events = len(top.store.list_events())
    logged = beside_the_release()
    refused = top.cli("worker", "--id", "w2", user="ops")
    assert refused.returncode == 2, refused.stderr
    said = refused.stderr
    assert said.startswith("error[SC201]: this process's audit key"), said
    assert f"audit key {other_id} ({other_key})" in said, said
    assert f"signed with key {shared}, the key of the worker w1 ops started" in said, said
    assert "the same SHIPCAPTAIN_AUDIT_KEY_FILE" in said, said
    assert "--rotate-audit-key" in said, said
    # as run-workers-on-postgresql.md section 1 shows it
    doc = (Path(shipcaptain.__file__).parents[2] / "docs" / "how-to").joinpath(
        "run-workers-on-postgresql.md"
    )
    (shown,) = re.findall(r"^(error\[SC201\]: .*)$", doc.read_text(encoding="utf-8"), re.M)

    def values_out(text: str) -> str:
        """The message without what differs between runs: key ids, paths, places, times."""
        for value, mark in (
            (r"[0-9a-f]{16}", "<key>"),
            (r"\(/\S+\)", "(<path>)"),
            (r"event \d+", "event <n>"),
            (r"on \S+ at [-\d]+ [:\d]+Z", "on <host> at <time>"),
        ):
            text = re.sub(value, mark, text)
        return text

    assert values_out(said.strip()) == values_out(shown), said
    assert beside_the_release() == logged  # nothing written, no worker row
    assert "w2" not in {w.executor_id for w in top.store.list_workers()}
    # the server too, with or without its workers (one that started would not return)
    for args in (["--no-workers"], []):
        server = top.cli("server", "--port", "0", *args, user="ops")
        assert server.returncode == 2, server.stderr
        assert f"audit key {other_id} ({other_key}) did not sign" in server.stderr
    assert beside_the_release() == logged
    assert same.stop() == 0
    rotate_and_verify(top, events, shared=shared, other_id=other_id)


def rotate_and_verify(top: Topology, events: int, *, shared: str, other_id: str) -> None:
    """Rotating to this process's key, every process stopped: refused with a key that is
    not the log's either; with the log's key file, the worker starts and records it, and
    the new key alone verifies the whole log."""
    from shipcaptain.audit.keys import audit_key_of

    # rotating with a key that is not the log's either is refused
    stranger = top.workdir / "stranger-key.pem"
    audit_key_of(stranger)
    refused = top.cli("worker", "--id", "w2", "--rotate-audit-key", str(stranger), user="ops")
    assert refused.returncode == 2, refused.stderr
    assert "did not sign the newest event of the audit log either" in refused.stderr
    # a deliberate rotation names the key it retires, starts, says so, and records it
    shared_file = top.workdir / "data" / "audit-key.pem"
    rotating = top.running_worker("w2", "--rotate-audit-key", str(shared_file))
    assert f"the log's key {shared} is retired for this process's key {other_id}" in (
        rotating.output
    ), rotating.output
    (started,) = [e for e in top.store.list_events(after_seq=events) if e.kind == "worker.started"]
    assert started.data["audit_key"] == other_id
    assert started.data["audit_key_rotated"] is True
    assert rotating.stop() == 0
    # the new key alone checks the whole log, the retired key's checkpoints included
    verified = top.here("audit", "verify", "--json", user="ops")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    check = json.loads(verified.stdout)
    assert check["ok"] is True, check
    assert check["anchors_checked"] >= 2, check


GATED_TWICE = """
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


def api_says_queued(top: Topology, victim: str, kept: str) -> None:
    """The API's release detail and list say ``victim`` is queued for a worker, ``kept`` not."""
    with (
        server_process(top.url, top.workdir / "data", top.workdir, "--no-workers") as server,
        httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as api,
    ):
        casey = bearer(top.tokens["casey"])
        detail = api.get(f"/releases/{victim}", headers=casey).json()
        assert detail["engine"]["state"] == "queued", detail["engine"]
        assert detail["release"]["queued_for_worker"] is True
        listed_api = {r["id"]: r for r in api.get("/releases", headers=casey).json()}
        assert listed_api[victim]["queued_for_worker"] is True
        assert listed_api[kept]["queued_for_worker"] is False


def test_a_release_taken_over_by_a_full_worker_says_it_is_queued(top: Topology) -> None:
    """Two workers at --concurrency 1, each holding a release at its gate; the holder of one
    is killed. The survivor takes it over, but has no room: until its own release ends,
    `release show` (and its JSON, the API's detail) says the release is queued waiting for
    a worker slot, not running on the survivor; once there is room, the survivor picks it
    up (release.picked_up) and it says so no more."""
    write_runbook(top.workdir, GATED_TWICE)
    workers = {name: top.running_worker(name, "--concurrency", "1") for name in ("w1", "w2")}
    for _ in range(2):
        assert top.here("release", "start", "runbook.yaml", "--detach").returncode == 0

    def at_gate() -> dict[str, str]:
        return {
            g.release_id: str(top.store.get_release(g.release_id).executor_id)
            for g in top.store.list_gates()
            if g.status == "waiting"
        }

    wait_for(lambda: len(at_gate()) == 2, 60, what="both releases at their gate")
    holder = at_gate()
    assert set(holder.values()) == {"w1", "w2"}, holder
    victim, kept = sorted(holder)
    killed, survivor = holder[victim], holder[kept]
    workers[killed].kill()

    def taken_over() -> bool:
        found = top.store.list_events(release_id=victim)
        return any(e.kind == "release.taken_over" for e in found)

    wait_for(taken_over, 60, what="the takeover")
    shown = top.cli("release", "show", victim)
    assert shown.returncode == 0, shown.stderr
    (line,) = [x.strip() for x in shown.stdout.splitlines() if x.strip().startswith("!")]
    assert line.startswith(
        f"! queued, waiting for a worker slot: {survivor} took it over from the stopped "
        f"process {killed} at "
    ), line
    assert f"the first live worker ({survivor}) with room takes it" in line, line
    # as run-workers-on-postgresql.md section 4 shows it
    doc = Path(shipcaptain.__file__).parents[2] / "docs" / "how-to" / "run-workers-on-postgresql.md"
    (shown,) = re.findall(r"^  (! queued, .*)$", doc.read_text(encoding="utf-8"), re.M)
    shown = shown.replace("w1", "{new}").replace("w2", "{old}").format(new=survivor, old=killed)
    moment = r"\d\d:\d\d:\d\dZ"
    assert re.sub(moment, "<at>", line) == re.sub(moment, "<at>", shown), (line, shown)
    as_json = top.here("release", "show", victim, "--json")
    engine = json.loads(as_json.stdout)["engine"]
    assert (engine["state"], engine["executor_id"]) == ("queued", survivor), engine
    listed = top.here("release", "list")
    (row,) = [x.split() for x in listed.stdout.splitlines() if x.startswith(victim)]
    assert "queued" in row, listed.stdout
    assert not [
        e for e in top.store.list_events(release_id=victim) if e.kind == "release.picked_up"
    ]
    api_says_queued(top, victim, kept)
    # room on the survivor: its own release goes on and ends, then it runs the other
    assert top.here("release", "approve", kept, "go", user="sam").returncode == 0
    wait_for(
        lambda: top.store.get_release(kept).status == "succeeded", 60, what="the survivor's release"
    )

    def picked_up() -> list[str]:
        found = top.store.list_events(release_id=victim)
        return [e.data["by"] for e in found if e.kind == "release.picked_up"]

    wait_for(picked_up, 60, what="the pick-up")
    assert picked_up() == [survivor]
    wait_for(lambda: victim in at_gate(), 60, what="the gate again")
    engine = json.loads(top.here("release", "show", victim, "--json").stdout)["engine"]
    assert (engine["state"], engine["message"]) == ("running", ""), engine
    assert top.here("release", "approve", victim, "go", user="sam").returncode == 0
    wait_for(
        lambda: top.store.get_release(victim).status == "succeeded",
        60,
        what="the taken-over release",
    )
    assert effects(top.workdir)[f"{victim}-a"] == 1
    assert workers[survivor].stop() == 0
