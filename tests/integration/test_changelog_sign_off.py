"""The changelog sign-off on a real engine, database and git repository: each feature owner
confirms the part touching their surfaces, the rest goes to the release captain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helpers.gitrepo import commit, git, make_repo
from helpers.releases import Harness, harness, write_runbook
from helpers.web import api_client, token_for
from shipcaptain.cli.main import cli
from shipcaptain.errors import PermissionDenied
from shipcaptain.records import Person

TEAM = [
    Person(name="casey", roles={"*": ("release_captain",)}, admin=True),
    Person(name="fola", roles={"*": ("feature_owner",)}, surfaces=("canvas",)),
    Person(name="dev", roles={"*": ("feature_owner",)}, surfaces=("billing",)),
    Person(name="erin", roles={"*": ("feature_owner",)}, surfaces=("search",)),
]

RUNBOOK = """\
name: signed
roles:
  release_captain: {title: Release Captain}
  feature_owner: {title: Feature Owner}
phases:
  - id: preflight
    steps:
      - id: sign_off
        action: changelog_sign_off
        with:
          tag: HEAD
          title: v1.4.0
          repo: checkout
          migrations_dir: migrations
          surfaces:
            billing: ["src/billing/**"]
          tables:
            billing: [invoices]
          timeout: 1h
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        running.client.store.put_team(
            TEAM, actor="test", message="the team", data={}, permissions={}
        )
        yield running


def history(h: Harness, *, owned: bool = True) -> None:
    repo = make_repo(h.workdir)
    git(repo, "tag", "-a", "v1.3.0", "-m", "x")
    if owned:
        commit(repo, "feat(canvas): shared cursors (#41)", "web/cursors.ts", author="Fola")
        commit(repo, "fix: round invoices to cents (#42)", "src/billing/invoice.py", author="Dev")
        sql = repo / "migrations" / "20261101_a.sql"
        sql.parent.mkdir()
        sql.write_text("-- phase: expand\nalter table invoices add column cents int;\n")
        git(repo, "add", "migrations")
        git(repo, "commit", "-q", "-m", "feat: invoices in cents (#43)")
    commit(repo, "chore: bump dependencies", "package.json", author="Casey")


def parts(h: Harness, release_id: str) -> dict[str, dict[str, object]]:
    gate = h.client.store.get_gate(release_id, "sign_off", 1)
    return {p["title"]: p for p in gate.evidence["parts"]}


def test_each_owner_confirms_only_their_part_and_everyone_must(h: Harness, tmp_path: Path) -> None:
    history(h)
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    h.wait_for_gate(release.id, "sign_off")
    shown = parts(h, release.id)
    assert list(shown) == [
        "dev: billing",
        "fola: canvas",
        "role release_captain: unassigned (no owned surface)",
    ]
    dev, fola, rest = (str(p["text"]) for p in shown.values())
    assert "shared cursors (#41), Fola" in fola
    assert "invoice" not in fola
    assert "bump" not in fola
    assert "round invoices to cents (#42), Dev" in dev
    assert "- migrations/20261101_a.sql (expand)" in dev  # names the billing table invoices
    assert "invoices in cents (#43)" in dev  # the commit that adds it
    assert "cursors" not in dev
    assert "bump" not in dev
    assert "bump dependencies" in rest
    assert "cursors" not in rest
    assert "invoice" not in rest

    with pytest.raises(PermissionDenied, match="erin may not decide this gate"):
        h.client.decide(release.id, "sign_off", user="erin", decision="approve")
    assert h.client.decide(release.id, "sign_off", user="fola", decision="approve") == "recorded"
    assert h.client.decide(release.id, "sign_off", user="dev", decision="approve") == "recorded"
    assert h.client.store.get_gate(release.id, "sign_off", 1).status == "waiting"
    assert h.client.get(release.id).status == "waiting"
    h.client.decide(release.id, "sign_off", user="casey", decision="approve", comment="deps ok")
    assert h.wait(release.id).status == "succeeded"

    saw = {d.user: d.evidence for d in h.client.store.list_decisions(release.id, "sign_off")}
    assert [p["title"] for p in saw["fola"]["parts"]] == ["fola: canvas"]
    assert [p["title"] for p in saw["dev"]["parts"]] == ["dev: billing"]
    assert [p["title"] for p in saw["casey"]["parts"]] == [
        "role release_captain: unassigned (no owned surface)"
    ]
    run = h.client.store.latest_step_runs(release.id)["sign_off"]
    assert run.outputs["confirmed_by"] == ["fola", "dev", "casey"]


