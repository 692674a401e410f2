"""The state store, on SQLite and on PostgreSQL (every test that takes ``store`` or
``store_url`` runs once per backend)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from helpers.databases import raw_engine, tamper_with_events
from shipcaptain.errors import InvalidSettings, InvalidState, NotFound, StoreError
from shipcaptain.incidents import new_incident
from shipcaptain.records import ReleaseFilter
from shipcaptain.runbook.model import Sla
from shipcaptain.store import (
    GENESIS_HASH,
    AuditCheck,
    DecisionRecord,
    GateRecord,
    ReleaseRecord,
    StepRunRecord,
    Store,
    mask_url,
    normalize_url,
    open_store,
)
from shipcaptain.store.audit import hash_of
from shipcaptain.store.sqlfiles import load_migrations

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def release(**overrides: Any) -> ReleaseRecord:
    fields: dict[str, Any] = {
        "runbook_name": "valuecanvas",
        "runbook_digest": "sha256:abc",
        "runbook_text": "name: valuecanvas\n",
        "environment": "production",
        "started_by": "ann",
        "params": {"version": "1.4.2", "canary": 0.1},
    }
    fields.update(overrides)
    return ReleaseRecord(**fields)


def step(release_id: str, step_id: str, run: int = 1, attempt: int = 1, **kw: Any) -> StepRunRecord:
    kw.setdefault("status", "running")
    return StepRunRecord(release_id=release_id, step_id=step_id, run=run, attempt=attempt, **kw)


def gate(release_id: str, step_id: str = "approve", run: int = 1, **kw: Any) -> GateRecord:
    kw.setdefault("kind", "approval")
    kw.setdefault("prompt", "Ship it?")
    return GateRecord(release_id=release_id, step_id=step_id, run=run, **kw)


def run_in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; their results (errors re-raised)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def execute(url: str, sql: str, **params: Any) -> None:
    with raw_engine(url) as engine, engine.begin() as conn:
        conn.execute(text(sql), params)


# -- URLs and records (no database) ---------------------------------------------------------


def test_normalize_url_picks_the_psycopg_driver_for_postgresql() -> None:
    assert normalize_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert normalize_url("postgres://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:////tmp/x/state.db") == "sqlite:////tmp/x/state.db"
    assert normalize_url("sqlite:///rel/state.db") == "sqlite:///rel/state.db"


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "not a url", "redis://h"]
)
def test_unsupported_urls_are_a_settings_error(url: str) -> None:
    with pytest.raises(InvalidSettings):
        open_store(url)


def test_mask_url_hides_the_password() -> None:
    assert mask_url("postgresql://ann:s3cret@db:5432/ship") == "postgresql://ann:***@db:5432/ship"
    assert mask_url("postgresql://ann@db/ship") == "postgresql://ann@db/ship"
    assert "s3cret" not in mask_url("weird://ann:s3cret@db:x:y/ship")


def test_records_refuse_naive_times_and_unknown_statuses() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        release(created_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="unknown release status"):
        release(status="done")
    with pytest.raises(ValueError, match="unknown step status"):
        step("r", "s", status="finished")
    with pytest.raises(ValueError, match="unknown gate status"):
        gate("r", status="open")


def test_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    store = open_store("postgresql://shipcaptain:s3cr3t-pw@127.0.0.1:1/nothing")
    try:
        with pytest.raises(StoreError) as caught:
            store.migrate()
    finally:
        store.close()
    message = str(caught.value)
    assert "cannot connect to the state database" in message
    assert "postgresql://shipcaptain:***@127.0.0.1:1/nothing" in message
    assert "s3cr3t-pw" not in message
    assert caught.value.code == "SC700"


def test_sqlite_creates_the_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"
    with open_store(f"sqlite:///{path}") as store:
        store.migrate()
    assert path.exists()
    with raw_engine(f"sqlite:///{path}") as engine, engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


# -- migrations ---------------------------------------------------------------------------


def test_migrate_is_idempotent(store_url: str) -> None:
    with open_store(store_url) as store:
        every = [m.version for m in load_migrations(store.backend)]
        assert every[:4] == [1, 2, 3, 4]
        assert store.schema_version() == 0
        assert store.migrate() == every
        assert store.migrate() == []
        assert store.schema_version() == every[-1]
    with open_store(store_url) as again:
        assert again.migrate() == []


def test_an_up_to_date_database_is_told_by_one_read_of_its_versions(store_url: str) -> None:
    """Nearly every migrate finds every migration applied: it reads the versions and
    stops, taking no write lock (no write transaction, no DDL); a database short of a
    migration is migrated as before."""
    from sqlalchemy import event

    with open_store(store_url) as store:
        every = [m.version for m in load_migrations(store.backend)]
        assert store.migrate() == every
        statements: list[str] = []

        def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(" ".join(statement.split()))

        engine = store._engine  # type: ignore[attr-defined]
        event.listen(engine, "before_cursor_execute", on_statement)
        try:
            assert store.migrate() == []
            read = list(statements)
            execute(store_url, "DELETE FROM sc_schema_version WHERE version = :v", v=every[-1])
            statements.clear()
            # the last migration runs again (it may fail on what it made the first time)
            with contextlib.suppress(StoreError):
                store.migrate()
            again = list(statements)
        finally:
            event.remove(engine, "before_cursor_execute", on_statement)
    assert [s for s in read if not s.startswith(("BEGIN", "PRAGMA"))] == [
        "SELECT version FROM sc_schema_version ORDER BY version"
    ]
    assert not any(s.startswith(("BEGIN IMMEDIATE", "CREATE")) for s in read)
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS sc_schema_version") for s in again)


def test_two_processes_migrating_at_once_take_turns(store_url: str) -> None:
    stores = [open_store(store_url), open_store(store_url)]  # two engines, two pools
    try:
        applied = run_in_threads(2, lambda i: stores[i].migrate())
        every = [m.version for m in load_migrations(stores[0].backend)]
        assert sorted(applied) == [[], every]
        assert stores[0].schema_version() == every[-1]
        assert stores[1].list_releases() == []
    finally:
        for store in stores:
            store.close()


def test_a_newer_schema_is_refused(store: Store, store_url: str) -> None:
    execute(
        store_url,
        "INSERT INTO sc_schema_version (version, name, applied_at) VALUES (99, 'future', :at)",
        at=T0.isoformat(),
    )
    with pytest.raises(StoreError, match="schema version 99, newer"):
        store.migrate()


def test_an_unmigrated_database_says_to_run_the_migrations(store_url: str) -> None:
    with open_store(store_url) as store, pytest.raises(StoreError, match="run the migrations"):
        store.list_releases()


# -- releases -----------------------------------------------------------------------------


def test_create_and_get_a_release(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    record = release(runbook_path="runbooks/vc.yaml", created_at=T0.astimezone(paris))
    created = store.create_release(record)
    assert created == record
    assert created.created_at == T0
    assert created.created_at.tzinfo == UTC
    assert created.params == {"version": "1.4.2", "canary": 0.1}
    assert created.status == "pending"
    assert created.run == 1
    assert store.get_release(record.id) == record


def test_creating_a_release_again_returns_the_stored_one(store: Store) -> None:
    first = store.create_release(release(id="rel-1"))
    again = store.create_release(release(id="rel-1", environment="staging"))
    assert again == first
    assert again.environment == "production"


def test_a_release_keeps_the_outline_it_was_created_with(store: Store) -> None:
    outline = '{"format":1,"steps":[["tag","ship","Tag the commit","git_tag",["build"]]]}'
    with_one = store.create_release(release(id="rel-1"), outline=outline)
    store.create_release(release(id="rel-1"), outline='{"format":1,"steps":[]}')  # replayed
    before = store.create_release(release(id="rel-2"))  # created before outlines were kept
    assert store.release_outline(with_one.id) == outline
    assert store.release_outline(before.id) is None
    with pytest.raises(NotFound, match="no release 'rel-nope'"):
        store.release_outline("rel-nope")


def test_a_missing_release_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="no release 'rel-nope'"):
        store.get_release("rel-nope")
    with pytest.raises(NotFound):
        store.update_release("rel-nope", status="running")


def test_list_releases_newest_first_with_filters(store: Store) -> None:
    for i, (env, status) in enumerate(
        [("staging", "succeeded"), ("production", "running"), ("production", "succeeded")]
    ):
        store.create_release(
            release(id=f"rel-{i}", environment=env, status=status, created_at=T0 + timedelta(i))
        )
    assert [r.id for r in store.list_releases()] == ["rel-2", "rel-1", "rel-0"]
    assert [r.id for r in store.list_releases(ReleaseFilter(status="succeeded"))] == [
        "rel-2",
        "rel-0",
    ]
    production = ReleaseFilter(environment="production")
    assert [r.id for r in store.list_releases(production)] == ["rel-2", "rel-1"]
    staging = ReleaseFilter(status="succeeded", environment="staging")
    assert [r.id for r in store.list_releases(staging)] == ["rel-0"]
    assert [r.id for r in store.list_releases(ReleaseFilter(limit=1))] == ["rel-2"]
    assert [r.id for r in store.list_releases(ReleaseFilter(limit=1, offset=1))] == ["rel-1"]
    assert [r.id for r in store.list_releases(ReleaseFilter(runbook="valuecanvas"))] == [
        "rel-2",
        "rel-1",
        "rel-0",
    ]
    assert store.list_releases(ReleaseFilter(started_by="nobody")) == []
    assert store.list_releases(ReleaseFilter(status="cancelled")) == []


def test_update_release_changes_only_the_given_fields(store: Store) -> None:
    record = store.create_release(release())
    started = T0 + timedelta(minutes=1)
    running = store.update_release(
        record.id, status="running", started_at=started, executor_id="worker-a"
    )
    assert (running.status, running.started_at, running.executor_id) == (
        "running",
        started,
        "worker-a",
    )
    assert running.ended_at is None
    assert running.params == record.params
    ended = store.update_release(
        record.id, status="failed", ended_at=started + timedelta(1), reason="smoke test failed"
    )
    assert ended.started_at == started
    assert ended.executor_id == "worker-a"
    assert (ended.status, ended.reason) == ("failed", "smoke test failed")
    resumed = store.update_release(record.id, status="running", run=2)
    assert (resumed.status, resumed.run) == ("running", 2)
    assert store.get_release(record.id) == resumed
    with pytest.raises(ValueError, match="unknown release status"):
        store.update_release(record.id, status="done")  # type: ignore[arg-type]


# -- step runs ----------------------------------------------------------------------------


def test_upsert_step_run_is_idempotent(store: Store) -> None:
    rel = store.create_release(release())
    record = step(rel.id, "build", status="succeeded", started_at=T0, ended_at=T0, outputs={"a": 1})
    assert store.upsert_step_run(record) == record
    assert store.upsert_step_run(record) == record
    assert store.list_step_runs(rel.id) == [record]


def test_upsert_step_run_moves_a_try_forward_but_never_back(store: Store) -> None:
    rel = store.create_release(release())
    store.upsert_step_run(step(rel.id, "deploy", started_at=T0))
    done = store.upsert_step_run(
        step(
            rel.id,
            "deploy",
            status="succeeded",
            ended_at=T0 + timedelta(seconds=5),
            summary="rolled out",
            detail="3/3 ready",
            outputs={"revision": 7},
            already_done=True,
        )
    )
    assert done.started_at == T0  # kept from the first write
    assert (done.status, done.summary, done.outputs, done.already_done) == (
        "succeeded",
        "rolled out",
        {"revision": 7},
        True,
    )
    replayed = store.upsert_step_run(step(rel.id, "deploy", status="running", started_at=T0))
    assert replayed == done


def test_latest_and_succeeded_step_runs(store: Store) -> None:
    rel = store.create_release(release())
    writes = [
        step(rel.id, "build", 1, 1, status="succeeded", started_at=T0),
        step(rel.id, "deploy", 1, 1, status="failed", started_at=T0 + timedelta(seconds=1)),
        step(rel.id, "deploy", 1, 2, status="succeeded", started_at=T0 + timedelta(seconds=2)),
        step(rel.id, "deploy", 2, 1, status="failed", started_at=T0 + timedelta(seconds=3)),
        step(rel.id, "verify", 2, 1, status="pending"),
    ]
    for record in writes:
        store.upsert_step_run(record)
    assert store.list_step_runs(rel.id) == writes
    latest = store.latest_step_runs(rel.id)
    assert latest == {"build": writes[0], "deploy": writes[3], "verify": writes[4]}
    assert store.succeeded_step_run(rel.id, "deploy") == writes[2]
    assert store.succeeded_step_run(rel.id, "verify") is None
    assert store.latest_step_runs("rel-other") == {}
    # what the engine reads before a step (one read): the same picks
    start = store.step_start(rel.id, "deploy")

    def light(t: StepRunRecord) -> StepRunRecord:  # without times and detail
        return replace(t, started_at=None, ended_at=None, detail="")

    assert (start.release.id, start.latest) == (rel.id, {s: light(t) for s, t in latest.items()})
    assert start.succeeded == light(writes[2])
    assert store.step_start(rel.id, "verify").succeeded is None
    # a step that needs no other step's outputs reads only its own tries: the same pick
    own = store.step_start(rel.id, "deploy", every_step=False)
    assert (own.release.id, own.succeeded, own.latest) == (rel.id, light(writes[2]), None)
    assert store.step_start(rel.id, "verify", every_step=False).succeeded is None
    # the other steps' outputs, read when needed: step_start's pick, less a step's own run
    assert store.newest_tries(rel.id) == start.latest
    assert store.newest_tries(rel.id, ("deploy", 2)) == {
        "build": light(writes[0]),
        "deploy": light(writes[2]),
        "verify": light(writes[4]),
    }
    assert store.newest_tries("rel-other") == {}


def test_a_step_run_needs_its_release(store: Store) -> None:
    with pytest.raises(NotFound):
        store.upsert_step_run(step("rel-nope", "build"))


# -- gates and decisions ------------------------------------------------------------------


def test_open_gate_is_idempotent(store: Store) -> None:
    rel = store.create_release(release())
    record = gate(
        rel.id,
        roles=["release-manager", "sre"],
        people=["bob"],
        quorum=2,
        deadline_at=T0 + timedelta(hours=1),
        evidence={"dashboard": "https://grafana/x"},
        opened_at=T0,
    )
    assert store.open_gate(record) == record
    assert store.open_gate(gate(rel.id, prompt="changed", opened_at=T0)) == record
    assert store.get_gate(rel.id, "approve", 1) == record


def test_get_gate_defaults_to_the_newest_run(store: Store) -> None:
    rel = store.create_release(release())
    store.open_gate(gate(rel.id, run=1, opened_at=T0))
    newest = store.open_gate(gate(rel.id, run=2, opened_at=T0 + timedelta(1)))
    assert store.get_gate(rel.id, "approve") == newest
    with pytest.raises(NotFound):
        store.get_gate(rel.id, "approve", 3)
    with pytest.raises(NotFound):
        store.get_gate(rel.id, "other")
    with pytest.raises(NotFound):
        store.open_gate(gate("rel-nope"))


def test_gates_move_a_running_release_to_waiting_and_back(store: Store) -> None:
    rel = store.create_release(release())
    store.update_release(rel.id, status="running")
    store.open_gate(gate(rel.id, "approve", opened_at=T0))
    assert store.get_release(rel.id).status == "waiting"
    store.open_gate(gate(rel.id, "sign-off", kind="checklist", opened_at=T0))
    store.close_gate(rel.id, "approve", 1, "approved")
    assert store.get_release(rel.id).status == "waiting"  # the sign-off is still open
    store.close_gate(rel.id, "sign-off", 1, "approved")
    assert store.get_release(rel.id).status == "running"

    other = store.create_release(release(id="rel-cancelled"))
    store.update_release(other.id, status="cancelled")
    store.open_gate(gate(other.id, "approve", opened_at=T0))
    assert store.get_release(other.id).status == "cancelled"  # only a running one waits


def test_a_gate_opens_with_its_steps_waiting_try_in_one_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine opens a gate and writes its step's ``waiting`` try together: a reader
    between the two saw an open gate on a step still ``running`` (a server's and the
    database's reads of one release disagreed in CI); if the try's write fails, no gate."""
    from shipcaptain import events

    rel = store.create_release(release())
    store.update_release(rel.id, status="running")
    store.upsert_step_run(step(rel.id, "approve"))
    opened = (events.ApprovalOpened, "engine", "waiting for 1 of anyone: Ship it?", {"run": 1})
    waiting = step(rel.id, "approve", status="waiting", summary="Ship it?")

    def refused(*_: Any) -> None:
        raise StoreError("the step's try could not be written")

    with monkeypatch.context() as patched:
        patched.setattr(store, "_put_step_run", refused)
        with pytest.raises(StoreError, match="could not be written"):
            store.open_gate(gate(rel.id, opened_at=T0), waiting, opened)
    assert store.list_gates(release_id=rel.id) == []
    assert store.get_release(rel.id).status == "running"
    assert store.latest_step_runs(rel.id)["approve"].status == "running"

    store.open_gate(gate(rel.id, opened_at=T0), waiting, opened)
    assert [g.step_id for g in store.list_gates(status="waiting", release_id=rel.id)] == ["approve"]
    assert store.latest_step_runs(rel.id)["approve"].status == "waiting"
    last = store.list_events(release_id=rel.id)[-2:]
    assert [(e.kind, e.data["before"], e.data["after"]) for e in last] == [
        ("release.waiting", "running", "waiting"),
        ("gate.approval.opened", "running", "waiting"),
    ]

    # the other end: the gate closes with its step running again (its action makes the
    # outcome), or not at all
    signed = step(rel.id, "approve", status="running", summary="gate approved (sam)")
    closed = (events.GateClosed, "engine", "gate approved (sam)", {"status": "approved"})
    with monkeypatch.context() as patched:
        patched.setattr(store, "_put_step_run", refused)
        with pytest.raises(StoreError, match="could not be written"):
            store.close_gate(rel.id, "approve", 1, "approved", event=closed, step=signed)
    assert store.get_gate(rel.id, "approve", 1).status == "waiting"
    assert store.get_release(rel.id).status == "waiting"
    assert store.latest_step_runs(rel.id)["approve"].status == "waiting"

    store.close_gate(rel.id, "approve", 1, "approved", event=closed, step=signed)
    assert store.get_release(rel.id).status == "running"
    assert store.latest_step_runs(rel.id)["approve"].status == "running"
    assert store.latest_step_runs(rel.id)["approve"].summary == "gate approved (sam)"
    # a replayed close writes nothing again: the try, finished since, stays finished
    store.upsert_step_run(step(rel.id, "approve", status="succeeded", summary="signed off"))
    store.close_gate(rel.id, "approve", 1, "approved", event=closed, step=signed)
    assert store.latest_step_runs(rel.id)["approve"].status == "succeeded"


