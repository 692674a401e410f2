"""Authority lives in the team file and the server's policy, never in the runbook being run
(issue 17): a person with no role who writes a runbook naming themself its captain is
refused on every path (the CLI, the REST API with an uploaded runbook, a direct client
call, and a worker beginning a release queued some other way), and production runs only
the runbooks on its allow-list. Real processes, both databases."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from helpers.processes import wait_for
from helpers.releases import write_runbook
from helpers.team import People
from helpers.web import bearer, server_process
from shipcaptain.client import Client
from shipcaptain.errors import PermissionDenied
from shipcaptain.runbook.loader import load_runbook_file
from shipcaptain.settings import Settings
from shipcaptain.store import ReleaseRecord, open_store

TEAM_FILE = """\
people:
  cara:
    admin: true
    roles: {"*": [release_captain]}
  sid:
    roles: {production: [oncall_sre]}
  mallory:
    name: on the team, no role
  robot:
    roles: {"*": [worker]}
"""

#: what the reviewer wrote: a runbook that makes its author its captain
ESCALATION = """\
name: escalate
environment: "{{{{ environment }}}}"
parameters:
  environment: {{default: {environment}}}
roles:
  release_captain: {{title: Release Captain, members: [mallory]}}
phases:
  - id: one
    steps:
      - {{id: pwn, action: shell, with: {{command: "touch {marker}"}}}}
