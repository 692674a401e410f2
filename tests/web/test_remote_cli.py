"""The CLI against a server (--server / SHIPCAPTAIN_SERVER with SHIPCAPTAIN_TOKEN): the
release commands act through the API, as the token's person, with the same messages and
exit codes as on the local state database."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from helpers.databases import postgres_database
from helpers.releases import Harness, write_runbook
from helpers.team import OPEN_PERMISSIONS
from helpers.web import GATED, bearer, token_for
from shipcaptain.cli.main import cli
from shipcaptain.contract import Service
from shipcaptain.errors import InvalidState, NotFound, PermissionDenied
from shipcaptain.records import ReleaseFilter
from shipcaptain.remote import RemoteClient
from shipcaptain.store.urls import mask_url
from shipcaptain.team import team_document
from shipcaptain.web.app import create_app
from shipcaptain.web.server import serving_in_thread as serving

PLAIN = """name: plain
phases:
  - id: only
    steps:
      - {id: hello, action: shell, with: {command: "echo hello"}}
"""


@pytest.fixture
def url(h: Harness, tmp_path: Path) -> Iterator[str]:
    with serving(create_app(h.settings, client=h.client, runbook_root=tmp_path)) as base:
        yield base


def run(url: str, token: str, tmp_path: Path, *args: str) -> Result:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "SHIPCAPTAIN_SERVER": url,
        "SHIPCAPTAIN_TOKEN": token,
        # the local state is elsewhere: everything must go through the server
        "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "elsewhere"),
        "SHIPCAPTAIN_DATABASE_URL": "",
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_start_list_show_approve_and_cancel_through_a_server(
    url: str, h: Harness, tmp_path: Path
) -> None:
    runbook = write_runbook(tmp_path, GATED, "gated.yaml")
    casey, sam = token_for(h.client.store, "casey"), token_for(h.client.store, "sam")
    started = run(url, casey, tmp_path, "release", "start", str(runbook), "--detach", "--json")
    assert started.exit_code == 0, started.output
    release_id = json.loads(started.output)["id"]
    assert h.client.get(release_id).started_by == "casey"
    h.wait_for_gate(release_id, "go_ahead")

    listed = run(url, sam, tmp_path, "release", "list", "--status", "waiting")
    assert release_id in listed.output
    assert "casey" in listed.output
    shown = run(url, sam, tmp_path, "release", "show", release_id)
    assert "waiting: go_ahead: ship it?" in shown.output
    assert "✔ build" in shown.output

    own = run(url, casey, tmp_path, "release", "approve", release_id, "go_ahead")
    assert own.exit_code == 4
    assert "separation of duties" in own.output
    approved = run(url, sam, tmp_path, "release", "approve", release_id, "go_ahead", "-m", "ok")
    assert approved.exit_code == 0, approved.output
    assert approved.output.strip() == "sam: approval of go_ahead recorded"
    assert h.wait(release_id).status == "succeeded"

    gone = run(url, sam, tmp_path, "release", "cancel", release_id, "--reason", "late")
    assert gone.exit_code == 5
    assert "only an active release can be cancelled" in gone.output
    missing = run(url, sam, tmp_path, "release", "show", "rel-nope", "--json")
    assert missing.exit_code == 3
    assert json.loads(missing.output)["error"]["code"] == "SC300"


def test_start_follows_the_release_the_server_runs(url: str, h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, PLAIN, "plain.yaml")
    followed = run(
        url, token_for(h.client.store, "casey"), tmp_path, "release", "start", str(runbook)
    )
    assert followed.exit_code == 0, followed.output
    lines = followed.output.splitlines()
    assert lines[0].endswith("started by casey")
    assert "[hello] exit 0" in followed.output
    assert lines[-1].split()[1:] == ["release.succeeded", "all", "1", "steps", "done"]


def test_reject_and_workers_and_a_bad_token(url: str, h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, GATED, "gated.yaml")
    release = h.start(runbook)
    h.wait_for_gate(release.id, "go_ahead")
    sam = token_for(h.client.store, "sam")
    rejected = run(url, sam, tmp_path, "release", "reject", release.id, "go_ahead", "-m", "no")
    assert rejected.exit_code == 0, rejected.output
    assert h.wait(release.id).status == "failed"
    workers = run(url, sam, tmp_path, "workers", "--json")
    assert [w["executor_id"] for w in json.loads(workers.output)] == ["test-engine"]
    refused = run(url, "sct_wrong", tmp_path, "release", "list")
    assert refused.exit_code == 4
    assert "error[SC410]: unknown token" in refused.output
    no_token = run(url, "", tmp_path, "release", "list")
    assert no_token.exit_code == 2
    assert "SHIPCAPTAIN_TOKEN" in no_token.output
    (tmp_path / "config" / "shipcaptain").mkdir(parents=True)
    (tmp_path / "config" / "shipcaptain" / "token").write_text(sam + "\n", encoding="utf-8")
    saved = run(url, "", tmp_path, "release", "list", "--json")
    assert saved.exit_code == 0, saved.output
    assert [r["id"] for r in json.loads(saved.output)] == [release.id]


UNDOABLE = """name: undoable
roles:
  release_captain: {title: Captain, members: [casey]}
  oncall_sre: {title: SRE, members: [sam, casey]}
