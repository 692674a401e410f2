"""The home page's own store queries, on SQLite and on PostgreSQL: what is live in each
environment and the gates waiting for a person, with more releases than the old caps (the
newest 1,000 succeeded releases; 200 waiting releases) inserted cheaply, in one statement."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from helpers.databases import raw_engine
from helpers.web import GATED, token_for
from shipcaptain.client import ACTIVE, Client
from shipcaptain.settings import Settings
from shipcaptain.store import RELEASE_STATUSES, DecisionRecord, GateRecord, ReleaseRecord, Store
from shipcaptain.store import rows as store_rows
from shipcaptain.store.sqlfiles import load_queries

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def release(i: int, **overrides: Any) -> ReleaseRecord:
    fields: dict[str, Any] = {
        "id": f"rel-{i:05d}",
        "runbook_name": "gated",
        "runbook_digest": "sha256:abc",
        "runbook_text": GATED,
        "environment": "production",
        "started_by": "dana",
        "params": {"version": f"1.0.{i}"},
        "created_at": T0 + timedelta(minutes=i),
    }
    fields.update(overrides)
    return ReleaseRecord(**fields)


def insert(url: str, query: str, records: list[dict[str, Any]]) -> None:
    """Many rows in one executemany, around the store (its own SQL)."""
    with raw_engine(url) as engine, engine.begin() as conn:
        conn.execute(text(load_queries("queries.sql")[query]), records)


def test_what_is_live_answers_every_environment_and_runbook(store: Store, store_url: str) -> None:
    # the oldest succeeded releases are the only ones of their environment and runbook,
    # under 1,200 newer ones: a scan of the newest 1,000 would not see them
    old = [
        release(0, environment="staging", runbook_name="gated"),
        release(1, environment="production", runbook_name="other"),
    ]
    newer = [release(i) for i in range(2, 1_202)]
    rolled_back = release(1_202, status="rolled_back")  # newer, but not live
    records = [replace(r, status="succeeded") for r in (*old, *newer)] + [rolled_back]
    insert(store_url, "insert_release", [store_rows.release_params(r) for r in records])
    live = store.live_releases()
    assert [(r.environment, r.runbook_name, r.id) for r in live] == [
        ("production", "gated", "rel-01201"),
        ("production", "other", "rel-00001"),
        ("staging", "gated", "rel-00000"),
    ]
    assert [r.id for r in store.live_releases(environment="staging")] == ["rel-00000"]
    assert [r.id for r in store.live_releases(runbook="other")] == ["rel-00001"]
    assert store.live_releases(environment="staging", runbook="other") == []


def waiting_releases(url: str, count: int) -> list[ReleaseRecord]:
    """``count`` waiting releases, each with its open gate ``go_ahead`` (run 1)."""
    records = [release(i, status="waiting") for i in range(count)]
    insert(url, "insert_release", [store_rows.release_params(r) for r in records])
    gates = [
        GateRecord(
            release_id=r.id,
            step_id="go_ahead",
            run=1,
            kind="approval",
            prompt="ship it?",
            roles=("oncall_sre",),
            opened_at=r.created_at,
        )
        for r in records
    ]
    insert(url, "insert_gate", [store_rows.gate_params(g) for g in gates])
    return records


def test_the_gates_waiting_for_a_person_are_all_found(store: Store, store_url: str) -> None:
    records = waiting_releases(store_url, 260)
    newest, oldest = records[-1], records[0]
    store.add_decision(
        DecisionRecord(
            release_id=newest.id, step_id="go_ahead", run=1, user="sam", decision="approve"
        )
    )
    found = store.waiting_gates_undecided_by("sam")
    assert len(found) == 259  # more than 200, less the one sam decided
    assert found[0][0].id == records[-2].id  # newest first
    assert (found[-1][0], found[-1][1].step_id) == (oldest, "go_ahead")  # past the old cap
    assert all(gate.release_id == rel.id for rel, gate in found)
    assert len(store.waiting_gates_undecided_by("erin")) == 260
    assert store.waiting_gates_undecided_by("sam", environment="staging") == []
    assert store.waiting_gates_undecided_by("sam", runbook="other") == []
    assert store.waiting_gates_undecided_by("sam", started_by="erin") == []
    assert len(store.waiting_gates_undecided_by("sam", started_by="dana")) == 259
    store.close_gate(oldest.id, "go_ahead", 1, "approved")
    assert oldest.id not in {r.id for r, _ in store.waiting_gates_undecided_by("erin")}


def test_the_client_answers_the_gates_a_person_may_decide(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    token_for(store, "sam")  # the team: everyone the tests act as, with every role
    records = waiting_releases(store_url, 210)
    client = Client(Settings(database_url=store_url, data_dir=tmp_path), store=store)
    mine = client.gates_waiting_for("sam")
    assert [r.id for r, _ in mine] == [r.id for r in reversed(records)]
    assert client.gates_waiting_for("stranger") == []  # not of the team: may decide none
    assert "stranger" in client.why_not_decide("stranger", records[0], mine[-1][1])
    live = client.live_releases()
    assert live == []  # none succeeded


def test_every_release_not_finished_is_running_on_the_home_page(
    store: Store, store_url: str
) -> None:
    # one of each status, under 250 newer running ones (the old list looked at 200 releases)
    each = [release(i, status=s, id=f"rel-s{i}") for i, s in enumerate(RELEASE_STATUSES)]
    running = [release(i, status="running") for i in range(100, 350)]
    insert(store_url, "insert_release", [store_rows.release_params(r) for r in each + running])
    active = store.active_releases()
    assert {r.status for r in active} == ACTIVE  # the client's own set
    assert len(active) == len(ACTIVE) + 250  # every one of them
    assert active[0].id == running[-1].id  # newest first
    assert {r.id for r in each if r.status in ACTIVE} <= {r.id for r in active}
    assert store.active_releases(environment="staging") == []
    assert store.active_releases(started_by="erin") == []
    assert len(store.active_releases(runbook="gated", started_by="dana")) == len(active)