def test_list_and_close_gates(store: Store) -> None:
    one = store.create_release(release(id="rel-1"))
    two = store.create_release(release(id="rel-2"))
    store.open_gate(gate(one.id, "approve", opened_at=T0))
    store.open_gate(gate(one.id, "sign-off", kind="checklist", opened_at=T0 + timedelta(1)))
    store.open_gate(gate(two.id, "approve", opened_at=T0 + timedelta(2)))

    closed = store.close_gate(one.id, "approve", 1, "approved")
    assert closed.status == "approved"
    assert closed.closed_at is not None
    assert store.close_gate(one.id, "approve", 1, "approved") == closed  # a replay

    def keys(gates: list[GateRecord]) -> list[tuple[str, str]]:
        return [(g.release_id, g.step_id) for g in gates]

    assert keys(store.list_gates()) == [
        ("rel-1", "approve"),
        ("rel-1", "sign-off"),
        ("rel-2", "approve"),
    ]
    assert keys(store.list_gates(status="waiting")) == [("rel-1", "sign-off"), ("rel-2", "approve")]
    assert keys(store.list_gates(release_id="rel-2")) == [("rel-2", "approve")]
    assert keys(store.list_gates("approved", "rel-1")) == [("rel-1", "approve")]

    with pytest.raises(InvalidState, match="already approved"):
        store.close_gate(one.id, "approve", 1, "timed_out")
    with pytest.raises(ValueError, match="a gate closes as"):
        store.close_gate(one.id, "sign-off", 1, "waiting")
    with pytest.raises(NotFound):
        store.close_gate(one.id, "nope", 1, "cancelled")


