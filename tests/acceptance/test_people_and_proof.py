"""People and proof through the real CLI: the team file, tokens (create, login, expire,
revoke), the permission table per environment, audit verify on a tampered log, the
evidence bundle, and a canary secret that must appear in no output."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from helpers.databases import postgres_database, raw_engine, tamper_with_events
from helpers.processes import STACKS_ON_ABORT, ended_or_stacks, wait_for
from helpers.releases import write_runbook
from helpers.team import People
from shipcaptain.audit.keys import AuditKey
from shipcaptain.store import Store, open_store

CLI = [sys.executable, "-m", "shipcaptain.cli.main"]

TEAM_FILE = """\
people:
  cara:
    name: Cara
    admin: true
    roles: {"*": [release_captain]}
  sid:
    roles:
      production: [oncall_sre]
  fay:
    roles: [feature_owner]
    surfaces: [billing]
  robot:
    name: the workers' service person
    roles: {"*": [worker]}
environments:
  production: {protected: false}  # the allow-list has its own tests (test_authority.py)
"""

RUNBOOK = """\
name: small
environment: "{{ environment }}"
parameters:
  environment: {default: production}
roles:
  release_captain: {title: Release Captain}
  oncall_sre: {title: On-Call SRE}
  feature_owner: {title: Feature Owner}
phases:
  - id: one
    steps:
      - {id: wait, action: shell, with: {command: "sleep 30"}}
