"""The rollback plan (what undoes what, in which order, what nothing undoes), the point of
no return, and who may start or approve a rollback."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shipcaptain.actions.registry import registry
from shipcaptain.cli.main import cli
from shipcaptain.errors import InvalidRunbook, PermissionDenied
from shipcaptain.permissions import check_rollback
from shipcaptain.plan import describe_rollback, points_of_no_return, rollback_plan
from shipcaptain.runbook.loader import parse_runbook

RUNBOOK = """
name: shop
roles:
  release_captain: {title: Captain, members: [casey]}
  oncall_sre: {title: SRE, members: [sam, casey]}
  feature_owner: {title: Owner, members: [fola]}
phases:
  - id: build
    steps:
      - {id: lint, action: verify_schema, with: {directory: m}}
      - id: tag
        action: shell
        with: {command: "git tag v1"}
        undo: {action: shell, with: {command: "git tag -d v1"}}
  - id: db
    steps:
      - {id: expand, action: migrate, with: {directory: m, phase: expand}}
  - id: ship
    steps:
      - id: deploy
        action: shell
        with: {command: "deploy v1"}
      - id: contract
        action: migrate
        needs: [deploy]
        with: {directory: m, phase: contract}
rollback:
  - {id: redeploy, action: shell, with: {command: "deploy v0"}}
rollback_validation: [lint]
"""


def load(text: str = RUNBOOK) -> Any:
    return parse_runbook(textwrap.dedent(text), "shop.yaml", registry=registry)


def ok(*sids: str, **outputs: Any) -> dict[str, dict[str, Any]]:
    return {s: {"status": "succeeded", "outputs": outputs.get(s, {})} for s in sids}


def test_the_plan_undoes_in_reverse_order_and_flags_what_nothing_undoes() -> None:
    rb = load()
    entries = describe_rollback(rb, registry, {}, None)
    assert [(e.kind, e.key) for e in entries] == [
        ("no_undo", "undo-contract"),
        ("no_undo", "undo-deploy"),
        ("no_undo", "undo-expand"),
        ("undo", "undo-tag"),  # lint is a check: it changes nothing, so no flag
        ("rollback", "redeploy"),
        ("validate", "validate-lint"),
    ]
    assert "point of no return" in entries[0].description


def test_the_plan_of_a_release_skips_what_never_ran() -> None:
    rb = load()
    results = {**ok("lint", "tag"), "expand": {"status": "failed"}}
    entries = describe_rollback(rb, registry, {}, results)
    assert [e.key for e in entries] == ["undo-tag", "redeploy", "validate-lint"]
    assert [k for k, *_ in rollback_plan(rb, results)] == ["undo-tag", "redeploy"]
    assert [k for k, *_ in rollback_plan(rb, ok("lint"))] == ["redeploy"]


def test_a_contract_migration_that_dropped_something_is_the_point_of_no_return() -> None:
    rb = load()
    assert points_of_no_return(rb, ok("deploy")) == []
    assert points_of_no_return(rb, ok("contract", contract={"applied": []})) == []
    assert points_of_no_return(rb, ok("contract", contract={"applied": ["2-drop.sql"]})) == [
        "contract"
    ]
    # an undo on the contract step is its restore procedure: no longer a point of no return
    with_undo = RUNBOOK.replace(
        "with: {directory: m, phase: contract}",
        "with: {directory: m, phase: contract}\n"
        "        undo: {action: shell, with: {command: restore-from-backup}}",
    )
    assert points_of_no_return(load(with_undo), ok("contract", contract={"applied": ["x"]})) == []
    # on a database with nothing applied, the expand step applies contract migrations too
    first_deploy = ok("expand", expand={"applied": ["1", "2"], "contract_applied": ["2"]})
    assert points_of_no_return(rb, first_deploy) == ["expand"]
    assert points_of_no_return(rb, ok("expand", expand={"applied": ["1"]})) == []


def test_captains_initiate_and_other_sres_approve() -> None:
    rb = load()
    assert check_rollback(rb, "rollback.initiate", user="casey") == "release_captain"
    with pytest.raises(PermissionDenied, match="needs role release_captain; sam holds oncall_sre"):
        check_rollback(rb, "rollback.initiate", user="sam")
    assert check_rollback(rb, "rollback.approve", user="sam", initiator="casey") == "oncall_sre"
    with pytest.raises(PermissionDenied, match="separation of duties"):
        check_rollback(rb, "rollback.approve", user="casey", initiator="casey")
    with pytest.raises(PermissionDenied, match="needs role oncall_sre; fola holds feature_owner"):
        check_rollback(rb, "rollback.approve", user="fola", initiator="casey")
    no_roles = load(RUNBOOK[: RUNBOOK.index("roles:")] + RUNBOOK[RUNBOOK.index("phases:") :])
    with pytest.raises(PermissionDenied, match="declares no role"):
        check_rollback(no_roles, "rollback.initiate", user="casey")


def test_an_unknown_validation_step_is_named_with_its_line(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidRunbook, match=r"shop.yaml:\d+: rollback_validation\[0\]: no step 'lnt'"
    ):
        load(RUNBOOK.replace("rollback_validation: [lint]", "rollback_validation: [lnt]"))


def test_plan_rollback_shows_the_plan(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(textwrap.dedent(RUNBOOK))
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "data"), "plan", "--rollback", str(path)]
    )
    assert result.exit_code == 0, result.output
    text = result.output[result.output.index("rollback plan") :]
    assert "undo     undo-tag: run `git tag -d v1`" in text
    assert "!        undo-deploy: deploy (shell) changes something and has no undo" in text
    assert "point of no return: contract" in text
    assert text.index("undo-tag") < text.index("redeploy") < text.index("validate-lint")