def test_decisions_are_recorded_once_per_person(store: Store) -> None:
    rel = store.create_release(release())
    store.open_gate(gate(rel.id, "approve"))
    store.open_gate(gate(rel.id, "sign-off", kind="checklist"))
    bob = DecisionRecord(
        release_id=rel.id,
        step_id="approve",
        run=1,
        user="bob",
        role="sre",
        decision="approve",
        comment="graphs look fine",
        at=T0,
    )
    assert store.add_decision(bob) == bob
    again = DecisionRecord(
        release_id=rel.id, step_id="approve", run=1, user="bob", decision="reject", at=T0
    )
    assert store.add_decision(again) == bob
    carol = store.add_decision(
        DecisionRecord(
            release_id=rel.id,
            step_id="sign-off",
            run=1,
            user="carol",
            decision="sign_off",
            at=T0 + timedelta(seconds=1),
        )
    )
    assert store.list_decisions(rel.id) == [bob, carol]
    assert store.list_decisions(rel.id, "sign-off") == [carol]
    assert store.list_decisions("rel-other") == []
    with pytest.raises(NotFound):
        store.add_decision(
            DecisionRecord(release_id=rel.id, step_id="nope", run=1, user="x", decision="approve")
        )


# -- audit log ----------------------------------------------------------------------------