phases:
  - id: only
    steps:
      - id: deploy
        action: shell
        with: {command: "echo deployed"}
        undo: {action: shell, with: {command: "echo undone"}}
"""


def test_an_incident_and_its_rollback_through_a_server(
    url: str, h: Harness, tmp_path: Path
) -> None:
    """In an incident the captain and the SRE may only have the server: they open and
    acknowledge the incident and roll the release back through it, as themselves."""
    release = h.start(write_runbook(tmp_path, UNDOABLE, "undoable.yaml"))
    assert h.wait(release.id).status == "succeeded"
    casey, sam = token_for(h.client.store, "casey"), token_for(h.client.store, "sam")

    opened = run(
        url, casey, tmp_path, "incident", "open", "--severity", "P1",
        "--summary", "checkout errors", "--release", release.id, "--json",
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    incident = json.loads(opened.output)
    assert (incident["opened_by"], incident["status"]) == ("casey", "open")
    acked = run(url, sam, tmp_path, "incident", "ack", incident["id"])
    assert acked.exit_code == 0, acked.output
    assert h.client.store.get_incident(incident["id"]).acknowledged_by == "sam"
    listed = run(url, sam, tmp_path, "incident", "list")
    assert incident["id"] in listed.output

    preview = run(url, casey, tmp_path, "release", "rollback", release.id, "--dry-run", "--json")
    assert preview.exit_code == 0, preview.output
    plan = json.loads(preview.output)
    assert [(e["key"], e["kind"]) for e in plan["plan"]] == [("undo-deploy", "undo")]
    assert plan["points_of_no_return"] == []
    assert h.client.get(release.id).status == "succeeded"  # a preview changes nothing
    asked = run(
        url, casey, tmp_path, "release", "rollback", release.id,
        "--reason", "checkout errors", "--detach", "--json",
    )  # fmt: skip
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.output) == {"id": release.id, "run": 2, "status": "queued"}
    h.wait_for_gate(release.id, "rollback/approval")
    own = run(url, casey, tmp_path, "release", "approve", release.id, "rollback/approval")
    assert own.exit_code == 4
    approved = run(url, sam, tmp_path, "release", "approve", release.id, "rollback/approval")
    assert approved.exit_code == 0, approved.output
    assert h.wait(release.id).status == "rolled_back"

    shown = run(url, sam, tmp_path, "incident", "show", incident["id"], "--json")
    after = json.loads(shown.output)
    assert (after["status"], after["mitigated_by"]) == ("mitigated", "engine")
    assert after["mitigation"] == f"rolled back (release {release.id})"


def test_the_api_release_detail_is_the_document_release_show_json_prints(
    url: str, h: Harness, tmp_path: Path, engine_database_url: str
) -> None:
    """One document of a release, with its decisions, comms and incidents: the API's
    release detail, `release show --json` on the state database and through the server."""
    release = h.start(write_runbook(tmp_path, GATED, "gated.yaml"))
    h.wait_for_gate(release.id, "go_ahead")
    h.client.decide(release.id, "go_ahead", user="sam", decision="approve", comment="ok")
    assert h.wait(release.id).status == "succeeded"
    casey = token_for(h.client.store, "casey")
    incident = h.client.open_incident(
        severity="P2", summary="slow checkout", user="casey", release_id=release.id
    )
    h.client.store.record_notification(
        release_id=release.id, incident_id=None, kind="complete", channel="webhook",
        text="gated shipped", status="sent", attempts=1, error=None,
    )  # fmt: skip
    local = CliRunner().invoke(
        cli,
        ["release", "show", release.id, "--json"],
        env={"SHIPCAPTAIN_DATABASE_URL": engine_database_url, "SHIPCAPTAIN_TOKEN": casey,
             "SHIPCAPTAIN_SERVER": ""},
        catch_exceptions=False,
    )  # fmt: skip
    assert local.exit_code == 0, local.output
    remote = run(url, casey, tmp_path, "release", "show", release.id, "--json")
    assert remote.exit_code == 0, remote.output
    api = httpx.get(f"{url}/api/v1/releases/{release.id}", headers=bearer(casey))
    assert api.status_code == 200, api.text
    documents = [json.loads(local.output), api.json(), json.loads(remote.output)]
    for document in documents:
        # the engine's heartbeat moves on between the three calls
        assert document["engine"].pop("last_heartbeat_at") is not None
    document = documents[0]
    assert [d["user"] for d in document["decisions"]] == ["sam"]
    assert [i["id"] for i in document["incidents"]] == [incident.id]
    # the release's own message (the incident's page is one too)
    assert [n["text"] for n in document["notifications"] if n["kind"] == "complete"] == [
        "gated shipped"
    ]
    assert documents[1] == document
    assert documents[2] == document


TEAM_FILE = """people:
  admin: {admin: true}
  casey: {roles: {"*": [release_captain]}}
  sam: {roles: {production: [oncall_sre]}}