"""


@pytest.fixture
def people(database_url: str, tmp_path: Path) -> People:
    (tmp_path / "team.yaml").write_text(TEAM_FILE, encoding="utf-8")
    return People(database_url, tmp_path)


def bootstrap(people: People, *, processes: bool = False) -> dict[str, str]:
    """The team applied and tokens for cara, sid and fay. Run in this process (the test's
    setup) unless ``processes``: test_bootstrap_login_and_token_lifecycle runs these commands
    as the real CLI processes, the others only need their result."""
    run, token = (people.run, people.token) if processes else (people.setup, people.setup_token)
    applied = run("team", "apply", "team.yaml", "--bootstrap")
    assert applied.returncode == 0, applied.stderr
    cara = token("--for", "cara", "--bootstrap")
    return {
        "cara": cara,
        "sid": token("--for", "sid", token=cara),
        "fay": token("--for", "fay", token=cara),
    }


def test_bootstrap_login_and_token_lifecycle(people: People) -> None:
    # before any token: nothing but the bootstrap works
    refused = people.run("release", "list")
    assert refused.returncode == 4
    assert "not logged in" in refused.stderr
    tokens = bootstrap(people, processes=True)
    again = people.run("token", "create", "--for", "cara", "--bootstrap")
    assert again.returncode == 4
    assert "already holds a live token" in again.stderr

    # login keeps the token in the config dir, readable by its owner only
    login = people.run("login", "--token-stdin", stdin=tokens["sid"] + "\n")
    assert login.returncode == 0, login.stderr
    saved = people.workdir / "config" / "shipcaptain" / "token"
    assert saved.read_text().strip() == tokens["sid"]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    mine = people.run("token", "list", "--json")
    assert mine.returncode == 0, mine.stderr
    listed = json.loads(mine.stdout)
    assert {t["person"] for t in listed} == {"sid"}
    assert all(tokens["sid"] not in json.dumps(t) for t in listed)

    # sid is no admin: no token for someone else, no team change
    assert people.run("token", "create", "--for", "fay").returncode == 4
    assert people.run("team", "apply", "team.yaml").returncode == 4

    # an expiring token stops working; a revoked one too; neither is echoed. Its hour is
    # long enough for the use under any load; then its end comes (moved to when it was
    # made, as the clock would move past it): the same check, without waiting on the clock
    expiring = people.token(
        "--for", "fay", "--expires-in", "1h", "--label", "expiring", token=tokens["cara"]
    )
    assert people.run("release", "list", token=expiring).returncode == 0
    (made,) = [t for t in listed_tokens(people, tokens["cara"]) if t["label"] == "expiring"]
    lifetime = datetime.fromisoformat(made["expires_at"]) - datetime.fromisoformat(
        made["created_at"]
    )
    assert (made["state"], lifetime) == ("active", timedelta(hours=1))
    end_token_now(people, made["id"])
    expired = people.run("release", "list", token=expiring)
    assert (expired.returncode, "expired" in expired.stderr) == (4, True)
    assert expiring not in expired.stderr
    fay_id = next(
        t["id"]
        for t in listed_tokens(people, tokens["cara"])
        if t["person"] == "fay" and t["state"] == "active"
    )
    revoked = people.run("token", "revoke", fay_id, token=tokens["cara"])
    assert revoked.returncode == 0, revoked.stderr
    after = people.run("release", "list", token=tokens["fay"])
    assert (after.returncode, "revoked" in after.stderr) == (4, True)
    assert tokens["fay"] not in after.stderr

    with open_store(people.env["SHIPCAPTAIN_DATABASE_URL"]) as store:
        kinds = [e.kind for e in store.list_events()]
    assert kinds.count("token.created") == 4
    assert kinds.count("token.revoked") == 1
    assert kinds[0] == "team.applied"


def listed_tokens(people: People, token: str) -> list[dict[str, Any]]:
    """``token list --json`` as ``token``'s person (read in this process: the test looks
    up ids with it; ``token list`` as a child is the login check above)."""
    done = people.setup("token", "list", "--json", token=token)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def end_token_now(people: People, token_id: str) -> None:
    """The token's end moved back to when it was made: expired from now on, as if the
    clock had gone past its end."""
    with raw_engine(people.env["SHIPCAPTAIN_DATABASE_URL"]) as engine, engine.begin() as conn:
        changed = conn.execute(
            text("UPDATE sc_tokens SET expires_at = created_at WHERE id = :id"), {"id": token_id}
        ).rowcount
    assert changed == 1


def test_a_bad_team_file_names_file_line_and_field_and_applies_nothing(people: People) -> None:
    (people.workdir / "bad.yaml").write_text(
        "people:\n  cara:\n    admin: true\n    roles: {production: []}\n  sid:\n    role: [x]\n",
        encoding="utf-8",
    )
    done = people.run("team", "apply", "bad.yaml", "--bootstrap")
    assert done.returncode == 2
    assert "bad.yaml:6: people.sid.role: unknown field 'role'" in done.stderr
    with open_store(people.env["SHIPCAPTAIN_DATABASE_URL"]) as store:
        store.migrate()
        assert store.list_people() == []


#: (who, environment, may start) with the default permissions and TEAM_FILE's roles
START_TABLE = [
    ("cara", "production", True),
    ("cara", "staging", True),
    ("sid", "production", False),
    ("fay", "staging", False),
]
#: (who, environment, may cancel)
CANCEL_TABLE = [
    ("sid", "production", True),
    ("sid", "staging", False),
    ("fay", "production", False),
]


def test_the_permission_table_through_the_cli(people: People, tmp_path: Path) -> None:
    tokens = bootstrap(people)
    runbook = write_runbook(tmp_path, RUNBOOK)
    started: dict[str, str] = {}
    # the table through the CLI's commands in this process (exit codes and JSON as a user
    # gets them, without a child's start-up for each row); the resumes below, and the
    # other tests of release start and cancel, run them as child processes
    for who, environment, allowed in START_TABLE:
        done = people.setup(
            "release",
            "start",
            str(runbook),
            "--detach",
            "--json",
            "-p",
            f"environment={environment}",
            token=tokens[who],
        )
        assert (done.returncode == 0) == allowed, (who, environment, done.stderr)
        if allowed:
            started[environment] = json.loads(done.stdout)["id"]
        else:
            assert done.returncode == 4
            message = json.loads(done.stdout)["error"]["message"]
            assert f"may not start a release (release.start) in {environment}" in message
    for who, environment, allowed in CANCEL_TABLE:
        done = people.setup(
            "release", "cancel", started[environment], "--reason", "table", token=tokens[who]
        )
        assert (done.returncode == 0) == allowed, (who, environment, done.stderr)
        if not allowed:
            assert done.returncode == 4
    # resume: sid in production (the release he cancelled), not in staging
    assert (
        people.setup(
            "release", "cancel", started["staging"], "--reason", "x", token=tokens["cara"]
        ).returncode
        == 0
    )
    assert (
        people.run(
            "release", "resume", started["staging"], "--detach", token=tokens["sid"]
        ).returncode
        == 4
    )
    assert (
        people.run(
            "release", "resume", started["production"], "--detach", token=tokens["sid"]
        ).returncode
        == 0
    )


#: (who, environment, may apply migrations) with the default permissions
MIGRATE_TABLE = [
    ("cara", "production", True),
    ("cara", "staging", True),
    ("sid", "production", False),
    ("fay", "staging", False),
    ("robot", "staging", False),
]
#: (who, may run a worker): the role must be held in every environment
WORKER_TABLE = [("robot", True), ("cara", True), ("sid", False), ("fay", False)]


def test_migrations_and_workers_through_the_cli(people: People, tmp_path: Path) -> None:
    tokens = bootstrap(people)
    tokens["robot"] = people.setup_token("--for", "robot", token=tokens["cara"])
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "1_boards.sql").write_text("CREATE TABLE boards (id int);\n")
    with postgres_database("sc_migrate") as target:
        apply = ["migrations", "apply", "migrations", "--phase", "expand", "--database-url"]
        nobody = people.run(*apply, target, "--dry-run", "-e", "staging")
        assert nobody.returncode == 4
        assert "you are not logged in" in nobody.stderr
        # the table's rows in this process (the refusal above is the child process)
        for who, environment, allowed in MIGRATE_TABLE:
            done = people.setup(
                *apply, target, "--dry-run", "-e", environment, "--json", token=tokens[who]
            )
            assert (done.returncode == 0) == allowed, (who, environment, done.stderr)
            if allowed:
                assert json.loads(done.stdout)["summary"].startswith("would apply 1 expand")
            else:
                assert done.returncode == 4
                message = json.loads(done.stdout)["error"]["message"]
                assert f"(migrations.apply) in {environment}" in message
    for who, allowed in WORKER_TABLE:
        env = {**people.env, "SHIPCAPTAIN_TOKEN": tokens[who], **STACKS_ON_ABORT}
        worker = subprocess.Popen(
            [*CLI, "worker", "--id", f"w-{who}"],
            env=env,
            cwd=people.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if allowed:
            assert worker.stderr is not None
            assert f"worker w-{who} running" in worker.stderr.readline()
            worker.terminate()
        _, err = ended_or_stacks(worker, 60, f"worker w-{who}, after SIGTERM,")
        assert (worker.returncode == 0) == allowed, (who, err)
        if not allowed:
            assert worker.returncode == 4
            assert "may not run releases in an engine process (worker.run) in every" in err
    with open_store(people.env["SHIPCAPTAIN_DATABASE_URL"]) as store:
        events = store.list_events()
    assert [(e.actor, e.data["environment"]) for e in events if e.kind == "migrations.dry_run"] == [
        ("cara", "production"),
        ("cara", "staging"),
    ]
    assert [e.actor for e in events if e.kind == "worker.started"] == ["robot", "cara"]


def keyed_store(people: People) -> Store:
    """The state database, appending with the audit key the CLI uses."""
    store = open_store(people.env["SHIPCAPTAIN_DATABASE_URL"])
    key = Path(people.env["SHIPCAPTAIN_DATA_DIR"]) / "audit-key.pem"
    store.use_audit_key(AuditKey.load_or_create(key))
    return store


def test_audit_verify_names_the_first_broken_event(people: People) -> None:
    tokens = bootstrap(people)
    url = people.env["SHIPCAPTAIN_DATABASE_URL"]
    with keyed_store(people) as store:
        for n in range(5):
            store.append_event("rel-1", None, "test", "ann", f"event {n}")
    ok = people.run("audit", "verify", token=tokens["sid"])
    assert ok.returncode == 0, ok.stderr
    assert "audit log intact: 9 events" in ok.stdout
    # edit
    tamper_with_events(url, "UPDATE sc_events SET message = 'nothing' WHERE seq = 6")
    # the broken chain's answers in this process (the intact one above is the child process)
    edited = people.setup("audit", "verify", "--json", token=tokens["sid"])
    assert edited.returncode == 5
    assert json.loads(edited.stdout)["broken_seq"] == 6
    loud = people.setup("audit", "verify", token=tokens["sid"])
    assert "BROKEN at event #6" in loud.stderr


@pytest.mark.parametrize("tampering", ["delete", "reorder"])
def test_audit_verify_detects_deleted_and_reordered_events(people: People, tampering: str) -> None:
    tokens = bootstrap(people)
    url = people.env["SHIPCAPTAIN_DATABASE_URL"]
    with keyed_store(people) as store:
        for n in range(5):
            store.append_event("rel-1", None, "test", "ann", f"event {n}")
    if tampering == "delete":
        tamper_with_events(url, "DELETE FROM sc_events WHERE seq = 7")
    else:
        tamper_with_events(url, "UPDATE sc_events SET seq = 100 WHERE seq = 7")
        tamper_with_events(url, "UPDATE sc_events SET seq = 7 WHERE seq = 8")
        tamper_with_events(url, "UPDATE sc_events SET seq = 8 WHERE seq = 100")
    done = people.setup("audit", "verify", "--json", token=tokens["sid"])
    assert done.returncode == 5
    assert json.loads(done.stdout)["broken_seq"] == 7


GATED = """\
name: gated
environment: "{{ environment }}"
parameters:
  environment: {default: production}
