"""The how-tos' multi-process sections, run as written: section 4 of
docs/how-to/use-the-dashboard-and-api.md (the CLI against a server) and sections 1 (the
shared audit key), 5 (one release at a time in production) and 6 (upgrading while
releases are in flight) of docs/how-to/run-workers-on-postgresql.md, on PostgreSQL with
`shipcaptain server --no-workers`, two `shipcaptain worker` processes and every command
its own CLI process with --server.

The commands are read from the documents' code blocks, so the documents cannot drift from
what works: a line marked ``# as sam`` runs with sam's token, the others with the
captain's; the release and incident ids the documents show stand for the ones this test
made. Before a command acts on something, the test waits for it, as a person would (the
gate to open, the release to finish)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.processes import wait_for
from helpers.topology import Topology, WorkerProcess, topology
from helpers.web import ServerProcess, server_process
from shipcaptain.audit.keys import audit_key_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HOW_TO = Path(__file__).parents[2] / "docs" / "how-to"
RELEASE_ID = re.compile(r"rel-[0-9a-f]{16}")
INCIDENT_ID = re.compile(r"inc-[0-9a-f]{10}")
CAPTAIN, SRE = "casey", "sam"


def section(document: str, number: int) -> str:
    """Section ``number`` (``## 4. ...``) of a how-to, up to the next section."""
    text = (HOW_TO / document).read_text(encoding="utf-8")
    found = re.search(rf"^## {number}\. .*?(?=^## |\Z)", text, re.M | re.S)
    assert found, f"{document} has no section {number}"
    return found.group(0)


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def commands(block: str) -> list[tuple[str, list[str]]]:
    """The ``shipcaptain`` commands of a bash block: (person, arguments)."""
    found = []
    for line in block.splitlines():
        person = re.search(r"#\s*as (\w+)\s*$", line)
        words = shlex.split(line, comments=True)
        if words and words[0] == "shipcaptain":
            found.append((person.group(1) if person else CAPTAIN, words[1:]))
    return found


def webshop_runbook(workdir: Path) -> str:
    """The service the how-tos release, with the environment lines section 5 gives."""
    (exclusive,) = blocks(section("run-workers-on-postgresql.md", 5), "yaml")
    effects = workdir / "effects"
    return f"""
name: webshop
{exclusive}
parameters:
  environment: {{default: production}}
  version: {{required: true}}
roles:
  release_captain: {{title: Release captain, members: [{CAPTAIN}]}}
  oncall_sre: {{title: On-call SRE, members: [{SRE}]}}
phases:
  - id: all
    steps:
      - {{id: prepare, action: shell,
         with: {{command: "echo {{{{ release.id }}}}-prepare >> {effects}"}}}}
      - {{id: backup_recent, action: approval, needs: [prepare],
         with: {{roles: [oncall_sre], prompt: "Is last night's backup there?"}}}}
      - {{id: deploy, action: shell, needs: [backup_recent],
         with: {{command: "echo {{{{ release.id }}}}-deploy >> {effects}"}},
         undo: {{action: shell, with: {{command: "echo {{{{ release.id }}}}-undo >> {effects}"}}}}}}
slas:
  P1: {{acknowledge: 5m, mitigate: 30m}}
incidents: {{owners: [oncall_sre]}}
"""


#: what `--on-server` names under the server's --runbooks: a service of its own, no gate
VALUECANVAS = """
name: valuecanvas
environment: staging
parameters:
  version: {required: true}
phases:
  - id: all
    steps:
      - {id: ship, action: shell, with: {command: "echo shipped {{ version }}"}}
"""


class People:
    """The CLI with --server, each command its own process, as one person or another."""

    def __init__(self, top: Topology, server: ServerProcess, data_dir: Path) -> None:
        self.top, self.server, self.data_dir = top, server, data_dir
        self.said: list[str] = []

    def run(self, person: str, args: list[str]) -> subprocess.CompletedProcess[str]:
        env = self.top.env(person)
        del env["SHIPCAPTAIN_DATABASE_URL"]  # only the server's address
        env |= {"SHIPCAPTAIN_SERVER": self.server.url, "SHIPCAPTAIN_DATA_DIR": str(self.data_dir)}
        done = subprocess.run(
            [sys.executable, "-m", "shipcaptain", *args],
            env=env,
            cwd=self.top.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.said.append(f"$ {shlex.join(args)}  # as {person}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, self.said[-1]
        return done


@pytest.fixture
def top(tmp_path: Path) -> Iterator[Topology]:
    with topology(tmp_path) as running:
        yield running


def gate_waits(top: Topology, release_id: str, gate: str) -> bool:
    gates = top.store.list_gates(release_id=release_id)
    return any(g.step_id == gate and g.status == "waiting" for g in gates)


def status(top: Topology, release_id: str) -> str:
    return top.store.get_release(release_id).status


def queued_events(top: Topology, release_id: str) -> list[str]:
    events = top.store.list_events(release_id=release_id)
    return [e.message for e in events if e.kind == "release.queued"]


def effects(top: Topology) -> list[str]:
    return (top.workdir / "effects").read_text().split()


def wait_before(top: Topology, args: list[str]) -> None:
    """Wait for what a command acts on, as a person would: the gate it approves open, the
    release it rolls back finished, a release in the status it lists."""
    if args[:2] == ["release", "approve"]:
        release_id, gate = args[2], args[3]
        wait_for(lambda: gate_waits(top, release_id, gate), 60, what=f"gate {gate}")
    elif args[:2] == ["release", "rollback"]:
        release_id = args[2]
        wait_for(lambda: status(top, release_id) == "succeeded", 60, what=release_id)
    elif args[:3] == ["release", "list", "--status"]:
        wanted = args[3]
        wait_for(lambda: any(r.status == wanted for r in top.store.list_releases()), 60)


def cli_against_a_server(top: Topology, people: People) -> None:
    """use-the-dashboard-and-api.md, section 4, as written."""
    (block,) = blocks(section("use-the-dashboard-and-api.md", 4), "bash")
    release_id = incident_id = ""
    for person, documented in commands(block):
        args = [RELEASE_ID.sub(release_id, a) if release_id else a for a in documented]
        args = [INCIDENT_ID.sub(incident_id, a) if incident_id else a for a in args]
        wait_before(top, args)
        said = people.run(person, args).stdout
        if args[:2] == ["release", "start"] and "--detach" in args:
            release_id = RELEASE_ID.findall(said)[0]
        elif args[:2] == ["release", "start"]:  # it followed the release to its end
            assert said.rstrip().splitlines()[-1].split()[1] == "release.succeeded", said
        elif args[:3] == ["release", "list", "--status"]:
            assert release_id in said, said
        elif args[:2] == ["incident", "open"]:
            incident_id = INCIDENT_ID.findall(said)[0]
        elif args[:2] == ["token", "list"]:
            assert {line.split()[1] for line in said.splitlines()} >= {CAPTAIN, SRE}, said
    assert release_id, people.said
    assert incident_id, people.said
    wait_for(lambda: status(top, release_id) == "rolled_back", 60, what="the rollback")
    assert [g for g in top.store.list_gates(release_id=release_id) if g.status == "waiting"] == []
    (incident,) = [i for i in top.store.list_incidents() if i.release_id == release_id]
    # acknowledged by sam, then mitigated by the rollback
    assert (incident.id, incident.status, incident.acknowledged_by) == (
        incident_id,
        "mitigated",
        SRE,
    )
    done = effects(top)
    for step in ("prepare", "deploy", "undo"):
        assert done.count(f"{release_id}-{step}") == 1, done
    valuecanvas = [r for r in top.store.list_releases() if r.runbook_name == "valuecanvas"]
    assert [r.status for r in valuecanvas] == ["succeeded"]


def one_at_a_time_and_upgrading(
    top: Topology, people: People, workers: dict[str, WorkerProcess]
) -> dict[str, WorkerProcess]:
    """run-workers-on-postgresql.md, sections 5 and 6: the production lock, then a
    release in flight cancelled, the workers stopped and started again, the release
    resumed. The workers running at the end."""

    def start(*params: str) -> str:
        args = ["release", "start", "runbook.yaml", *params, "--detach"]
        return str(RELEASE_ID.findall(people.run(CAPTAIN, args).stdout)[0])

    holder = start("-p", "version=3.0.0")
    wait_for(lambda: gate_waits(top, holder, "backup_recent"), 60, what="the holder's gate")
    waiting = start("-p", "version=3.1.0")
    elsewhere = start("-p", "version=3.1.0", "-p", "environment=staging")
    # the other environment runs meanwhile; the second to production waits and says so
    wait_for(lambda: gate_waits(top, elsewhere, "backup_recent"), 60, what="staging")
    wait_for(lambda: queued_events(top, waiting), 60, what="the second one queued")
    (shown,) = blocks(section("run-workers-on-postgresql.md", 5), "text")

    def documented_behind(first: str) -> str:
        """The doc's release.queued line, for webshop and ``first``."""
        line = RELEASE_ID.sub(first, shown.split(maxsplit=1)[1].strip())
        return line.replace("valuecanvas", "webshop")

    assert queued_events(top, waiting) == [documented_behind(holder)]
    assert status(top, waiting) == "pending"
    people.run(SRE, ["release", "approve", elsewhere, "backup_recent"])

    (block,) = blocks(section("run-workers-on-postgresql.md", 6), "bash")
    (cancel, resume) = commands(block)
    assert [cancel[1][:2], resume[1][:2]] == [["release", "cancel"], ["release", "resume"]]
    people.run(cancel[0], [RELEASE_ID.sub(holder, a) for a in cancel[1]])
    assert status(top, holder) == "cancelled"
    for worker in workers.values():  # SIGTERM, as a service manager stops them
        assert worker.stop() == 0, worker.output
    workers = {name: top.running_worker(name) for name in workers}
    people.run(resume[0], [RELEASE_ID.sub(holder, a) for a in resume[1]])
    # the resumed release queues again behind the one already waiting
    wait_for(lambda: gate_waits(top, waiting, "backup_recent"), 60, what="the next one")
    wait_for(
        lambda: queued_events(top, holder)[-1:] == [documented_behind(waiting)],
        60,
        what="the resumed release behind it",
    )
    for release_id in (waiting, holder):
        approve = ["release", "approve", release_id, "backup_recent"]
        wait_before(top, approve)
        people.run(SRE, approve)
    wait_for(
        lambda: all(status(top, r) == "succeeded" for r in (waiting, elsewhere, holder)),
        60,
        what="the three releases",
    )
    assert top.store.get_release(holder).run == 2
    done = effects(top)
    # the resumed run skipped what had finished; every release deployed once
    assert done.count(f"{holder}-prepare") == 1, done
    for release_id in (waiting, elsewhere, holder):
        assert done.count(f"{release_id}-deploy") == 1, done
    listed = people.run(CAPTAIN, ["release", "list", "--status", "waiting"]).stdout
    assert listed.strip() == "no releases with status waiting"
    return workers


def test_the_how_tos_multi_process_sections_as_written(
    top: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = top.workdir
    # section 1 of run-workers-on-postgresql.md: one audit key and one anchor folder for
    # every process of the database (the server and the workers here), as it sets them
    (_, shared_block) = blocks(section("run-workers-on-postgresql.md", 1), "bash")
    key_file, anchor_dir = re.findall(r"^export (SHIPCAPTAIN_\w+)=", shared_block, re.M)
    assert (key_file, anchor_dir) == ("SHIPCAPTAIN_AUDIT_KEY_FILE", "SHIPCAPTAIN_AUDIT_ANCHOR_DIR")
    shared = tmp_path / "shared"
    audit_key_of(shared / "audit-key.pem")
    monkeypatch.setenv(key_file, str(shared / "audit-key.pem"))
    monkeypatch.setenv(anchor_dir, str(shared / "anchors"))
    (workdir / "runbook.yaml").write_text(webshop_runbook(workdir))
    (workdir / "valuecanvas").mkdir()
    (workdir / "valuecanvas" / "runbook.yaml").write_text(VALUECANVAS)
    workers = {name: top.running_worker(name) for name in ("w1", "w2")}
    data = tmp_path / "server-data"
    cli_data = tmp_path / "cli-data"
    with server_process(top.url, data, workdir, "--no-workers", "--runbooks", str(workdir)) as srv:
        people = People(top, srv, cli_data)
        cli_against_a_server(top, people)
        workers = one_at_a_time_and_upgrading(top, people, workers)
        # every process signed with the one key: the whole log verifies
        verified = people.run(SRE, ["audit", "verify"]).stdout
        assert "forged" not in verified, verified
    # the CLI never opened a state database of its own
    assert not cli_data.exists() or not any(cli_data.iterdir())
    for worker in workers.values():
        assert worker.stop() == 0, worker.output


# ---- run-workers-on-postgresql.md sections 2-4, recover-a-release.md and
# handle-an-incident.md, as written: the CLI on the state database (as section 3 says:
# "from anywhere with the same database URL") or with --server, beside two workers


def person_of(line: str) -> str:
    """Who types a documented command: ``# as sam``, ``act sam shipcaptain ...`` or
    ``SHIPCAPTAIN_TOKEN=$SAM_TOKEN shipcaptain ...``; the captain otherwise."""
    for pattern in (r"#\s*as (\w+)\s*$", r"^act (\w+) ", r"SHIPCAPTAIN_TOKEN=\$(\w+)_TOKEN "):
        found = re.search(pattern, line)
        if found:
            return found.group(1).lower()
    return CAPTAIN


def documented(text: str) -> list[tuple[str, list[str]]]:
    """Every ``shipcaptain`` command of a document's bash and console blocks, in order,
    whatever types it (``act casey``, ``$ SHIPCAPTAIN_TOKEN=... ``)."""
    found = []
    for block in re.findall(r"^```(?:bash|console)\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            words = shlex.split(line.removeprefix("$ "), comments=True)
            if "shipcaptain" in words:
                found.append((person_of(line), words[words.index("shipcaptain") + 1 :]))
    return found


def text_blocks(text: str) -> list[str]:
    return [b.strip() for b in blocks(text, "text")]


def shown_with(text: str, words: str) -> str:
    """The one ``text`` block of ``text`` with ``words`` in it."""
    (found,) = [b for b in text_blocks(text) if words in b]
    return found


def cli_ok(top: Topology, person: str, args: list[str]) -> str:
    done = top.cli(*args, user=person)
    assert done.returncode == 0, f"$ {shlex.join(args)}  # as {person}\n{done.stdout}{done.stderr}"
    return done.stdout


def shape(documented_line: str) -> re.Pattern[str]:
    """A documented output line as a pattern: ids, times, durations, hosts and pids stand
    for whatever this run has."""
    pattern = re.escape(documented_line)
    for value, wild in (
        (RELEASE_ID.pattern, RELEASE_ID.pattern),
        (INCIDENT_ID.pattern, INCIDENT_ID.pattern),
        (r"\d\d:\d\d:\d\dZ", r"\d\d:\d\d:\d\dZ"),
        (r"\d+(?:\\\.\d+)?s", r"\d+(?:\.\d+)?s"),
        (r"pid\\ \d+", r"pid\ \d+"),
    ):
        pattern = re.sub(value, lambda _m, w=wild: w, pattern)
    return re.compile(pattern)


def start_workers_as_written(top: Topology) -> dict[str, WorkerProcess]:
    """Section 2: two workers started as written, what they say; a third under a live id."""
    doc = "run-workers-on-postgresql.md"
    # section 2: start the workers, as written, and what one says
    ((_, started),) = commands(blocks(section(doc, 2), "bash")[0])
    assert started[:2] == ["worker", "--id"]
    says, refused = text_blocks(section(doc, 2))[:2]
    workers = {name: top.running_worker(name) for name in ("w1", "w2")}
    first_line, functions_line = says.splitlines()
    running = first_line.replace("postgresql://postgres@127.0.0.1:5432/shipcaptain_docs", "{url}")
    assert workers["w1"].output.splitlines()[0] == running.format(url=top.url), workers["w1"].output
    (listed,) = [x for x in workers["w1"].output.splitlines() if x.startswith("durable functions:")]
    head = functions_line.split("…")[0]
    assert listed.startswith(head), (listed, head)
    counts = re.findall(r"(\d+) (workflows|steps)", functions_line)
    assert re.findall(r"(\d+) (workflows|steps)", listed) == counts, listed
    # under the id of a live worker: refused, exit 5, as the doc shows
    twin = top.cli("worker", "--id", "w1", user="ops")
    assert twin.returncode == 5, twin.stderr
    assert shape(refused.replace("build-01", "{host}")).pattern  # the documented shape
    said = twin.stderr.strip().splitlines()[-1]
    assert said.startswith("error[SC500]: a process with the id w1 is alive ("), said
    assert said.split(")", 1)[1] == refused.split(")", 1)[1].replace("10s", "3s"), said
    return workers


def detached_release_as_written(top: Topology) -> list[str]:
    """Section 3: a release started detached, watched and confirmed; the start command."""
    doc = "run-workers-on-postgresql.md"
    # section 3: a release started detached, watched and confirmed from anywhere
    (start_block, watch_block) = blocks(section(doc, 3), "bash")
    ((person, start),) = commands(start_block)
    out = cli_ok(top, person, start)
    release_id = RELEASE_ID.findall(out)[0]
    queued = text_blocks(section(doc, 3))[0]
    assert out.strip() == RELEASE_ID.sub(release_id, queued), out
    for person, written in commands(watch_block):
        args = [RELEASE_ID.sub(release_id, a) for a in written]
        if args[:2] == ["release", "confirm"]:
            gate = args[3]
            wait_for(lambda g=gate: gate_waits(top, release_id, g), 60, what="the gate")
        said = cli_ok(top, person, args)
        if args[:2] != ["release", "confirm"]:
            assert release_id in said, said
    wait_for(lambda: status(top, release_id) == "succeeded", 60, what="the release")
    return start


def losing_workers_as_written(
    top: Topology, workers: dict[str, WorkerProcess], start: list[str]
) -> None:
    """Section 4: the holder killed, then the other; the views, the takeover, resume."""
    doc = "run-workers-on-postgresql.md"
    # section 4: the worker holding a release dies; the view says so, the other takes over
    second = RELEASE_ID.findall(cli_ok(top, CAPTAIN, start))[0]
    wait_for(lambda: gate_waits(top, second, "backup_recent"), 60, what="its gate")
    holder = top.store.get_release(second).executor_id
    assert holder in workers, holder
    (other,) = set(workers) - {holder}
    workers[holder].kill()
    taken_over = shown_with(section(doc, 4), "release.taken_over")
    nobody = shown_with(section(doc, 4), "a live worker (w1) takes it over")
    no_worker = shown_with(section(doc, 4), "no worker is alive to take it over")
    workers_table = shown_with(section(doc, 4), "EXECUTOR")
    shown = cli_ok(top, CAPTAIN, ["release", "show", second])
    if "nobody runs this release" in shown:  # before the takeover: says who will
        (line,) = [x.strip() for x in shown.splitlines() if x.strip().startswith("!")]
        expected = nobody.splitlines()[-1].strip()
        expected = expected.replace("w2", holder, 1).replace("(w1)", f"({other})")
        assert shape(expected.replace("10s", "3s")).fullmatch(line), (line, expected)
    wait_for(lambda: top.store.get_release(second).executor_id == other, 60, what="takeover")
    timeline = cli_ok(top, CAPTAIN, ["release", "show", second])
    (line,) = [x for x in timeline.splitlines() if " release.taken_over " in x]
    expected = taken_over.replace("w1", "{new}").replace("w2", "{old}")
    expected = expected.format(new=other, old=holder).replace("11s", "3s")
    assert shape(expected).search(line), (line, expected)
    table = cli_ok(top, CAPTAIN, ["workers"])
    assert table.splitlines()[0].split() == workers_table.splitlines()[0].split(), table
    assert any(x.split()[0] == other and second in x for x in table.splitlines()), table
    # taken over, the release waits on the release queue until the other picks it up: killed
    # before that (a takeover late under load), the view says "queued", not "nobody runs it"
    wait_for(lambda: top.store.awaiting_pickup(second) is None, 60, what="the pickup")
    # and with no worker left, the view says what to do, and resume runs it here
    workers[other].kill()
    shown = cli_ok(top, CAPTAIN, ["release", "show", second])
    (line,) = [x.strip() for x in shown.splitlines() if x.strip().startswith("!")]
    expected = no_worker.strip().replace("w1", other)
    assert shape(RELEASE_ID.sub(second, expected)).fullmatch(line), (line, expected)
    (resume_block,) = [b for b in blocks(section(doc, 4), "bash") if "resume" in b]
    ((person, resume),) = commands(resume_block)
    resume = [RELEASE_ID.sub(second, a) for a in resume]
    follow = subprocess.Popen(
        [sys.executable, "-m", "shipcaptain", *resume],
        env=top.env(person),
        cwd=top.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: gate_waits(top, second, "backup_recent"), 60, what="the gate again")
        cli_ok(top, SRE, ["release", "approve", second, "backup_recent"])
        out, _ = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, out
    assert out.startswith(f"resuming {second} (its process {other} is gone): taking over run 1")
    assert status(top, second) == "succeeded"
    assert effects(top).count(f"{second}-deploy") == 1


def test_starting_watching_and_losing_workers_as_written(top: Topology) -> None:
    """run-workers-on-postgresql.md sections 2 to 4: two workers started as written (what
    they say, a second one under a live id refused), a release started detached, watched
    and confirmed from the CLI, its worker killed (every view says so, the other takes it
    over), then both killed (the view says what to do) and the release resumed from the
    CLI, as written."""
    (top.workdir / "runbook.yaml").write_text(webshop_runbook(top.workdir))
    workers = start_workers_as_written(top)
    start = detached_release_as_written(top)
    losing_workers_as_written(top, workers, start)


#: recover-a-release.md's story: a backup to confirm, release notes that may be missing
RECOVERABLE = f"""
name: webshop
environment: staging
parameters:
  version: {{default: 2.1.0}}
roles:
  oncall_sre: {{title: On-call SRE, members: [{SRE}]}}
phases:
  - id: all
    steps:
      - {{id: backup_recent, action: checklist, owner: oncall_sre,
         with: {{item: "A backup within the last 24h.", confirm_by: oncall_sre}}}}
      - {{id: release_notes, action: shell, needs: [backup_recent],
         with: {{command: "test -f notes.md"}}}}
      - {{id: build, action: shell, needs: [release_notes],
         with: {{command: "echo {{{{ release.id }}}}-build >> effects"}}}}
"""


def taking_over_a_dead_terminal(
    top: Topology, take: list[str], taker: str, said: str, known: set[str]
) -> None:
    """recover-a-release.md: a release followed in a terminal that dies (kill -9) is taken
    over by ``take`` (the documented resume), which says ``said`` and follows it to its end."""
    # --stay: with workers alive, a terminal hands its release to them at a gate (and the
    # kill below would find nothing left to take over: the race seen under load)
    terminal = subprocess.Popen(
        [sys.executable, "-m", "shipcaptain", "release", "start", "runbook.yaml", "--stay"],
        env=top.env(CAPTAIN),
        cwd=top.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: top.store.list_releases()[0].id not in known, 60)
    orphan = top.store.list_releases()[0].id
    wait_for(lambda: gate_waits(top, orphan, "backup_recent"), 60, what="its gate")
    terminal.kill()
    terminal.wait(timeout=10)
    # the workers look on while the dead terminal's heartbeat grows old past their takeover
    # window (3 s): they take over only workers' releases, so it still waits for a person
    [beat] = [w for w in top.store.list_workers() if w.executor_id == f"cli-{orphan}"]
    assert beat.kind == "engine"
    wait_for(
        lambda: time.time() - beat.heartbeat_at.timestamp() > 3 + 2 * 0.5,
        30,
        what="the takeover window",
    )
    assert top.store.get_release(orphan).executor_id == beat.executor_id
    follow = subprocess.Popen(
        [sys.executable, "-m", "shipcaptain", *[RELEASE_ID.sub(orphan, a) for a in take]],
        env=top.env(taker),
        cwd=top.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: gate_waits(top, orphan, "backup_recent"), 60, what="the gate")
        cli_ok(top, SRE, ["release", "confirm", orphan, "backup_recent"])
        out, _ = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, out
    assert out.splitlines()[0] == RELEASE_ID.sub(orphan, said), out
    assert effects(top).count(f"{orphan}-build") == 1


def test_recovering_releases_as_written(top: Topology) -> None:
    """recover-a-release.md, with two workers running: a detached release cancelled, one
    that failed resumed once fixed (the backup confirmed in run 1 not asked again), and
    one whose terminal was killed taken over with the same command, as written."""
    text = (HOW_TO / "recover-a-release.md").read_text(encoding="utf-8")
    steps = documented(text)
    assert [a[:2] for _, a in steps] == [
        ["release", "list"],
        ["release", "show"],
        ["release", "cancel"],
        ["release", "resume"],
        ["release", "resume"],
        ["worker", "--id"],
    ], steps
    (_, watch), (_, show), (canceller, cancel), (resumer, resume), (taker, take) = steps[:5]
    said = text_blocks(text)
    (top.workdir / "runbook.yaml").write_text(RECOVERABLE)
    for name in ("w1", "w2"):
        top.running_worker(name)

    def detached() -> str:
        out = cli_ok(top, CAPTAIN, ["release", "start", "runbook.yaml", "--detach"])
        return str(RELEASE_ID.findall(out)[0])

    def confirm(release_id: str) -> None:
        wait_for(lambda: gate_waits(top, release_id, "backup_recent"), 60, what="the gate")
        cli_ok(top, SRE, ["release", "confirm", release_id, "backup_recent"])

    # where is the release? then cancel one
    failing, cancelled = detached(), detached()
    confirm(failing)
    wait_for(lambda: status(top, failing) == "failed", 60, what="the failure")
    assert failing in cli_ok(top, CAPTAIN, watch)
    shown = cli_ok(top, CAPTAIN, [RELEASE_ID.sub(failing, a) for a in show])
    assert "failed at release_notes" in shown, shown
    wait_for(lambda: gate_waits(top, cancelled, "backup_recent"), 60, what="its gate")
    out = cli_ok(top, canceller, [RELEASE_ID.sub(cancelled, a) for a in cancel])
    assert out.strip() == RELEASE_ID.sub(cancelled, said[0]), out
    assert status(top, cancelled) == "cancelled"
    assert [g for g in top.store.list_gates(release_id=cancelled) if g.status == "waiting"] == []

    # resume the failed one once fixed: a new run, in this terminal, to its end
    (top.workdir / "notes.md").write_text("2.1.0\n")
    done = top.cli(*[RELEASE_ID.sub(failing, a) for a in resume], user=resumer)
    assert done.returncode == 0, done.stdout + done.stderr
    first, *_ = said[1].splitlines()
    assert done.stdout.splitlines()[0] == RELEASE_ID.sub(failing, first), done.stdout
    for line in said[1].splitlines()[2:]:
        kind, rest = line.split(maxsplit=2)[1:]
        if kind in {"release.resumed", "release.running"} or "[backup_recent]" in rest:
            assert any(kind in x and rest in x for x in done.stdout.splitlines()), (
                line,
                done.stdout,
            )
    assert top.store.get_release(failing).run == 2
    assert status(top, failing) == "succeeded"

    taking_over_a_dead_terminal(top, take, taker, said[2], known={failing, cancelled})


def at(text: str) -> str:
    """``text`` with its moments (``2026-11-02 09:00:00Z``, ``09:05:00Z``) as ``<at>``."""
    return re.sub(r"(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\dZ", "<at>", text)


def test_handling_an_incident_as_written(
    top: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """handle-an-incident.md, as the SRE types it, with the CLI on --server beside two
    workers: an incident opened on a release, acknowledged, mitigated, resolved, shown,
    listed and reported, each output as the document shows it."""
    text = (HOW_TO / "handle-an-incident.md").read_text(encoding="utf-8")
    monkeypatch.setenv("SHIPCAPTAIN_AUDIT_KEY_FILE", str(tmp_path / "shared" / "audit-key.pem"))
    (top.workdir / "runbook.yaml").write_text(webshop_runbook(top.workdir))
    for name in ("w1", "w2"):
        top.running_worker(name)
    today = top.store.list_events()[-1].at.date()
    with server_process(top.url, tmp_path / "server-data", top.workdir, "--no-workers") as srv:
        people = People(top, srv, tmp_path / "cli-data")
        start = ["release", "start", "runbook.yaml", "-p", "version=1.0.0", "--detach"]
        release_id = RELEASE_ID.findall(people.run(CAPTAIN, start).stdout)[0]
        wait_for(lambda: gate_waits(top, release_id, "backup_recent"), 60, what="its gate")
        written = documented(text)
        assert [a[:2] for _, a in written] == [
            ["incident", "open"],
            ["incident", "ack"],
            ["incident", "mitigate"],
            ["incident", "resolve"],
            ["incident", "show"],
            ["incident", "list"],
            ["sla", "report"],
        ], written
        console = re.findall(r"^```console\n(.*?)^```", text, re.M | re.S)
        incident_id = ""
        for person, typed in written:
            args = [RELEASE_ID.sub(release_id, a) for a in typed]
            args = [INCIDENT_ID.sub(incident_id, a) if incident_id else a for a in args]
            if args[0] == "sla":  # the document's month is over: this month's report
                args = ["sla", "report", "--since", f"{today}"]
            said = people.run(person, args).stdout
            if args[:2] == ["incident", "open"]:
                incident_id = INCIDENT_ID.findall(said)[0]
                shown = console[0].split("\n", 1)[1]
                shown = RELEASE_ID.sub(release_id, shown)
                shown = INCIDENT_ID.sub(incident_id, shown)
                assert [at(x) for x in said.splitlines()] == at(shown).splitlines(), said
            elif args[:2] == ["incident", "show"]:
                assert incident_id in said, said
                assert "resolved" in said, said
            elif args[:2] == ["incident", "list"]:
                assert incident_id in said, said
            elif args[0] == "sla":
                header, *_, total = console[-1].strip().splitlines()[1:]
                lines = said.strip().splitlines()
                assert lines[0].split() == header.split(), said
                (row,) = [x for x in lines if x.startswith(incident_id)]
                assert row.split()[1] == "P1", said
                assert row.split()[-3::2] == ["met", "met"], said
                assert lines[-1] == re.sub(r"\d+ incidents", "1 incident", total).replace(
                    "1/2", "1/1"
                ).replace("2/2", "1/1"), said
    (incident,) = top.store.list_incidents()
    assert (incident.status, incident.acknowledged_by, incident.release_id) == (
        "resolved",
        SRE,
        release_id,
    )