def test_append_and_list_events(store: Store) -> None:
    first = store.append_event(None, None, "worker.started", "system", "worker up")
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert first.data == {}
    second = store.append_event(
        "rel-1",
        "deploy",
        "step.succeeded",
        "worker-a",
        "deploy done ✓",
        data={"big": 1e300, "nested": {"b": [1, 2], "a": None}, "text": "déjà"},
    )
    third = store.append_event("rel-2", None, "release.created", "ann", "created")
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert store.list_events() == [first, second, third]
    assert store.list_events(release_id="rel-1") == [second]
    assert store.list_events(after_seq=1) == [second, third]
    assert store.list_events(limit=2) == [first, second]
    assert store.list_events()[1].data["big"] == 1e300
    assert store.verify_events().ok


def test_verify_an_empty_log(store: Store) -> None:
    check = store.verify_events()
    assert (check.ok, check.events_checked, check.broken_seq) == (True, 0, None)


def test_concurrent_appends_form_one_gapless_chain(store_url: str, store: Store) -> None:
    stores = [store] + [open_store(store_url) for _ in range(3)]
    try:

        def append(i: int) -> None:
            for n in range(25):
                stores[i].append_event(f"rel-{i}", None, "test", f"thread-{i}", f"#{n}")

        run_in_threads(4, append)
    finally:
        for other in stores[1:]:
            other.close()
    events = store.list_events()
    assert [e.seq for e in events] == list(range(1, 101))
    assert store.verify_events() == AuditCheck(ok=True, events_checked=100)