roles:
  release_captain: {title: Release Captain}
  oncall_sre: {title: On-Call SRE}
phases:
  - id: one
    steps:
      - id: notify
        action: shell
        with:
          command: 'echo "posting to $NOTIFY_WEBHOOK and $STATE_URL"'
          secrets: [NOTIFY_WEBHOOK, STATE_URL]
      - id: go
        action: approval
        needs: [notify]
        with:
          prompt: ship it?
          roles: [oncall_sre]
          evidence: {error_rate: 0.001, diff: "3 files changed"}
          timeout: 1h
      - {id: after, action: shell, needs: [go], with: {command: "echo done"}}
"""


def assert_timeline_in(bundle: dict[str, Any], report: str) -> None:
    """The approval, and every status change with the status before and after."""
    assert any(e["kind"] == "gate.approved" for e in bundle["timeline"])
    changes = [(e["kind"], e["step"], e["data"].get("after")) for e in bundle["timeline"]]
    assert ("release.succeeded", None, "succeeded") in changes
    assert ("step.succeeded", "after", "succeeded") in changes
    assert "| release.succeeded | running → succeeded |" in report
    assert "| step.started (notify) | pending → running |" in report


def test_evidence_bundle_and_no_canary_secret_anywhere(database_url: str, tmp_path: Path) -> None:
    canary = "CanaryS3cret4242"
    # the state database's URL carries a password (the test server trusts any)
    if database_url.startswith("postgresql"):
        url = database_url.replace("postgres@", f"postgres:{canary}@", 1)
    else:
        url = database_url
    (tmp_path / "team.yaml").write_text(TEAM_FILE, encoding="utf-8")
    people = People(url, tmp_path)
    people.env["NOTIFY_WEBHOOK"] = f"https://hooks.slack.com/services/T000/B000/{canary}"
    people.env["STATE_URL"] = f"postgresql://app:{canary}@db.internal:5432/app"
    tokens = bootstrap(people)
    runbook = write_runbook(tmp_path, GATED)
    env = {**people.env, "SHIPCAPTAIN_TOKEN": tokens["cara"]}
    run = subprocess.Popen(
        [*CLI, "--debug", "release", "start", str(runbook)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with open_store(url) as store:
        wait_for(lambda: bool(store.list_gates(status="waiting")), timeout=60)
        release_id = store.list_releases()[0].id
    refused = people.run("release", "approve", release_id, "go", token=tokens["cara"])
    assert refused.returncode == 4
    assert "separation of duties" in refused.stderr
    approved = people.run(
        "release", "approve", release_id, "go", "-m", "looks fine", token=tokens["sid"]
    )
    assert approved.returncode == 0, approved.stderr
    out, err = run.communicate(timeout=60)
    people.outputs += [out, err]
    assert run.returncode == 0, err
    shown = people.run("release", "show", release_id, "--json", token=tokens["sid"])
    assert shown.returncode == 0
    people.run("release", "show", release_id, token=tokens["sid"])
    exported = people.run("audit", "export", release_id, "-o", "bundle", token=tokens["sid"])
    assert exported.returncode == 0, exported.stderr
    bundle = json.loads((tmp_path / "bundle" / f"evidence-{release_id}.json").read_text())
    report = (tmp_path / "bundle" / f"evidence-{release_id}.md").read_text()

    # the approval with what sid saw
    [gate] = [a for a in bundle["approvals"] if a["step"] == "go"]
    [decision] = gate["decisions"]
    assert (decision["person"], decision["role"], decision["comment"]) == (
        "sid",
        "oncall_sre",
        "looks fine",
    )
    assert decision["evidence_seen"]["error_rate"] == 0.001
    assert "**sid** as oncall_sre approved: looks fine" in report
    assert bundle["audit_chain"]["ok"] is True
    assert bundle["release"]["started_by"] == "cara"
    assert [s["id"] for s in bundle["steps"]] == ["notify", "go", "after"]
    assert bundle["digests"]["runbook"] == bundle["release"]["runbook_digest"]
    assert_timeline_in(bundle, report)

    # the canary (and the tokens) appear nowhere: CLI output, events, exports, logs
    with open_store(url) as raw:
        events = json.dumps([e.__dict__ for e in raw.list_events()], default=str)
        steps = json.dumps(
            [r.__dict__ for r in raw.latest_step_runs(release_id).values()], default=str
        )
    files = [
        p.read_text(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.suffix in (".json", ".md", ".log", "")
    ]
    everything = "\n".join([*people.outputs, events, steps, *files])
    assert "posting to" in everything  # the step's output is there, redacted
    assert canary not in everything
    after_bootstrap = "\n".join([*people.outputs[8:], events, steps])  # token create shows them
    for secret in tokens.values():
        assert secret not in after_bootstrap