"""


class Team(People):
    """The team file applied and a token for each person; the CLI as one or another."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        super().__init__(database_url, workdir)
        self.url = database_url
        (workdir / "team.yaml").write_text(TEAM_FILE, encoding="utf-8")
        # the team and the tokens are set up in this process (test_people_and_proof runs
        # these commands as processes); what is tested below runs as real processes
        applied = self.setup("team", "apply", "team.yaml", "--bootstrap")
        assert applied.returncode == 0, applied.stderr
        self.tokens = {"cara": self.setup_token("--for", "cara", "--bootstrap")}
        for name in ("sid", "mallory", "robot"):
            self.tokens[name] = self.setup_token("--for", name, token=self.tokens["cara"])

    def as_(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(*args, token=self.tokens[name])

    def releases(self) -> list[ReleaseRecord]:
        with open_store(self.url) as store:
            return store.list_releases()

    def events(self, kind: str) -> list[str]:
        with open_store(self.url) as store:
            return [e.message for e in store.list_events() if e.kind == kind]


@pytest.fixture
def team(database_url: str, tmp_path: Path) -> Team:
    return Team(database_url, tmp_path)


def escalation(directory: Path, environment: str = "production") -> tuple[Path, Path]:
    marker = directory / f"PWNED-{environment}"
    path = write_runbook(
        directory,
        ESCALATION.format(environment=environment, marker=marker),
        f"escalate-{environment}.yaml",
    )
    return path, marker


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_the_cli_refuses_a_role_granted_by_the_runbook_itself(
    team: Team, tmp_path: Path, environment: str
) -> None:
    runbook, marker = escalation(tmp_path, environment)
    done = team.as_("mallory", "release", "start", str(runbook), "--detach")
    assert done.returncode == 4, done.stderr
    assert "needs role release_captain; mallory holds no role" in done.stderr
    assert team.releases() == []
    assert not marker.exists()
    assert any("mallory may not start escalate" in m for m in team.events("release.refused"))


def test_a_direct_client_call_is_refused_too(team: Team, tmp_path: Path) -> None:
    runbook, _ = escalation(tmp_path)
    settings = Settings(database_url=team.url, data_dir=tmp_path / "data")
    with Client(settings) as client, pytest.raises(PermissionDenied, match="holds no role"):
        client.create_release(runbook, {}, user="mallory")
    assert team.releases() == []


def test_the_api_and_the_worker_refuse_it_and_run_what_an_admin_allowed(
    team: Team, tmp_path: Path
) -> None:
    runbook, marker = escalation(tmp_path)
    text = runbook.read_text(encoding="utf-8")
    with server_process(
        team.url, tmp_path / "data", tmp_path, "--runbooks", str(tmp_path),
        token=team.tokens["robot"],
    ) as server, httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as api:  # fmt: skip
        # 1. the REST API with the runbook uploaded, and with its path on the server
        for body in ({"runbook_yaml": text}, {"runbook_path": runbook.name}):
            refused = api.post("/releases", json=body, headers=bearer(team.tokens["mallory"]))
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "SC400"
            assert "mallory holds no role" in refused.json()["error"]["message"]
        # the CLI through the server says the same
        remote = team.as_("mallory", "--server", server.url, "release", "start", str(runbook))
        assert remote.returncode == 4, remote.stderr
        # 2. the captain may start releases, but production runs only allowed runbooks
        captains = write_runbook(
            tmp_path,
            ESCALATION.replace("members: [mallory]", "members: [cara]").format(
                environment="production", marker=tmp_path / "RAN"
            ),
            "captains.yaml",
        )
        body = {"runbook_yaml": captains.read_text(encoding="utf-8")}
        not_listed = api.post("/releases", json=body, headers=bearer(team.tokens["cara"]))
        assert not_listed.status_code == 403
        assert "production is protected" in not_listed.json()["error"]["message"]
        # 3. a release queued without the client's check: the worker refuses it
        bypassed = []
        settings = Settings(database_url=team.url, data_dir=tmp_path / "data")
        with Client(settings) as client:
            for path, who in ((runbook, "mallory"), (captains, "cara")):
                loaded = load_runbook_file(path)
                record = ReleaseRecord(
                    runbook_name=loaded.runbook.name,
                    runbook_digest=loaded.digest,
                    runbook_text=loaded.text,
                    runbook_path=str(path),
                    environment="production",
                    started_by=who,
                    workdir=str(tmp_path),
                )
                client.store.create_release(record)
                client.enqueue(record.id, 1)
                bypassed.append(record.id)
            for release_id in bypassed:
                wait_for(
                    lambda r=release_id: client.get(r).status == "failed",
                    60,
                    what=f"the worker to refuse {release_id}",
                )
            reasons = [client.get(r).reason or "" for r in bypassed]
        assert "refused by the worker: mallory may not start a release" in reasons[0]
        assert "production is protected" in reasons[1]
        assert not marker.exists()
        assert not (tmp_path / "RAN").exists()
        # 4. an admin allows the captain's runbook (that content); it starts and runs
        assert team.as_("sid", "team", "runbooks", "allow", "--env", "production",
                        str(captains)).returncode == 4  # fmt: skip
        allowed = team.as_("cara", "team", "runbooks", "allow", "--env", "production",
                           str(captains), "--note", "reviewed")  # fmt: skip
        assert allowed.returncode == 0, allowed.stderr
        listed = team.as_("cara", "team", "runbooks", "list", "--json")
        assert json.loads(listed.stdout)["environments"]["production"] == {"protected": True}
        started = api.post("/releases", json=body, headers=bearer(team.tokens["cara"]))
        assert started.status_code == 201, started.text
        release_id = started.json()["id"]
        wait_for(
            lambda: api.get(f"/releases/{release_id}/status",
                            headers=bearer(team.tokens["cara"])).json()["status"]
            == "succeeded",
            60,
            what="the allowed release to succeed",
        )  # fmt: skip
        assert (tmp_path / "RAN").exists()
        # the same runbook changed by one byte is another digest: refused again
        changed = captains.read_text(encoding="utf-8") + "# edited\n"
        edited = api.post(
            "/releases", json={"runbook_yaml": changed}, headers=bearer(team.tokens["cara"])
        )
        assert edited.status_code == 403
    assert not marker.exists()
    assert any("allowed the runbook of sha256" in m for m in team.events("runbook.allowed"))


# ---- incidents: the on-call SRE and the captain, nobody else ----------------------------------


def test_incidents_need_a_role_through_the_cli(team: Team) -> None:
    refused = team.as_("mallory", "incident", "open", "--severity", "P1", "--summary", "down")
    assert refused.returncode == 4, refused.stderr
    assert "may not open an incident (incident.open)" in refused.stderr
    opened = team.as_("sid", "incident", "open", "--severity", "P1", "--summary", "down", "--json")
    assert opened.returncode == 0, opened.stderr
    incident = json.loads(opened.stdout)["id"]
    steps = (("ack", "acknowledge", "acknowledged"), ("mitigate", "mitigate", "mitigated"),
             ("resolve", "resolve", "resolved"))  # fmt: skip
    for verb, action, done in steps:
        no = team.as_("mallory", "incident", verb, incident, "--note", "me")
        assert no.returncode == 4, no.stderr
        assert f"(incident.{action})" in no.stderr
        yes = team.as_("sid", "incident", verb, incident, "--note", "rolled back", "--json")
        assert yes.returncode == 0, yes.stderr
        assert json.loads(yes.stdout)[f"{done}_by"] == "sid"
    assert len(team.events("incident.refused")) == 4


def test_incidents_need_a_role_through_the_api(team: Team, tmp_path: Path) -> None:
    with (
        server_process(team.url, tmp_path / "data", tmp_path, "--no-workers") as server,
        httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as api,
    ):
        mallory, sid = bearer(team.tokens["mallory"]), bearer(team.tokens["sid"])
        body = {"severity": "P1", "summary": "checkout down"}
        refused = api.post("/incidents", json=body, headers=mallory)
        assert refused.status_code == 403, refused.text
        opened = api.post("/incidents", json=body, headers=sid)
        assert opened.status_code == 201, opened.text
        incident = opened.json()["id"]
        for action in ("acknowledge", "mitigate", "resolve"):
            no = api.post(f"/incidents/{incident}/{action}", json={"note": "x"}, headers=mallory)
            assert no.status_code == 403, no.text
            assert f"(incident.{action})" in no.json()["error"]["message"]
            yes = api.post(f"/incidents/{incident}/{action}", json={"note": "x"}, headers=sid)
            assert yes.status_code == 200, yes.text
        assert api.get(f"/incidents/{incident}", headers=sid).json()["status"] == "resolved"
    assert len(team.events("incident.refused")) == 4
