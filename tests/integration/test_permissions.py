"""The permission table (role x action x environment), separation of duties, and the
engine applying the team's table at a gate, on a real database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.releases import Harness, harness, write_runbook
from shipcaptain.client import Client
from shipcaptain.engine.ids import DECISION_TOPIC, step_workflow_id
from shipcaptain.errors import NotFound, PermissionDenied
from shipcaptain.permissions import (
    ACTIONS,
    GateRule,
    Policy,
    authorize,
    person_named,
    policy_of,
)
from shipcaptain.records import Person, ReleaseRecord
from shipcaptain.settings import Settings
from shipcaptain.store import Store, open_store
from shipcaptain.team import allow_runbook, runbook_rule

CARA = Person(name="cara", roles={"*": ("release_captain",)}, admin=True)
SID = Person(name="sid", roles={"production": ("oncall_sre",)})
FAY = Person(name="fay", roles={"*": ("feature_owner",)}, surfaces=("billing",))
OLGA = Person(name="olga")
ROBOT = Person(name="robot", roles={"*": ("worker",)})  # a worker's service person
TEAM = [CARA, SID, FAY, OLGA, ROBOT]

#: (person, action, environment, allowed) under the default permissions
TABLE = [
    (CARA, "release.start", "production", True),
    (CARA, "release.start", "staging", True),
    (SID, "release.start", "production", False),
    (FAY, "release.start", "production", False),
    (OLGA, "release.start", "staging", False),
    (CARA, "release.cancel", "production", True),
    (SID, "release.cancel", "production", True),
    (SID, "release.cancel", "staging", False),
    (FAY, "release.cancel", "production", False),
    (CARA, "release.resume", "staging", True),
    (SID, "release.resume", "production", True),
    (SID, "release.resume", "staging", False),
    (OLGA, "release.resume", "production", False),
    (CARA, "rollback.initiate", "production", True),
    (SID, "rollback.initiate", "production", True),
    (FAY, "rollback.initiate", "production", False),
    (SID, "rollback.approve", "production", True),
    (SID, "rollback.approve", "staging", False),
    (CARA, "rollback.approve", "production", False),
    (FAY, "gate.decide", "production", True),
    (OLGA, "gate.decide", "staging", True),
    (CARA, "migrations.apply", "production", True),
    (CARA, "migrations.apply", "staging", True),
    (SID, "migrations.apply", "production", False),
    (FAY, "migrations.apply", "staging", False),
    (ROBOT, "migrations.apply", "staging", False),
    # a worker takes releases of every environment: the role must be held for "*"
    (ROBOT, "worker.run", "*", True),
    (CARA, "worker.run", "*", True),
    (SID, "worker.run", "*", False),  # oncall_sre in production only
    (FAY, "worker.run", "*", False),
    (ROBOT, "release.start", "staging", False),
    # incidents: the on-call SRE and the captain, nobody else
    (SID, "incident.open", "production", True),
    (CARA, "incident.open", "staging", True),
    (OLGA, "incident.open", "production", False),
    (FAY, "incident.open", "production", False),
    (SID, "incident.acknowledge", "production", True),
    (OLGA, "incident.acknowledge", "production", False),
    (CARA, "incident.mitigate", "production", True),
    (FAY, "incident.mitigate", "production", False),
    (SID, "incident.resolve", "production", True),
    (OLGA, "incident.resolve", "staging", False),
]

TEAM_POLICY = Policy(
    assigned=frozenset({"release_captain", "oncall_sre", "feature_owner", "worker"})
)


@pytest.mark.parametrize(
    ("person", "action", "environment", "allowed"),
    TABLE,
    ids=[f"{p.name}-{a}-{e}" for p, a, e, _ in TABLE],
)
def test_the_permission_table(person: Person, action: str, environment: str, allowed: bool) -> None:
    if allowed:
        authorize(person, action, environment=environment, policy=TEAM_POLICY)
    else:
        with pytest.raises(PermissionDenied, match=f"may not .* in {environment}"):
            authorize(person, action, environment=environment, policy=TEAM_POLICY)


def test_every_action_has_a_row_in_the_table() -> None:
    assert {action for _, action, _, _ in TABLE} == set(ACTIONS)


def test_a_team_file_table_replaces_the_default_for_its_actions() -> None:
    policy = Policy(
        permissions={"release.start": {"staging": ["oncall_sre"], "*": ["release_captain"]}},
        assigned=TEAM_POLICY.assigned,
    )
    staging_sre = Person(name="sid", roles={"staging": ("oncall_sre",)})
    assert authorize(staging_sre, "release.start", environment="staging", policy=policy) == (
        "oncall_sre"
    )
    with pytest.raises(PermissionDenied):
        authorize(CARA, "release.start", environment="staging", policy=policy)
    # actions it leaves out keep the defaults
    authorize(SID, "release.cancel", environment="production", policy=policy)


def test_the_rollback_initiator_cannot_approve_it() -> None:
    both = Person(name="sid", roles={"*": ("oncall_sre",)})
    with pytest.raises(PermissionDenied, match="initiated this rollback"):
        authorize(
            both, "rollback.approve", environment="production", policy=TEAM_POLICY, initiator="sid"
        )
    authorize(
        both, "rollback.approve", environment="production", policy=TEAM_POLICY, initiator="cara"
    )


def test_self_approval_is_refused_at_an_approval_gate() -> None:
    release = ReleaseRecord(
        runbook_name="x",
        runbook_digest="",
        runbook_text="",
        environment="production",
        started_by="fay",
    )
    gate = GateRule(kind="approval", roles=("feature_owner",), people=())
    with pytest.raises(PermissionDenied, match="separation of duties"):
        authorize(
            FAY,
            "gate.decide",
            environment="production",
            policy=TEAM_POLICY,
            release=release,
            gate=gate,
        )
    other = Person(name="fox", roles={"*": ("feature_owner",)})
    assert (
        authorize(
            other,
            "gate.decide",
            environment="production",
            policy=TEAM_POLICY,
            release=release,
            gate=gate,
        )
        == "feature_owner"
    )


# ---- the engine: a gate checks the team's table in its decide step --------------------------

RUNBOOK = """\
name: gated
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
      - id: gate
        action: approval
        with: {prompt: ship it?, roles: [oncall_sre], quorum: 2, timeout: 1h}
      - {id: after, action: shell, needs: [gate], with: {command: "echo after"}}
