"""The read path of the commands that only read: a state database read with the driver alone
(SQLite: the standard library's ``sqlite3``, ``SQLiteReader``; PostgreSQL: psycopg,
``PostgresReader``) answers every read exactly as the store on SQLAlchemy does, never
writes, and is taken only for a database whose schema is current."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers.databases import temporary_database
from shipcaptain import identity
from shipcaptain.audit.keys import audit_key_of
from shipcaptain.client import Client
from shipcaptain.errors import NotFound, StoreError
from shipcaptain.incidents import new_incident
from shipcaptain.records import Person, ReleaseFilter, RunbookRule
from shipcaptain.runbook.model import Sla
from shipcaptain.settings import Settings
from shipcaptain.store import (
    DecisionRecord,
    GateRecord,
    ReleaseRecord,
    StepRunRecord,
    Store,
    open_store,
)
from shipcaptain.store.postgres_read import PostgresReader, pyformat
from shipcaptain.store.reader import open_reader
from shipcaptain.store.sqlite_read import SQLiteReader

T0 = datetime(2026, 11, 27, 2, 0, 0, 123456, tzinfo=UTC)


def fill(store: Store) -> dict[str, str]:
    """A state database with some of everything the read commands show; ids by name."""
    store.put_team(
        [
            Person(name="casey", admin=True, roles={"*": ("*",)}),
            Person(name="bob", roles={"production": ("sre",)}, surfaces=("api",)),
        ],
        actor="test",
        message="the team",
        data={},
        permissions={"*": {"*": ["*"]}},
        environments={"production": {"protected": False}},
    )
    secret, token = identity.create_token(store, "casey", expires_in=None, label="read path")
    store.allow_runbook(
        RunbookRule(environment="production", kind="name", value="valuecanvas", note="ok"),
        actor="casey",
        message="casey allowed valuecanvas",
    )
    first = store.create_release(
        ReleaseRecord(
            runbook_name="valuecanvas",
            runbook_digest="sha256:abc",
            runbook_text="name: valuecanvas\n",
            environment="production",
            started_by="casey",
            params={"version": "1.4.2", "canary": 0.1},
        ),
        outline='{"format":1,"steps":[["build","ship","Build","shell",[]]]}',
    )
    second = store.create_release(
        ReleaseRecord(
            runbook_name="billing",
            runbook_digest="sha256:def",
            runbook_text="name: billing\n",
            environment="staging",
            started_by="bob",
            params={},
        )
    )
    store.heartbeat("host-worker", 4242, "host", "worker")
    store.update_release(first.id, status="running", started_at=T0, executor_id="host-worker")
    store.update_release(second.id, status="succeeded", started_at=T0, ended_at=T0)
    store.upsert_step_run(
        StepRunRecord(
            release_id=first.id,
            step_id="build",
            run=1,
            attempt=1,
            status="succeeded",
            started_at=T0,
            ended_at=T0 + timedelta(seconds=3),
            outputs={"image": "registry/app:1.4.2"},
        )
    )
    store.upsert_step_run(
        StepRunRecord(release_id=first.id, step_id="approve", run=1, attempt=1, status="waiting")
    )
    store.open_gate(
        GateRecord(
            release_id=first.id,
            step_id="approve",
            run=1,
            kind="approval",
            prompt="Ship it?",
            evidence={"parts": []},
        )
    )
    store.add_decision(
        DecisionRecord(
            release_id=first.id, step_id="approve", run=1, user="bob", role="sre",
            decision="approve", comment="graphs look fine", at=T0,
        )
    )  # fmt: skip
    incident = store.open_incident(
        new_incident(
            slas={"P1": Sla(acknowledge=300, mitigate=1800)}, severity="P1", summary="errors",
            opened_by="casey", opened_at=T0, release_id=first.id,
        )
    )  # fmt: skip
    store.record_notification(
        release_id=first.id, incident_id=None, kind="start", channel="slack",
        text="starting", status="sent", attempts=1, error=None,
    )  # fmt: skip
    return {
        "first": first.id,
        "second": second.id,
        "incident": incident.id,
        "token": token.id,
        "secret_hash": identity.hash_token(secret),
    }


def reads(store: Store, ids: dict[str, str]) -> dict[str, Any]:
    """Every read the read-only commands make (and more), by name."""
    first = ids["first"]
    return {
        "get_release": store.get_release(first),
        "release_outline": store.release_outline(first),
        "no_release_outline": store.release_outline(ids["second"]),
        "list_releases": store.list_releases(),
        "list_releases_of": store.list_releases(
            ReleaseFilter(status="running", environment="production")
        ),
        "live_releases": store.live_releases(),
        "active_releases": store.active_releases(),
        "latest_step_runs": store.latest_step_runs(first),
        "list_step_runs": store.list_step_runs(first),
        "step_results": store.step_results(first, 1),
        "list_gates": store.list_gates(release_id=first),
        "get_gate": store.get_gate(first, "approve"),
        "list_decisions": store.list_decisions(first),
        "list_events": store.list_events(release_id=first),
        "all_events": store.list_events(),
        "last_event": store.last_event(),
        "list_notifications": store.list_notifications(first),
        "list_incidents": store.list_incidents(),
        "get_incident": store.get_incident(ids["incident"]),
        "list_workers": store.list_workers(),
        "releases_run_by": store.releases_run_by("host-worker"),
        "awaiting_pickup": store.awaiting_pickup(first),
        "list_people": store.list_people(),
        "get_person": store.get_person("bob"),
        "team_permissions": store.team_permissions(),
        "team_environments": store.team_environments(),
        "list_runbook_rules": store.list_runbook_rules(),
        "read_team": store.read_team(),
        "find_token": store.find_token(ids["secret_hash"]),
        "list_tokens": store.list_tokens(),
        "schema_version": store.schema_version(),
        "verify_events": store.verify_events(),
    }


READERS = {"sqlite": SQLiteReader, "postgresql": PostgresReader}


def filled_at(url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    key = audit_key_of(tmp_path / "audit-key.pem")
    with open_store(url) as store:
        store.use_audit_key(key)
        store.migrate()
        ids = fill(store)
    return url, ids


@pytest.fixture
def filled(database_url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A filled state database on either backend."""
    return filled_at(database_url, tmp_path)