"""


def test_the_team_tokens_and_login_through_a_server(url: str, h: Harness, tmp_path: Path) -> None:
    """team show|apply, token create|revoke and login with --server: the same answers and
    exit codes as on the state database, and nothing of the CLI's own state is made."""
    admin, sam = token_for(h.client.store, "admin"), token_for(h.client.store, "sam")
    team_file = tmp_path / "team.yaml"
    team_file.write_text(TEAM_FILE, encoding="utf-8")
    applied = run(url, admin, tmp_path, "team", "apply", str(team_file), "--json")
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.output)["people"] == ["admin", "casey", "sam"]
    assert {p.name for p in h.client.store.list_people() if p.active} == {"admin", "casey", "sam"}
    refused = run(url, sam, tmp_path, "team", "apply", str(team_file))
    assert refused.exit_code == 4
    assert "sam is not an admin" in refused.output
    team_file.write_text(TEAM_FILE + "  bob: {roles: 7}\n", encoding="utf-8")
    wrong = run(url, admin, tmp_path, "team", "apply", str(team_file))
    assert wrong.exit_code == 2
    assert f"{team_file}:5" in wrong.output  # the local file, its line
    bootstrap = run(url, admin, tmp_path, "team", "apply", str(team_file), "--bootstrap")
    assert bootstrap.exit_code == 2
    assert "without --server" in bootstrap.output

    shown = run(url, sam, tmp_path, "team", "show", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == team_document(h.client.store)
    assert "sam  production: oncall_sre" in run(url, sam, tmp_path, "team", "show").output

    made = run(url, sam, tmp_path, "token", "create", "--label", "laptop", "--json")
    assert made.exit_code == 0, made.output
    token = json.loads(made.output)
    assert (token["person"], token["label"], token["state"]) == ("sam", "laptop", "active")
    others = run(url, sam, tmp_path, "token", "create", "--for", "casey")
    assert others.exit_code == 4
    login = CliRunner().invoke(
        cli,
        ["login", "--token-stdin"],
        input=token["token"] + "\n",
        env={"XDG_CONFIG_HOME": str(tmp_path / "config"), "SHIPCAPTAIN_SERVER": url,
             "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "elsewhere"), "SHIPCAPTAIN_DATABASE_URL": ""},
    )  # fmt: skip
    assert login.exit_code == 0, login.output
    assert login.output.startswith("logged in as sam; token kept in")
    revoked = run(url, sam, tmp_path, "token", "revoke", token["id"], "--json")
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.output)["state"] == "revoked"
    gone = run(url, token["token"], tmp_path, "release", "list")
    assert gone.exit_code == 4

    worker = run(url, admin, tmp_path, "worker")
    assert worker.exit_code == 2
    assert "runs on the state database, not through a server" in worker.output
    assert not (tmp_path / "elsewhere").exists()


def test_migrations_apply_through_a_server(url: str, h: Harness, tmp_path: Path) -> None:
    """The migrations run from here; the server checks migrations.apply and records it."""
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "1_boards.sql").write_text("CREATE TABLE boards (id int);\n")
    casey = token_for(h.client.store, "casey")
    # the tests' people hold every role ("*"): here they hold only what the table names
    people = [
        dataclasses.replace(p, roles={"*": ("release_captain",)})
        for p in h.client.store.list_people()
    ]
    h.client.store.put_team(
        people, actor="test", message="no one may migrate",
        data={}, permissions={**OPEN_PERMISSIONS, "migrations.apply": {"*": ["dba"]}},
    )  # fmt: skip
    with postgres_database("sc_migrate") as target:
        apply = ["migrations", "apply", str(tmp_path / "migrations"), "--phase", "expand"]
        apply.append("--database-url")
        refused = run(url, casey, tmp_path, *apply, target, "-e", "staging", "--no-json")
        assert refused.exit_code == 2  # a bad flag is still a bad flag
        refused = run(url, casey, tmp_path, *apply, target, "-e", "staging")
        assert refused.exit_code == 4
        assert "(migrations.apply) in staging" in refused.output
        h.client.store.put_team(
            [*h.client.store.list_people()], actor="test", message="open again", data={},
            permissions=dict(OPEN_PERMISSIONS),
        )  # fmt: skip
        done = run(url, casey, tmp_path, *apply, target, "-e", "staging", "--json")
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["ok"] is True
    recorded = [e for e in h.client.store.list_events() if e.kind.startswith("migrations.")]
    assert [(e.kind, e.actor, e.data["environment"], e.data["database"]) for e in recorded] == [
        ("migrations.applied", "casey", "staging", mask_url(target))
    ]
    assert not (tmp_path / "elsewhere").exists()