"""


@pytest.fixture
def h(engine_database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(engine_database_url, tmp_path) as running:
        running.client.store.put_team(
            [
                *TEAM,
                Person(name="sue", roles={"*": ("oncall_sre",)}),
                Person(name="sol", roles={"production": ("oncall_sre", "release_captain")}),
            ],
            actor="test",
            message="team",
            data={},
        )
        yield running


def _send(h: Harness, release_id: str, user: str, decision: str = "approve") -> None:
    """A decision that skips the client's check: only the engine's stands."""
    h.client._engine_client().send(
        step_workflow_id(release_id, 1, "gate"),
        {"decision": decision, "user": user, "role": None, "comment": ""},
        DECISION_TOPIC,
    )


def test_the_engine_checks_the_team_table_quorum_and_evidence(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, RUNBOOK)
    assert policy_of(h.client.store).team
    with pytest.raises(PermissionDenied, match="needs role release_captain"):
        h.start(runbook, user="sid")
    with pytest.raises(PermissionDenied, match="production is protected"):
        h.start(runbook, user="sol")
    allow_runbook(h.client.store, runbook_rule("production", str(runbook)), by=CARA)
    release = h.start(runbook, user="sol")
    h.wait_for_gate(release.id, "gate")
    # straight to the engine: fay has no oncall_sre role, sol started the release
    _send(h, release.id, "fay")
    _send(h, release.id, "sol")
    assert h.client.decide(release.id, "gate", user="sid", decision="approve") == "recorded"
    assert h.client.decide(release.id, "gate", user="sue", decision="approve") == "recorded"
    assert h.wait(release.id).status == "succeeded"
    decisions = h.client.store.list_decisions(release.id, "gate")
    assert sorted(d.user for d in decisions) == ["sid", "sue"]
    gate = h.client.store.get_gate(release.id, "gate", 1)
    assert all(d.evidence == gate.evidence for d in decisions)
    refused = [e for e in h.client.store.list_events(release.id) if e.kind == "gate.refused"]
    assert [e.actor for e in refused] == ["fay", "sol"]
    assert "separation of duties" in refused[1].message


def test_sid_holds_no_role_in_staging_so_the_engine_refuses_him(h: Harness, tmp_path: Path) -> None:
    runbook = write_runbook(tmp_path, RUNBOOK)
    release = h.start(runbook, user="cara", environment="staging")
    h.wait_for_gate(release.id, "gate")
    with pytest.raises(PermissionDenied, match="sid holds no role"):
        h.client.decide(release.id, "gate", user="sid", decision="approve")
    _send(h, release.id, "sid")
    assert h.client.decide(release.id, "gate", user="sue", decision="reject") == "recorded"
    assert h.wait(release.id).status == "failed"  # a rejection ends the gate
    assert [d.user for d in h.client.store.list_decisions(release.id, "gate")] == ["sue"]
    assert h.client.store.get_gate(release.id, "gate", 1).status == "rejected"


class _TeamMadeMeanwhile:
    """A store whose team is put between a look for one person and the read of the team
    (a team made as a release starts)."""

    def __init__(self, team: list[Person]) -> None:
        self.team = team

    def get_person(self, name: str) -> Person:
        raise NotFound(f"no person {name!r}")

    def list_people(self) -> list[Person]:
        return self.team


def test_someone_who_joined_between_two_reads_is_on_the_team() -> None:
    """Not found, then on the team a moment later: the team's person, not "not on the
    team" (the engine refused a release's starter so, as a test made the team)."""
    casey = Person(name="casey", roles=["release_captain"])
    found = person_named(_TeamMadeMeanwhile([casey]), "casey")  # type: ignore[arg-type]
    assert (found.name, found.active, found.roles) == ("casey", True, ["release_captain"])
    stranger = person_named(_TeamMadeMeanwhile([casey]), "sid")  # type: ignore[arg-type]
    assert (stranger.name, stranger.active) == ("sid", False)
    nobody = person_named(_TeamMadeMeanwhile([]), "sid")  # type: ignore[arg-type]
    assert (nobody.name, nobody.active) == ("sid", True)  # no team: no team roles