@pytest.fixture
def filled_sqlite(tmp_path: Path) -> tuple[str, dict[str, str]]:
    return filled_at(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)


@pytest.fixture
def filled_postgres(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    with temporary_database("postgresql", tmp_path) as url:
        yield filled_at(url, tmp_path)


def test_the_reader_answers_every_read_as_the_store_on_sqlalchemy(
    filled: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, ids = filled
    key = audit_key_of(tmp_path / "audit-key.pem")
    with open_store(url) as store:
        store.use_audit_key(key)
        expected = reads(store, ids)
    reader = open_reader(url)
    assert isinstance(reader, READERS[reader.backend])
    assert reader.backend == ("sqlite" if url.startswith("sqlite") else "postgresql")
    with reader:
        reader.use_audit_key(key)
        found = reads(reader, ids)
    assert found == expected
    assert expected["verify_events"].ok
    assert len(expected["all_events"]) >= 5  # there was something to compare
    assert expected["list_decisions"][0].comment == "graphs look fine"


def test_the_reader_never_writes(filled_sqlite: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, ids = filled_sqlite
    path = tmp_path / "state.db"
    with open_store(url) as store:
        status = store.get_release(ids["first"]).status
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    reader = open_reader(url)
    assert reader is not None
    with reader:
        assert reader.get_release(ids["first"]).status == status
        with pytest.raises(StoreError, match="opened for reading only"):
            reader.update_release(ids["first"], status="failed")
        with pytest.raises(NotFound):
            reader.get_release("rel-none")
        # a write the driver itself refuses (query_only, mode=ro) is a StoreError too
        stray = reader._transaction("testing a stray write")
        with pytest.raises(StoreError, match=r"readonly|read-only"), stray as conn:
            conn.execute("DELETE FROM sc_releases")
        assert reader.migrate() == []
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    with open_store(url) as store:
        assert store.get_release(ids["first"]).status == status


def test_the_postgres_reader_never_writes(filled_postgres: tuple[str, dict[str, str]]) -> None:
    """Refused by the reader, and by the server for a stray write (a read-only session)."""
    url, ids = filled_postgres
    with open_store(url) as store:
        before = store.list_releases()
    reader = open_reader(url)
    assert isinstance(reader, PostgresReader)
    with reader:
        with pytest.raises(StoreError, match="opened for reading only"):
            reader.update_release(ids["first"], status="failed")
        with pytest.raises(NotFound):
            reader.get_release("rel-none")
        stray = reader._transaction("testing a stray write")
        with pytest.raises(StoreError, match="read-only transaction"), stray as conn:
            conn.execute("DELETE FROM sc_releases")
        assert reader.migrate() == []
    with open_store(url) as store:
        assert store.list_releases() == before


def test_the_postgres_reader_reads_again_on_a_new_connection_when_its_own_is_dropped(
    filled_postgres: tuple[str, dict[str, str]],
) -> None:
    """A connection the server dropped (a restart, a failover, an idle timeout) is made
    again and the read runs again, as the store on SQLAlchemy does."""
    import psycopg

    url, ids = filled_postgres
    reader = open_reader(url)
    assert isinstance(reader, PostgresReader)
    with reader:
        first = reader.get_release(ids["first"])
        assert reader._conn is not None
        dropped = reader._conn.info.backend_pid
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (dropped,))
        assert reader.get_release(ids["first"]) == first
        assert reader._conn is not None
        assert reader._conn.info.backend_pid != dropped


def test_every_postgres_query_is_written_as_sqlalchemy_compiles_it() -> None:
    """The reader's ``%(name)s`` text of each named query is SQLAlchemy's for psycopg."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect(paramstyle="pyformat")
    queries = PostgresReader.named_queries()
    assert len(queries) > 50
    for name, sql in queries.items():
        assert pyformat(sql) == text(sql).compile(dialect=dialect).string, name
    tricky = "SELECT CAST(:a AS BIGINT), x::text, '50%' AS p, :b_2, '\\:c' FROM t WHERE y = :a"
    assert pyformat(tricky) == text(tricky).compile(dialect=dialect).string


def refused_as_when_migrating(url: str) -> None:
    """A database of a newer shipcaptain: the reader refuses it with migrating's error."""
    with open_store(url) as store, pytest.raises(StoreError) as migrating:
        store.migrate()
    with pytest.raises(StoreError) as reading:
        open_reader(url)
    assert str(reading.value) == str(migrating.value)
    assert "newer than this shipcaptain knows" in str(reading.value)


def test_the_postgres_reader_is_taken_only_for_a_current_schema(
    filled_postgres: tuple[str, dict[str, str]],
) -> None:
    url, _ = filled_postgres
    import psycopg

    from shipcaptain.store.urls import plain_postgres_url

    conninfo = plain_postgres_url(url)
    assert conninfo is not None
    assert plain_postgres_url(url.replace("postgresql://", "postgresql+psycopg://")) == conninfo
    assert plain_postgres_url("postgresql://u:p%40ss@h/db") is None  # escapes: the ordinary way
    assert open_reader("postgresql://postgres@127.0.0.1:1/none") is None  # cannot be reached
    with psycopg.connect(conninfo, autocommit=True) as conn:  # a migration it lacks
        newest = conn.execute(
            "SELECT version, name, applied_at FROM sc_schema_version ORDER BY version DESC"
        ).fetchone()
        assert newest is not None
        conn.execute("DELETE FROM sc_schema_version WHERE version = %s", (newest[0],))
        assert open_reader(url) is None  # the ordinary way (which migrates) is taken
        conn.execute("INSERT INTO sc_schema_version VALUES (%s, %s, %s)", newest)
        reader = open_reader(url)
        assert isinstance(reader, PostgresReader)
        reader.close()
        conn.execute(
            "INSERT INTO sc_schema_version (version, name, applied_at) "
            "VALUES (9999, 'future', now())"
        )
    refused_as_when_migrating(url)


def test_the_reader_is_taken_only_for_a_current_schema(
    filled_sqlite: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, _ = filled_sqlite
    path = tmp_path / "state.db"
    assert open_reader(f"sqlite:///{tmp_path / 'none.db'}") is None
    assert not (tmp_path / "none.db").exists()  # the ordinary way creates it, not this one
    assert open_reader(f"sqlite:///{path}?timeout=5") is None  # options: the ordinary way

    with sqlite3.connect(path) as conn:  # a migration the database lacks
        newest = conn.execute(
            "SELECT version, name, applied_at FROM sc_schema_version ORDER BY version DESC"
        ).fetchone()
        conn.execute("DELETE FROM sc_schema_version WHERE version = ?", (newest[0],))
    conn.close()
    assert open_reader(url) is None  # the ordinary way (which migrates) is taken
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO sc_schema_version VALUES (?, ?, ?)", newest)
    conn.close()
    reader = open_reader(url)
    assert isinstance(reader, SQLiteReader)
    reader.close()

    with sqlite3.connect(path) as conn:  # a database of a newer shipcaptain
        conn.execute(
            "INSERT INTO sc_schema_version (version, name, applied_at) VALUES (9999, 'future', "
            "'2027-01-01T00:00:00.000000Z')"
        )
    conn.close()
    refused_as_when_migrating(url)


def test_a_read_only_client_imports_no_sqlalchemy(
    filled: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, ids = filled
    probe = textwrap.dedent(
        """
        import sys
        from shipcaptain.client import Client
        from shipcaptain.settings_env import read_settings
        settings = read_settings(database_url=sys.argv[1], data_dir=sys.argv[2])
        client = Client(settings, read_only=True)
        print(type(client.store).__name__, [r.id for r in client.list_releases()])
        print("sqlalchemy" in sys.modules, "pydantic_settings" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, url, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    first, imported = done.stdout.splitlines()
    kind, listed = first.split(" ", 1)
    assert kind == READERS["sqlite" if url.startswith("sqlite") else "postgresql"].__name__
    assert ids["first"] in listed
    assert ids["second"] in listed
    assert imported == "False False"


def test_a_read_only_client_on_either_database_reads_what_the_store_holds(
    store_url: str, tmp_path: Path
) -> None:
    """Both backends, each read by its reader; the same answers."""
    settings = Settings(database_url=store_url, data_dir=tmp_path / "data")
    with Client(settings) as writer:
        ids = fill(writer.store)
        expected = writer.list_releases()
    with Client(settings, read_only=True) as client:
        assert client.list_releases() == expected
        assert client.store.get_release(ids["first"]).executor_id == "host-worker"
        backend = type(client.store).__name__
    assert backend == ("SQLiteReader" if store_url.startswith("sqlite") else "PostgresReader")


def test_the_reader_reads_at_one_moment(filled: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    """A read command's view (``release show``, ``release status``) through the reader sees
    one moment too: a change committed between its reads is seen whole or not at all."""
    url, ids = filled
    first = ids["first"]
    reader = open_reader(url)
    assert reader is not None
    with reader, open_store(url) as writer:
        writer.use_audit_key(audit_key_of(tmp_path / "audit-key.pem"))
        before = writer.get_release(first).status
        after = "failed" if before != "failed" else "succeeded"

        def view() -> tuple[str, str]:
            status = reader.get_release(first).status
            writer.update_release(first, status=after)  # committed between the two reads
            return status, reader.get_release(first).status

        assert reader.at_one_moment(view) == (before, before)
        assert reader.get_release(first).status == after  # the next read sees it