APPENDER = """
import sys
from shipcaptain.store import open_store
with open_store(sys.argv[1]) as store:
    for n in range(int(sys.argv[2])):
        store.append_event(None, None, "test", sys.argv[3], f"#{n}")
"""


def test_appends_from_several_processes_form_one_chain(store_url: str, store: Store) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-W", "error", "-c", APPENDER, store_url, "20", f"p{i}"])
        for i in range(3)
    ]
    assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    assert [e.seq for e in store.list_events()] == list(range(1, 61))
    assert store.verify_events().ok


def test_verify_finds_a_changed_message(store: Store, store_url: str) -> None:
    for n in range(5):
        store.append_event("rel-1", None, "test", "ann", f"event {n}")
    tamper_with_events(store_url, "UPDATE sc_events SET message = 'nothing to see' WHERE seq = 3")
    check = store.verify_events()
    assert (check.ok, check.events_checked, check.broken_seq) == (False, 2, 3)
    assert check.reason is not None
    assert "changed" in check.reason


def test_verify_finds_changed_data(store: Store, store_url: str) -> None:
    store.append_event("rel-1", None, "gate.approved", "bob", "approved", data={"by": "bob"})
    tamper_with_events(
        store_url, """UPDATE sc_events SET data = '{"by":"mallory"}' WHERE seq = 1"""
    )
    assert store.verify_events().broken_seq == 1


def test_verify_finds_a_rewritten_event_by_the_next_link(store: Store, store_url: str) -> None:
    for n in range(4):
        store.append_event("rel-1", None, "test", "ann", f"event {n}")
    tamper_with_events(store_url, "UPDATE sc_events SET hash = :h WHERE seq = 2", h="f" * 64)
    check = store.verify_events()
    assert (check.ok, check.broken_seq) == (False, 2)
    # A forger who also recomputes event 2's hash moves the break to event 3.
    forged = replace(store.list_events()[1], message="forged")
    tamper_with_events(
        store_url,
        "UPDATE sc_events SET message = :m, hash = :h WHERE seq = 2",
        m=forged.message,
        h=hash_of(forged),
    )
    check = store.verify_events()
    assert (check.ok, check.broken_seq) == (False, 3)
    assert check.reason is not None
    assert "does not follow" in check.reason


def test_the_audit_log_refuses_update_delete_and_truncate(store: Store, store_url: str) -> None:
    store.append_event("rel-1", None, "test", "ann", "kept")
    statements = ["UPDATE sc_events SET message = 'gone'", "DELETE FROM sc_events"]
    if store.backend == "postgresql":  # SQLite has no TRUNCATE: its DELETE is the above
        statements.append("TRUNCATE sc_events")
    for statement in statements:
        with pytest.raises(Exception, match="append-only"):
            execute(store_url, statement)
    assert [e.message for e in store.list_events()] == ["kept"]


def test_verify_finds_reordered_events(store: Store, store_url: str) -> None:
    for n in range(4):
        store.append_event("rel-1", None, "test", "ann", f"event {n}")
    tamper_with_events(store_url, "UPDATE sc_events SET seq = 100 WHERE seq = 2")
    tamper_with_events(store_url, "UPDATE sc_events SET seq = 2 WHERE seq = 3")
    tamper_with_events(store_url, "UPDATE sc_events SET seq = 3 WHERE seq = 100")
    check = store.verify_events()
    assert (check.ok, check.broken_seq) == (False, 2)


