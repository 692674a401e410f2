"""Smoke results validated per surface on a real engine and database: each feature owner
validates the surfaces the team file gives them, and a failed test's surface only by its
own owner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.releases import Harness, harness, write_runbook
from shipcaptain.errors import PermissionDenied
from shipcaptain.records import Person

TEAM = [
    Person(name="casey", roles={"*": ("release_captain",)}, admin=True),
    Person(name="fola", roles={"*": ("feature_owner",)}, surfaces=("canvas",)),
    Person(name="dev", roles={"*": ("feature_owner",)}, surfaces=("billing",)),
    Person(name="erin", roles={"*": ("feature_owner",)}, surfaces=("search",)),
]

JUNIT = (
    '<testsuite name="smoke">'
    '<testcase classname="canvas.Share" name="test_link"/>'
    '<testcase classname="canvas.Share" name="test_embed"/>'
    '<testcase classname="billing.Invoices" name="test_pay"><failure message="502"/></testcase>'
    '<testcase classname="misc.Health" name="test_ping"/>'
    "</testsuite>"
)

RUNBOOK = f"""\
name: smoked
roles:
  release_captain: {{title: Release Captain}}
  feature_owner: {{title: Feature Owner}}
phases:
  - id: smoke
    steps:
      - id: smoke_api
        action: smoke
        on_failure: continue
        with:
          command: mkdir -p reports && echo '{JUNIT}' > reports/smoke.xml && exit 1
          junit: reports/smoke.xml
          surfaces:
            canvas: ["canvas.*"]
            billing: ["billing.*"]
            search: ["search.*"]
      - id: validated
        action: smoke_sign_off
        needs: [smoke_api]
        with:
          results: "{{{{ steps.smoke_api.by_surface | tojson }}}}"
          timeout: 1h
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        running.client.store.put_team(
            TEAM, actor="test", message="the team", data={}, permissions={}
        )
        yield running


def test_each_owner_validates_their_surfaces_and_only_theirs(h: Harness, tmp_path: Path) -> None:
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    h.wait_for_gate(release.id, "validated")
    gate = h.client.store.get_gate(release.id, "validated", 1)
    parts = {p["title"]: (p["people"], p["roles"]) for p in gate.evidence["parts"]}
    assert parts == {
        "canvas: 2 of 2 passed": (["fola"], []),
        "billing: 0 of 1 passed, failed: billing.Invoices.test_pay": (["dev"], []),
        "unassigned: 1 of 1 passed": ([], ["release_captain"]),
    }  # search ran no test: nothing for erin to validate
    with pytest.raises(PermissionDenied, match="erin may not decide this gate"):
        h.client.decide(release.id, "validated", user="erin", decision="approve")
    # fola validates canvas; that does not cover billing's failed test
    h.client.decide(release.id, "validated", user="fola", decision="approve")
    h.client.decide(release.id, "validated", user="casey", decision="approve")
    assert h.client.store.get_gate(release.id, "validated", 1).status == "waiting"
    h.client.decide(
        release.id, "validated", user="dev", decision="approve", comment="pay: known 502 upstream"
    )
    assert h.wait(release.id).status == "succeeded"
    saw = {d.user: d.evidence for d in h.client.store.list_decisions(release.id, "validated")}
    assert [p["title"] for p in saw["fola"]["parts"]] == ["canvas: 2 of 2 passed"]
    assert [p["title"] for p in saw["dev"]["parts"]] == [
        "billing: 0 of 1 passed, failed: billing.Invoices.test_pay"
    ]
    run = h.client.store.latest_step_runs(release.id)["validated"]
    assert run.outputs["failed_surfaces"] == ["billing"]
    assert run.outputs["validated_by"] == ["fola", "casey", "dev"]


def test_the_owner_of_a_failed_surface_can_refuse_it(h: Harness, tmp_path: Path) -> None:
    release = h.start(write_runbook(tmp_path, RUNBOOK))
    h.wait_for_gate(release.id, "validated")
    h.client.decide(
        release.id, "validated", user="dev", decision="reject", comment="payments broken"
    )
    assert h.wait(release.id).status == "failed"
    run = h.client.store.latest_step_runs(release.id)["validated"]
    assert "rejected by dev" in run.summary
    assert "payments broken" in run.summary
