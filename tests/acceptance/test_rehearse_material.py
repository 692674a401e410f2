"""``shipcaptain rehearse --repo --migrations --manifests``: a team's own repository,
migrations and manifests (small fixture material, tests/data/rehearse-team) mapped onto the
sandbox: its script runs in the copy of its repository, its migration on the sandbox
primary, its overlay on the Kubernetes API double, where a bad image of its own is caught
and rolled back. What cannot be mapped is refused, named, before anything starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_rehearse import ASSET, TIMEOUT, rehearse, report_of, rows

from shipcaptain.runbook.loader import load_runbook_file
from shipcaptain.sandbox.rehearse_material import Material, MaterialRefused, place

TEAM = Path(__file__).resolve().parents[1] / "data" / "rehearse-team"


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_a_teams_repository_migrations_and_manifests_are_rehearsed(tmp_path: Path) -> None:
    done = rehearse(
        tmp_path,
        TEAM / "runbook.yaml",
        "--repo", str(TEAM / "repo"),
        "--migrations", str(TEAM / "migrations"),
        "--manifests", str(TEAM / "manifests"),
        "--fault", "bad_image",
        "--json",
    )  # fmt: skip
    report = report_of(tmp_path, done)
    assert done.returncode == 0, done.stderr[-3000:]
    row = rows(report)["bad_image"]
    assert row["verdict"] == "caught"
    assert row["caught_by"] == "rollout_notes"
    assert "ghcr.io/notes/notes:1.4.0" in row["how"]
    assert row["runbook_did"] == ["rolled back"]
    assert row["rollback"]["restored"], row["rollback"]
    log = (tmp_path / "report" / "rehearsal.log").read_text()
    assert "-> db/migrations/ (the sandbox primary)" in log
    assert "-> deploy/production/ (the Kubernetes API double)" in log
    assert "production before the release runs ghcr.io/notes/notes:1.0.0" in log
    # the script tests for a file only the team's repository has
    assert "[team_preflight] exit 0" in log
    assert "[migrate_notes] applied 1 expand migration(s)" in log
    assert "[apply_notes] applied 2 objects (1 changed) from deploy/production" in log


def test_what_cannot_be_mapped_is_refused_before_anything_starts(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(TEAM / "manifests", manifests)
    (manifests / "kustomization.yaml").unlink()
    (manifests / "widget.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    )
    done = rehearse(
        tmp_path,
        TEAM / "runbook.yaml",
        "--repo", str(tmp_path / "no-such-repo"),
        "--manifests", str(manifests),
        "--fault", "bad_image",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    assert "the team's material cannot be mapped onto the sandbox" in err
    assert f"--repo {tmp_path / 'no-such-repo'}: not a directory" in err
    assert f"--manifests {manifests}: no kustomization.yaml" in err
    assert (
        f"{manifests / 'widget.yaml'}: document 1: kind Widget (example.com/v1) is not served "
        "by the sandbox's Kubernetes API double; it serves "
    ) in err
    assert not (tmp_path / "report").exists()  # nothing started, nothing written


def test_directories_are_mapped_onto_the_steps_that_read_them(tmp_path: Path) -> None:
    team = load_runbook_file(TEAM / "runbook.yaml")
    placed = place(team, {}, Material(TEAM / "repo", TEAM / "migrations", TEAM / "manifests"))
    assert (placed.migrations, placed.manifests) == ("db/migrations", "deploy/production")
    # the ValueCanvas runbook's migrate steps all read migrations/
    valuecanvas = load_runbook_file(ASSET)
    assert place(valuecanvas, {}, Material(migrations=TEAM / "migrations")).migrations == (
        "migrations"
    )
    # a runbook with no migrate step, and one whose steps read two directories
    text = (TEAM / "runbook.yaml").read_text()
    none = tmp_path / "none.yaml"
    none.write_text(
        text.replace("action: migrate", "action: shell")
        .replace("directory: db/migrations\n          phase: expand", "command: 'true'")
        .replace("directory: db/migrations\n          phase: contract", "command: 'true'")
    )
    with pytest.raises(MaterialRefused) as refused:
        place(load_runbook_file(none), {}, Material(migrations=TEAM / "migrations"))
    assert refused.value.problems == [
        f"--migrations: no `migrate` step of {none} reads `with.directory`: nothing to map the "
        "directory onto (leave --migrations out)"
    ]
    two = tmp_path / "two.yaml"
    two.write_text(text.replace("overlay: deploy/{{ environment }}\n          images",
                                "overlay: k8s/{{ environment }}\n          images"))  # fmt: skip
    with pytest.raises(MaterialRefused) as refused:
        place(load_runbook_file(two), {}, Material(manifests=TEAM / "manifests"))
    assert refused.value.problems == [
        f"--manifests: the steps of {two} read 2 directories (deploy/production (rollback step "
        "rollback_notes); k8s/production (step apply_notes)): --manifests maps one; put them in "
        "the repository (--repo)"
    ]


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_a_teams_contract_migration_team_file_and_a_late_catch(tmp_path: Path) -> None:
    """The notes team's own team file answers the gates (its SRE, not the sandbox's); its
    own contract migration is the one made to fail halfway, and the scorecard names it; its
    metrics step comes after a 12 s soak, later than a 6 s damage window: caught late; its
    product sign-off is a gate nobody in its team may answer: reported, not hung."""
    done = rehearse(
        tmp_path,
        TEAM / "runbook.yaml",
        "--repo", str(TEAM / "repo"),
        "--migrations", str(TEAM / "migrations"),
        "--manifests", str(TEAM / "manifests"),
        "--team", str(TEAM / "team.yaml"),
        "--damage-window", "6",
        "--fault", "ci_red",
        "--fault", "latency",
        "--fault", "contract_migration_fails",
        "--json",
    )  # fmt: skip
    report = report_of(tmp_path, done)
    assert done.returncode == 10, done.stderr[-3000:]
    by = rows(report)
    # the team's contract migration, failing after its first statement, went first
    assert report["faults"][0]["fault"] == "contract_migration_fails"
    contract = by["contract_migration_fails"]
    target = "db/migrations/20250201000000-drop-legacy-title.sql"
    assert contract["verdict"] == "caught", contract
    assert contract["caught_by"] == "contract_notes"
    assert contract["injected_into"] == target
    assert contract["runbook_did"] == ["halted"]
    assert any(target in note and "first statement" in note for note in contract["notes"])
    assert f"nothing half-applied: the first statement of {target} still applies" in " ".join(
        contract["notes"]
    )
    assert "rehearsal: contract_migration_fails" in contract["how"]
    # caught by the check made for it, but after the damage window
    late = by["latency"]
    assert late["verdict"] == "caught late", late
    assert late["caught_by"] == "latency_check"
    assert late["damage_window_s"] == 6
    assert late["time_to_detect_s"] > 12  # the soak before the metrics step
    assert "later than the damage window of 6 s" in late["how"]
    assert late["runbook_did"][0] == "rolled back"
    assert late["rollback"]["restored"], late["rollback"]
    # the notes runbook has no CI check (missed); its release went on to the product
    # sign-off, which nobody in the team may answer: reported and cancelled
    missed = by["ci_red"]
    assert missed["verdict"] == "missed"
    assert missed["release_status"] == "cancelled"
    assert missed["gates_nobody_may_answer"] == [
        {"step": "product_sign_off", "why": "roles product_owner"}
    ]
    assert report["missed"] == ["ci_red"]
    assert report["team"] == str(TEAM / "team.yaml")
    log = (tmp_path / "report" / "rehearsal.log").read_text()
    assert "ben approves go_ahead" in log  # the team file's SRE, not the sandbox's sam
    assert "team: ana, ben from team.yaml" in log
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Gates nobody in the team may answer" in markdown
    assert "## Faults caught late: the check that would have caught each in time" in markdown
    # kept for the dashboard in the rehearsals directory of the caller's settings
    kept = tmp_path / "own-data" / "rehearsals" / report["kept"]["id"]
    assert json.loads((kept / "report.json").read_text()) == report
    assert any((kept / "evidence").iterdir())


def test_a_team_file_with_mistakes_is_refused_before_anything_starts(tmp_path: Path) -> None:
    team = tmp_path / "team.yaml"
    team.write_text("people:\n  ana:\n    roles: [release_captain]\n")  # no admin
    done = rehearse(tmp_path, TEAM / "runbook.yaml", "--team", str(team), "--fault", "ci_red")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "invalid team file" in done.stderr
    assert "the team needs an admin" in done.stderr
    assert not (tmp_path / "report").exists()  # nothing started, nothing written