def test_verify_finds_a_deleted_event(store: Store, store_url: str) -> None:
    for n in range(5):
        store.append_event("rel-1", None, "test", "ann", f"event {n}")
    tamper_with_events(store_url, "DELETE FROM sc_events WHERE seq IN (2, 3)")
    check = store.verify_events()
    assert (check.ok, check.broken_seq) == (False, 2)
    assert check.reason == "events 2..3 are missing (the next event is 4)"


# -- workers ------------------------------------------------------------------------------


def test_heartbeats(store: Store) -> None:
    first = store.heartbeat("worker-b", 100, "host-1", "worker")
    assert first.started_at == first.heartbeat_at
    again = store.heartbeat("worker-b", 100, "host-1", "worker")
    assert again.started_at == first.started_at
    assert again.heartbeat_at >= first.heartbeat_at
    restarted = store.heartbeat("worker-b", 200, "host-1", "worker")
    assert restarted.started_at >= again.heartbeat_at
    assert restarted.pid == 200
    web = store.heartbeat("web-a", 300, "host-2", "web")
    assert store.list_workers() == [web, restarted]


def test_a_worker_id_is_claimed_by_one_live_process(store: Store) -> None:
    def never(_: object) -> bool:
        return False

    def always(_: object) -> bool:
        return True

    assert store.claim_worker_id("w1", 100, "host-1", "worker", alive=always) is None
    [mine] = store.list_workers()
    assert (mine.pid, mine.hostname) == (100, "host-1")
    # the same process again (its own claim): fine
    assert store.claim_worker_id("w1", 100, "host-1", "worker", alive=always) is None
    # another process while the holder is alive: refused, nothing written
    holder = store.claim_worker_id("w1", 200, "host-2", "worker", alive=always)
    assert holder is not None
    assert (holder.pid, holder.hostname) == (100, "host-1")
    assert [w.pid for w in store.list_workers()] == [100]
    # once the holder is gone: a restart under the same id
    assert store.claim_worker_id("w1", 200, "host-2", "worker", alive=never) is None
    assert [(w.pid, w.hostname) for w in store.list_workers()] == [(200, "host-2")]


def test_a_step_result_is_recorded_once_per_run(store: Store) -> None:
    rel = store.create_release(release())
    first = {"status": "succeeded", "summary": "exit 0", "outputs": {"sha": "abc"}}
    assert store.record_step_result(rel.id, 1, "build", first) == first
    replay = {"status": "succeeded", "summary": "done in run 1", "outputs": {}}
    assert store.record_step_result(rel.id, 1, "build", replay) == first  # the first wins
    store.record_step_result(rel.id, 1, "test", {"status": "failed", "summary": "exit 1"})
    store.record_step_result(rel.id, 2, "test", {"status": "succeeded", "summary": "exit 0"})
    assert store.step_results(rel.id, 1) == {
        "build": first,
        "test": {"status": "failed", "summary": "exit 1"},
    }
    assert store.step_results(rel.id, 2) == {"test": {"status": "succeeded", "summary": "exit 0"}}
    assert store.step_results(rel.id, 3) == {}
    with pytest.raises(StoreError):
        store.record_step_result("rel-nope", 1, "build", first)


def test_only_one_live_process_takes_over_a_release(store: Store) -> None:
    rel = store.create_release(release(id="rel-1", executor_id="gone"))
    store.update_release(rel.id, status="running")
    gone = store.heartbeat("gone", 4242, "host-a", "engine")
    claims = run_in_threads(4, lambda i: store.claim_takeover(rel.id, gone, f"live-{i}"))
    assert sorted(claims) == [False, False, False, True]
    winner = store.get_release(rel.id).executor_id
    assert winner == f"live-{claims.index(True)}"
    assert store.claim_takeover(rel.id, gone, "late") is False
    assert [r.id for r in store.releases_run_by(str(winner))] == [rel.id]
    # the same process restarted (another incarnation) and died again: a new takeover
    again = store.heartbeat("gone", 4343, "host-a", "engine")
    assert again.started_at != gone.started_at
    assert store.claim_takeover(rel.id, again, "live-9") is True
    store.update_release(rel.id, status="succeeded")
    assert store.releases_run_by("live-9") == []


def test_environment_lock_turns_follow_the_order_releases_were_started(store: Store) -> None:
    def started(n: int) -> datetime:
        return T0 + timedelta(seconds=n)

    for n in (1, 2, 3):
        store.create_release(release(id=f"rel-{n}", created_at=started(n)))
    store.create_release(release(id="rel-s", environment="staging"))
    store.create_release(release(id="rel-api", runbook_name="api"))
    # rel-2 asks first, but rel-1 was started before it and has not finished
    assert store.take_env_lock("valuecanvas", "production", "rel-2", started(2)) == ["rel-1"]
    assert store.take_env_lock("valuecanvas", "production", "rel-1", started(1)) == []
    assert store.take_env_lock("valuecanvas", "production", "rel-3", started(3)) == [
        "rel-1",
        "rel-2",
    ]
    assert store.take_env_lock("valuecanvas", "staging", "rel-s") == []  # another environment
    assert store.take_env_lock("api", "production", "rel-api") == []  # another service
    assert store.take_env_lock("valuecanvas", "production", "rel-1") == []  # asking again

    store.update_release("rel-1", status="succeeded")  # a finished release drops out
    assert store.take_env_lock("valuecanvas", "production", "rel-3") == ["rel-2"]
    assert store.take_env_lock("valuecanvas", "production", "rel-2") == []
    store.update_release("rel-2", status="cancelled")
    assert store.take_env_lock("valuecanvas", "production", "rel-3") == []
    # a resumed run asks now: it queues behind the holder, whatever its creation time
    store.begin_run("rel-1", 2)
    assert store.take_env_lock("valuecanvas", "production", "rel-1", T0 + timedelta(hours=1)) == [
        "rel-3"
    ]
    store.drop_env_lock("valuecanvas", "production", "rel-3")
    store.update_release("rel-3", status="succeeded")
    assert store.take_env_lock("valuecanvas", "production", "rel-1") == []