def test_a_check_reads_the_team_at_one_moment(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A team applied while a permission check reads the team: the check sees the team
    before or the team after, never someone's role of before with the permission table of
    after. Read one by one (the person, then the table), casey's old role met the new table,
    which gives cancelling to captains: allowed, where neither team allows it."""

    def apply(on: Store, casey_is: str, cancelled_by: str) -> None:
        on.put_team(
            [
                Person(name="casey", roles={"*": (casey_is,)}),
                Person(name="sam", roles={"*": ("oncall_sre",)}),
            ],
            actor="test",
            message="team",
            data={},
            permissions={"release.cancel": {"*": [cancelled_by]}},
            environments={},
        )

    apply(store, "release_captain", cancelled_by="oncall_sre")  # casey may not cancel
    client = Client(Settings(database_url=store_url), store=store)
    other = open_store(store_url)  # the team lead's `team apply`, another connection
    applied: list[str] = []
    read_one, read_all = store._one, store._all

    def meanwhile(query: str) -> None:  # just after the check's first read of the team
        if query in ("get_person", "list_people") and not applied:
            applied.append(query)
            apply(other, "feature_owner", cancelled_by="release_captain")  # nor may she now

    def one(conn: Any, query: str, **params: Any) -> Any:
        found = read_one(conn, query, **params)
        meanwhile(query)
        return found

    def every(conn: Any, query: str, **params: Any) -> Any:
        found = read_all(conn, query, **params)
        meanwhile(query)
        return found

    monkeypatch.setattr(store, "_one", one)
    monkeypatch.setattr(store, "_all", every)
    try:
        with pytest.raises(PermissionDenied):
            client.authorize("casey", "release.cancel", environment="staging")
        assert applied, "the team was not applied during the check"
        # the next check reads the team as it is now
        now = policy_of(store)
        assert now.person("casey").roles == {"*": ("feature_owner",)}
        assert now.allowed_roles("release.cancel", "staging") == ("release_captain",)
    finally:
        other.close()