def test_on_server_needs_a_server(tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, PLAIN, "plain.yaml")
    done = run("", "sct_x", tmp_path, "release", "start", str(runbook), "--on-server")
    assert done.exit_code == 2
    assert "--on-server needs --server" in done.output
    assert not (tmp_path / "elsewhere").exists()


def test_the_server_acts_as_the_tokens_person_only(url: str, h: Harness) -> None:
    """The client contract names no acting person: through a server it is the token's."""
    with RemoteClient(url, token_for(h.client.store, "sam")) as remote:
        assert remote.user == "sam"
        with pytest.raises(TypeError):
            remote.cancel("rel-any", user="casey", reason="not mine to cancel")  # type: ignore[call-arg]
        with pytest.raises(NotFound):
            remote.cancel("rel-any", reason="mine, but no such release")


TWICE = """name: twice
environment: "{{ environment }}"
parameters:
  environment: {default: staging}
phases:
  - id: one
    steps:
      - id: go
        action: approval
        with: {prompt: two of you?, people: [sam, fola, dana], quorum: 2, timeout: 1h}
"""


def test_a_second_decision_is_refused_through_the_server_and_the_api(
    url: str, h: Harness, tmp_path: Path
) -> None:
    import httpx

    release = h.start(write_runbook(tmp_path, TWICE, "twice.yaml"), user="casey")
    h.wait_for_gate(release.id, "go")
    sam, fola = token_for(h.client.store, "sam"), token_for(h.client.store, "fola")
    first = run(url, sam, tmp_path, "release", "approve", release.id, "go")
    assert first.exit_code == 0, first.output
    again = run(url, sam, tmp_path, "release", "approve", release.id, "go")
    assert again.exit_code == 5, again.output
    assert "sam already decided the gate 'go'" in again.output
    assert "recorded" not in again.output
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30) as api:
        answer = api.post(
            f"/releases/{release.id}/gates/go/approve",
            json={},
            headers={"Authorization": f"Bearer {sam}"},
        )
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "SC500"
    assert [d.user for d in h.client.store.list_decisions(release.id, "go")] == ["sam"]
    assert run(url, fola, tmp_path, "release", "approve", release.id, "go").exit_code == 0
    assert h.wait(release.id).status == "succeeded"