def test_a_release_s_unmitigated_incidents(store: Store) -> None:
    """What a rollback mitigates: every incident of that release nobody has mitigated,
    not those of other releases, not those already mitigated."""
    store.create_release(release(id="r-inc"))
    store.create_release(release(id="r-other"))
    opened = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    slas = {"P1": Sla(acknowledge=300, mitigate=1800)}

    def incident(incident_id: str, release_id: str, minutes: int) -> None:
        store.open_incident(
            new_incident(
                slas=slas, severity="P1", summary="errors", opened_by="casey",
                opened_at=opened + timedelta(minutes=minutes), release_id=release_id,
                incident_id=incident_id,
            )
        )  # fmt: skip

    incident("inc-a", "r-inc", 0)
    incident("inc-b", "r-inc", 1)
    incident("inc-c", "r-inc", 2)
    incident("inc-x", "r-other", 0)
    store.record_incident_action("inc-b", "mitigate", "casey", mitigation="flag off")
    assert [i.id for i in store.unmitigated_incidents_of("r-inc")] == ["inc-a", "inc-c"]
    assert [i.id for i in store.unmitigated_incidents_of("r-none")] == []
    store.record_incident_action("inc-a", "acknowledge", "sam")
    changes = [
        (e.kind, e.data["incident"], e.data["before"], e.data["after"])
        for e in store.list_events(release_id="r-inc")
        if e.kind.startswith("incident.")
    ]
    assert changes == [
        ("incident.opened", "inc-a", None, "open"),
        ("incident.opened", "inc-b", None, "open"),
        ("incident.opened", "inc-c", None, "open"),
        ("incident.mitigated", "inc-b", "open", "mitigated"),
        ("incident.acknowledged", "inc-a", "open", "acknowledged"),
    ]


def test_a_steps_writes_wait_for_the_disk_except_its_try_start(store: Store) -> None:
    """A write commits once it is on disk (SQLite: ``synchronous = FULL``; with NORMAL a
    power cut loses the last commits: a finished step's result, and the step runs again;
    PostgreSQL: ``synchronous_commit`` on); only a try's start, whose loss is harmless,
    does not wait (NORMAL; ``synchronous_commit`` off). The level is read in each write's
    transaction, as its audit event is appended."""
    from sqlalchemy import event

    from shipcaptain import events

    levels: list[tuple[str, str]] = []
    doing = ""

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO sc_events"):
            if store.backend == "sqlite":
                found = cursor.connection.execute("PRAGMA synchronous").fetchone()[0]
                level = {2: "disk", 1: "no wait"}[found]
            else:
                show = "SELECT current_setting('synchronous_commit')"
                found = cursor.connection.execute(show).fetchone()[0]
                level = {"on": "disk", "off": "no wait"}[found]
            levels.append((doing, level))

    engine = store._engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        rel = store.create_release(release())
        doing = "release"
        queued = (events.ReleaseQueued, "engine", "waiting", {"ahead": []})
        store.update_release(rel.id, reason="waiting", event=queued)
        doing = "try"
        started = (events.StepStarted, "engine", "try 1 started", {"run": 1, "attempt": 1})
        store.begin_try(step(rel.id, "build", status="running"), event=started)
        doing = "result"
        ended = (events.step_ended("succeeded"), "engine", "done", {"run": 1})
        result = {"step_id": "build", "status": "succeeded"}
        end = step(rel.id, "build", status="succeeded")
        store.record_step_result(rel.id, 1, "build", result, step_run=end, event=ended)
        doing = "try of an action that finds its earlier tries"
        store.begin_try(step(rel.id, "dispatch", status="running"), event=started, synced=True)
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
    assert levels == [
        ("release", "disk"),
        ("try", "no wait"),
        ("result", "disk"),
        ("try of an action that finds its earlier tries", "disk"),
    ]
    assert store.verify_events().ok