def test_one_owners_rejection_ends_the_sign_off(h: Harness, tmp_path: Path) -> None:
    history(h)
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    h.wait_for_gate(release.id, "sign_off")
    h.client.decide(release.id, "sign_off", user="fola", decision="approve")
    h.client.decide(
        release.id, "sign_off", user="dev", decision="reject", comment="#42 is not in this train"
    )
    assert h.wait(release.id).status == "failed"
    run = h.client.store.latest_step_runs(release.id)["sign_off"]
    assert run.status == "failed"
    assert "rejected by dev (dev: billing): '#42 is not in this train'" in run.summary
    assert h.client.store.get_gate(release.id, "sign_off", 1).status == "rejected"


def test_without_an_owned_surface_the_captain_confirms_everything(
    h: Harness, tmp_path: Path
) -> None:
    history(h, owned=False)
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    h.wait_for_gate(release.id, "sign_off")
    [(title, part)] = parts(h, release.id).items()
    assert title == "role release_captain: everything (no owned surface)"
    assert "bump dependencies" in str(part["text"])
    with pytest.raises(PermissionDenied, match="fola may not decide this gate"):
        h.client.decide(release.id, "sign_off", user="fola", decision="approve")
    h.client.decide(release.id, "sign_off", user="casey", decision="approve")
    assert h.wait(release.id).status == "succeeded"


def test_the_release_page_shows_each_owner_their_own_part(h: Harness, tmp_path: Path) -> None:
    history(h)
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    h.wait_for_gate(release.id, "sign_off")
    with api_client(h, tmp_path) as web:
        web.headers["Authorization"] = f"Bearer {token_for(h.client.store, 'fola')}"
        page = web.get(f"/releases/{release.id}").text
        assert "Yours: fola: canvas" in page
        assert "shared cursors (#41)" in page
        assert "round invoices" not in page
        assert f'action="/releases/{release.id}/gates/sign_off/approve"' in page
        web.headers["Authorization"] = f"Bearer {token_for(h.client.store, 'erin')}"
        page = web.get(f"/releases/{release.id}").text
        assert "Not yours to decide" in page
        assert "shared cursors (#41)" not in page
        # the gate's progress counts parts: dev confirms theirs, fola sees it
        h.client.decide(release.id, "sign_off", user="dev", decision="approve")
        gate = h.client.store.get_gate(release.id, "sign_off", 1)
        assert gate is not None
        web.headers["Authorization"] = f"Bearer {token_for(h.client.store, 'fola')}"
        page = web.get(f"/releases/{release.id}").text
        assert f"1 of {len(gate.evidence['parts'])} parts confirmed" in page
        assert "<strong>dev</strong> approved" in page
    h.client.cancel(release.id, user="casey", reason="test over")


def test_the_cli_shows_and_confirms_your_part(
    h: Harness, tmp_path: Path, engine_database_url: str
) -> None:
    history(h)
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    h.wait_for_gate(release.id, "sign_off")

    def run(user: str, *args: str) -> Result:
        env = {
            "SHIPCAPTAIN_DATABASE_URL": engine_database_url,
            "SHIPCAPTAIN_DATA_DIR": str(tmp_path / "data"),
            "SHIPCAPTAIN_TOKEN": token_for(h.client.store, user),
        }
        return CliRunner().invoke(cli, ["release", *args], env=env, catch_exceptions=False)

    shown = run("dev", "show", release.id)
    assert shown.exit_code == 0, shown.output
    assert "yours: dev: billing" in shown.output
    assert "round invoices to cents (#42)" in shown.output
    assert "shared cursors" not in shown.output
    refused = run("erin", "confirm", release.id, "sign_off")
    assert refused.exit_code != 0
    assert "erin may not decide this gate" in refused.output
    confirmed = run("dev", "confirm", release.id, "sign_off", "-m", "billing ok")
    assert confirmed.exit_code == 0, confirmed.output
    [decision] = h.client.store.list_decisions(release.id, "sign_off")
    assert (decision.user, decision.comment) == ("dev", "billing ok")
    h.client.cancel(release.id, user="casey", reason="test over")