def test_token_list_goes_through_the_server(url: str, h: Harness, tmp_path: Path) -> None:
    sam, admin = token_for(h.client.store, "sam"), token_for(h.client.store, "admin")
    mine = run(url, sam, tmp_path, "token", "list", "--json")
    assert mine.exit_code == 0, mine.output
    listed = json.loads(mine.output)
    assert {t["person"] for t in listed} == {"sam"}
    assert all(t["state"] == "active" and "token" not in t for t in listed)
    others = run(url, sam, tmp_path, "token", "list", "--person", "admin")
    assert others.exit_code == 4
    assert "sam may only list their own tokens" in others.output
    everyone = run(url, admin, tmp_path, "token", "list", "--person", "sam")
    assert everyone.exit_code == 0, everyone.output
    assert "sam" in everyone.output
    assert "active" in everyone.output
    assert not (tmp_path / "elsewhere").exists()  # no local state database was opened


def _waiting_gates(service: Service, release_id: str) -> list[tuple[str, str]]:
    view = service.show(release_id, events=False)
    return [(g.step_id, g.prompt) for g in view.waiting_gates]


def test_one_script_runs_on_both_clients_of_the_contract(
    url: str, h: Harness, tmp_path: Path
) -> None:
    """The same calls, the same answers and the same refusals, through the server or on
    the state database: the CLI is written once against the contract."""
    runbook = write_runbook(tmp_path, GATED, "gated.yaml")
    casey, sam = token_for(h.client.store, "casey"), token_for(h.client.store, "sam")
    with RemoteClient(url, casey) as server:
        here = h.client.session(casey)
        started = server.start(runbook, {})
        h.wait_for_gate(started.id, "go_ahead")
        assert server.user == here.user == "casey"
        assert _waiting_gates(server, started.id) == _waiting_gates(here, started.id)
        assert _waiting_gates(here, started.id) == [("go_ahead", "ship it?")]
        assert server.status(started.id) == here.status(started.id) == "waiting"
        assert [e.seq for e in server.events(started.id)] == [
            e.seq for e in here.events(started.id)
        ]
        assert [w.worker.executor_id for w in server.workers()] == [
            w.worker.executor_id for w in here.workers()
        ]
        for service in (server, here):  # the captain may not approve their own release
            with pytest.raises(PermissionDenied, match="separation of duties"):
                service.decide(started.id, "go_ahead", decision="approve")
        assert server.authorize("release.start", environment="staging") == here.authorize(
            "release.start", environment="staging"
        )
    assert h.client.session(sam).decide(started.id, "go_ahead", decision="approve") in (
        "recorded",
        "sent",
    )
    assert h.wait(started.id).status == "succeeded"
    with RemoteClient(url, sam) as server:
        for service in (server, h.client.session(sam)):
            with pytest.raises(InvalidState, match="only an active release can be cancelled"):
                service.cancel(started.id, reason="too late")