def test_a_heartbeat_does_not_wait_for_the_disk_and_the_next_synced_write_does(
    store: Store,
) -> None:
    """A heartbeat lost in a power cut went with its process (and with every later write):
    on SQLite it commits without waiting for the disk (NORMAL), and the next write that
    must be durable waits again (FULL), taking the heartbeat with it. PostgreSQL commits a
    heartbeat (one statement) as any other write."""
    from sqlalchemy import event

    levels: list[tuple[str, str]] = []

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith(("INSERT INTO sc_workers", "INSERT INTO sc_releases")):
            if store.backend == "sqlite":
                found = cursor.connection.execute("PRAGMA synchronous").fetchone()[0]
                level = {2: "disk", 1: "no wait"}[found]
            else:
                show = "SELECT current_setting('synchronous_commit')"
                level = {"on": "disk", "off": "no wait"}[
                    cursor.connection.execute(show).fetchone()[0]
                ]
            levels.append((statement.split()[2], level))

    engine = store._engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        beat = store.heartbeat("w1", 4242, "host-a", "worker")
        store.create_release(release())
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
    heartbeat_level = "no wait" if store.backend == "sqlite" else "disk"
    assert levels == [("sc_workers", heartbeat_level), ("sc_releases", "disk")]
    assert (beat.executor_id, beat.pid, beat.hostname) == ("w1", 4242, "host-a")
    assert [w.executor_id for w in store.list_workers()] == ["w1"]


def test_the_engine_writes_a_try_start_durably_for_an_action_that_finds_earlier_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GitHub workflow action looks for the run an earlier try dispatched from that
    try's recorded start: its start must survive a power cut, so the engine asks for a
    synced write; a plain command's start is not synced (its loss is harmless)."""
    from shipcaptain.actions.registry import registry
    from shipcaptain.engine import steps

    assert registry.get("github_workflow").finds_earlier_tries
    assert not registry.get("shell").finds_earlier_tries
    asked: list[tuple[str, bool]] = []

    class Stop(Exception):
        pass

    class Store:
        def begin_try(self, step: Any, *, event: Any, synced: bool = False) -> None:
            asked.append((step.step_id, synced))
            raise Stop

    class Runtime:
        store = Store()

    Runtime.registry = registry  # type: ignore[attr-defined]
    monkeypatch.setattr(steps, "runtime", Runtime)
    for step_id, action in (("dispatch", "github_workflow"), ("build", "shell")):
        with pytest.raises(Stop):
            steps._attempt(
                "rel-1", 1, step_id, action, {}, 1, 60.0, str(tmp_path), {}, {}, started_by="casey"
            )
    assert asked == [("dispatch", True), ("build", False)]


def test_an_event_appended_once_per_key_is_not_appended_again(store: Store) -> None:
    """A durable step's note that runs again after a crash before its checkpoint (the same
    key: its place in its workflow) is not shown twice; another key is a note of its own."""
    rel = store.create_release(release())
    args = (rel.id, "analysis", "step.progress", "engine", "measurement 2/6")
    assert store.append_event_once(*args, once="rel/analysis#7")
    assert not store.append_event_once(*args, once="rel/analysis#7")
    assert store.append_event_once(*args, once="rel/analysis#8")
    notes = [e for e in store.list_events(release_id=rel.id) if e.kind == "step.progress"]
    assert [(e.message, e.data["once"]) for e in notes] == [
        ("measurement 2/6", "rel/analysis#7"),
        ("measurement 2/6", "rel/analysis#8"),
    ]
    assert store.verify_events().ok


def test_a_rows_names_are_the_columns_the_driver_describes(store: Store) -> None:
    """The store names a row's values by its result's column names, read from psycopg's
    result alone (its ``description`` built a typed column object for each, at every
    look): the same names, in the same order, as the description gives, for a row of the
    widest table and for a query with aliases."""
    from shipcaptain.store.driver import column_names
    from shipcaptain.store.pooled import PooledStore

    assert isinstance(store, PooledStore)
    rel = store.create_release(release())
    with store._transaction("reading") as conn:
        for query, params in (
            ("SELECT * FROM sc_releases WHERE id = :id", {"id": rel.id}),
            ("SELECT 1 AS one, 'two' AS \"Two words\", NULL AS empty", {}),
        ):
            sql = text(query).compile(dialect=conn.dialect)
            cursor = conn.connection.cursor()
            args = tuple(params[n] for n in sql.positiontup) if sql.positional else params
            cursor.execute(sql.string, args)
            described = [column[0] for column in cursor.description]
            assert column_names(cursor) == described
            assert len(described) >= 3
            cursor.close()
    assert store.get_release(rel.id).id == rel.id


def test_reads_at_one_moment_see_one_snapshot(store: Store, store_url: str) -> None:
    """A view made of several reads (the release, then its steps' tries) sees one moment:
    a step that finishes and its release with it, committed between the two reads, is seen
    whole or not at all (on PostgreSQL each read saw its own snapshot: a running release
    whose steps had all finished)."""
    rel = store.create_release(release(), outline=None)
    store.update_release(rel.id, status="running")
    store.begin_try(step(rel.id, "build", status="running"))
    other = open_store(store_url)  # the engine, finishing the step and the release

    def finish() -> None:
        other.upsert_step_run(step(rel.id, "build", status="succeeded"))
        other.update_release(rel.id, status="succeeded")

    def view() -> tuple[str, dict[str, str]]:
        status = store.get_release(rel.id).status
        finish()  # committed between the view's two reads
        tries = {k: v.status for k, v in store.latest_step_runs(rel.id).items()}
        return status, tries

    try:
        assert store.at_one_moment(view) == ("running", {"build": "running"})
        # and the next view sees the change, whole
        assert store.at_one_moment(
            lambda: (
                store.get_release(rel.id).status,
                {k: v.status for k, v in store.latest_step_runs(rel.id).items()},
            )
        ) == ("succeeded", {"build": "succeeded"})
    finally:
        other.close()