def test_the_runbook_allow_list_through_a_server(url: str, h: Harness, tmp_path: Path) -> None:
    """`team runbooks list` and the allow-list of `team show` with --server: the server's
    policy (GET /team/runbooks), the same document as on the state database."""
    from shipcaptain.team import runbook_rule

    sam = token_for(h.client.store, "sam")
    runbook = write_runbook(tmp_path, PLAIN, "plain.yaml")
    rule = runbook_rule("production", str(runbook), note="reviewed")
    assert h.client.allow_runbook(rule, by=h.client.store.get_person("admin"))
    here = h.client.session(sam).runbook_policy()
    with RemoteClient(url, sam) as server:
        assert server.runbook_policy() == here
    assert here["environments"]["production"] == {"protected": False}  # the tests' team
    assert here["runbooks"] == [
        {
            "environment": "production",
            "kind": "digest",
            "value": rule.value,
            "added_by": "admin",
            "note": "reviewed",
        }
    ]
    listed = run(url, sam, tmp_path, "team", "runbooks", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == here
    shown = run(url, sam, tmp_path, "team", "runbooks", "list", "--env", "production").output
    assert shown.startswith("production (not protected): only these runbooks\n")
    assert f"digest {rule.value}  by admin  (reviewed)" in shown
    assert "  production: 1 allowed" in run(url, sam, tmp_path, "team", "show").output
    refused = run(url, "sct_unknown", tmp_path, "team", "runbooks", "list")
    assert refused.exit_code == 4  # a team read needs a valid token, as GET /team does
    assert not (tmp_path / "elsewhere").exists()


def test_the_dashboards_reads_are_the_same_through_the_server(
    url: str, h: Harness, tmp_path: Path
) -> None:
    """What the web layer reads through the contract (the home page's parts, a gate's
    standing, the audit log's head) answers the same on both clients."""
    runbook = write_runbook(tmp_path, GATED, "gated.yaml")
    casey, sam = token_for(h.client.store, "casey"), token_for(h.client.store, "sam")
    with RemoteClient(url, casey) as server:
        started = server.start(runbook, {})
    h.wait_for_gate(started.id, "go_ahead")
    for token in (casey, sam):
        here = h.client.session(token)
        with RemoteClient(url, token) as server:
            assert server.progress(started.id) == here.progress(started.id)
            assert here.progress(started.id).waiting == ["go_ahead"]
            assert server.step_runs(started.id) == here.step_runs(started.id)
            assert set(here.step_runs(started.id)) == {"build", "go_ahead"}
            for service in (server, here):
                assert [r.id for r in service.active_releases(runbook="gated")] == [started.id]
                assert [r.id for r in service.live_releases()] == []
                caseys = ReleaseFilter(started_by="casey")
                assert [r.id for r in service.list_releases(caseys)] == [started.id]
                assert service.list_releases(dataclasses.replace(caseys, offset=1)) == []
                assert service.last_event_seq() == h.client.last_event_seq()
                assert [e.seq for e in service.audit_log(release_id=started.id, limit=2)] == [
                    e.seq for e in h.client.list_events(release_id=started.id, limit=2)
                ]
            waiting = [(r.id, g.step_id) for r, g in here.gates_waiting()]
            assert [(r.id, g.step_id) for r, g in server.gates_waiting()] == waiting
            view = here.show(started.id, events=False)
            (gate,) = view.waiting_gates
            standing = here.gate_standing(view.release, gate)
            assert server.gate_standing(view.release, gate) == standing
            if token == casey:  # the captain may not decide their own release's gate
                assert waiting == []
                assert "separation of duties" in standing.why_not
            else:
                assert waiting == [(started.id, "go_ahead")]
                assert standing.why_not == ""
                assert "sam" in standing.deciders
                assert "casey" not in standing.deciders
    h.client.session(sam).cancel(started.id, reason="done looking")
