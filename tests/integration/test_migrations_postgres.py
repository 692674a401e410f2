"""migrate and verify_schema on a real PostgreSQL primary with a streaming replica."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from helpers.pg_cluster import Cluster, available, primary_with_replica
from helpers.team import EVERYONE, make_team, people, token_env
from shipcaptain.actions.base import Outcome, StepContext
from shipcaptain.actions.migrate import (
    MigrateAction,
    MigrateParams,
    VerifySchemaAction,
    VerifySchemaParams,
)
from shipcaptain.cli.main import cli
from shipcaptain.errors import ActionError
from shipcaptain.store import open_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason="needs PostgreSQL server programs"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with primary_with_replica() as c:
        yield c


@pytest.fixture
def db_url(cluster: Cluster) -> Iterator[str]:
    name = "m_" + uuid.uuid4().hex[:10]
    with psycopg.connect(cluster.primary_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield cluster.primary_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(cluster.primary_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def write(folder: Path, files: dict[str, str]) -> Path:
    mig = folder / "supabase" / "migrations"
    mig.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (mig / name).write_text(sql)
    return folder


def ctx(tmp_path: Path, messages: list[str] | None = None) -> StepContext:
    sink = messages if messages is not None else []
    return StepContext(
        release_id="r1",
        step_id="migrate",
        attempt=1,
        timeout=60,
        workdir=tmp_path,
        progress=sink.append,
    )


def migrate(tmp_path: Path, url: str, phase: str, **kw: object) -> Outcome:
    params = MigrateParams.model_validate(
        {"directory": str(tmp_path), "database_url": url, "phase": phase, **kw}
    )
    return MigrateAction().run(params, ctx(tmp_path))


def history(url: str) -> list[tuple[str, str, list[str], str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT version, name, statements, checksum "
            "FROM supabase_migrations.schema_migrations ORDER BY version::bigint"
        ).fetchall()


EXPAND = "CREATE TABLE boards (id bigint PRIMARY KEY, title varchar(80), legacy text);\n"
CONTRACT = "ALTER TABLE boards DROP COLUMN legacy;\n"


def test_expand_then_contract_records_history_and_verifies(tmp_path: Path, db_url: str) -> None:
    write(tmp_path, {"20240102_drop_legacy.sql": CONTRACT, "20240101_boards.sql": EXPAND})
    verify = VerifySchemaParams(directory=str(tmp_path), database_url=db_url)
    first = migrate(tmp_path, db_url, "expand")
    assert first.ok, first.summary
    assert first.outputs["applied"] == ["20240101"]
    assert first.outputs["deferred"] == ["20240102"]
    assert not VerifySchemaAction().run(verify, ctx(tmp_path)).ok
    second = migrate(tmp_path, db_url, "contract")
    assert second.outputs["applied"] == ["20240102"]
    rows = history(db_url)
    assert [(r[0], r[1]) for r in rows] == [("20240101", "boards"), ("20240102", "drop_legacy")]
    assert rows[1][2] == ["ALTER TABLE boards DROP COLUMN legacy"]
    assert len(rows[0][3]) == 64
    ok = VerifySchemaAction().run(verify, ctx(tmp_path))
    assert ok.ok
    assert ok.outputs["version"] == "20240102"
    again = migrate(tmp_path, db_url, "contract")
    assert again.ok
    assert again.outputs["applied"] == []


def test_failing_migration_rolls_back_and_names_statement(tmp_path: Path, db_url: str) -> None:
    write(
        tmp_path,
        {
            "1_boards.sql": EXPAND,
            "2_bad.sql": "CREATE TABLE notes (id int);\nINSERT INTO missing_table VALUES (1);\n",
        },
    )
    out = migrate(tmp_path, db_url, "expand")
    assert not out.ok
    assert not out.retryable
    assert "2_bad.sql" in out.summary
    assert "missing_table" in out.summary
    assert "statement: INSERT INTO missing_table VALUES (1)" in out.detail
    assert [r[0] for r in history(db_url)] == ["1"]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('notes')").fetchone() == (None,)


def test_checksum_drift_refuses(tmp_path: Path, db_url: str) -> None:
    write(tmp_path, {"1_boards.sql": EXPAND})
    assert migrate(tmp_path, db_url, "expand").ok
    write(tmp_path, {"1_boards.sql": EXPAND + "-- edited\n", "2_more.sql": "CREATE TABLE x();"})
    out = migrate(tmp_path, db_url, "expand")
    assert not out.ok
    assert "checksum drift" in out.summary
    assert "1_boards.sql" in out.summary
    assert [r[0] for r in history(db_url)] == ["1"]


def test_dry_run_changes_nothing(tmp_path: Path, db_url: str) -> None:
    write(tmp_path, {"1_boards.sql": EXPAND})
    out = migrate(tmp_path, db_url, "expand", dry_run=True)
    assert out.ok
    assert out.summary.startswith("would apply 1")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('boards')").fetchone() == (None,)
        assert conn.execute(
            "SELECT to_regclass('supabase_migrations.schema_migrations')"
        ).fetchone() == (None,)


def test_concurrent_index_runs_outside_a_transaction(tmp_path: Path, db_url: str) -> None:
    write(
        tmp_path,
        {
            "1_boards.sql": EXPAND,
            "2_idx.sql": "CREATE INDEX CONCURRENTLY boards_title ON boards (title);",
        },
    )
    out = migrate(tmp_path, db_url, "expand")
    assert out.ok
    assert out.outputs["outside_transaction"] == ["2"]
    assert "outside a transaction: 2" in out.summary


def test_two_concurrent_migrators_apply_each_version_once(tmp_path: Path, db_url: str) -> None:
    # a SELECT is an unknown statement, so this migration runs in the contract phase
    write(tmp_path, {"1_slow.sql": "SELECT pg_sleep(1);\nCREATE TABLE slow (id int);\n"})
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(migrate(tmp_path, db_url, "contract")))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(o.ok for o in outcomes)
    assert len(outcomes) == 2
    assert sorted(len(o.outputs["applied"]) for o in outcomes) == [0, 1]
    assert [r[0] for r in history(db_url)] == ["1"]


def test_paused_replica_blocks_contract_until_resumed(
    tmp_path: Path, db_url: str, cluster: Cluster
) -> None:
    write(tmp_path, {"1_boards.sql": EXPAND, "2_drop.sql": CONTRACT})
    assert migrate(tmp_path, db_url, "expand").ok
    with psycopg.connect(cluster.replica_url, autocommit=True) as rep:
        rep.execute("SELECT pg_wal_replay_pause()")
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("CREATE TABLE traffic AS SELECT generate_series(1, 1000) AS n")
            messages: list[str] = []
            outcomes: list[Outcome] = []
            params = {
                "replicas": {"replica-1": cluster.replica_url},
                "max_lag_bytes": 0,
                "replica_wait": 60,
            }
            worker = threading.Thread(
                target=lambda: outcomes.append(
                    MigrateAction().run(
                        MigrateParams.model_validate(
                            {
                                "directory": str(tmp_path),
                                "database_url": db_url,
                                "phase": "contract",
                                **params,
                            }
                        ),
                        ctx(tmp_path, messages),
                    )
                )
            )
            worker.start()
            # the action says it waits for the paused replica (bounded: it waits up to 60 s)
            deadline = time.monotonic() + 30
            while not any("WAL replay is paused" in m for m in messages):
                assert time.monotonic() < deadline, messages
                time.sleep(0.1)
            assert outcomes == []
            assert any("replica replica-1 WAL replay is paused" in m for m in messages), messages
            assert [r[0] for r in history(db_url)] == ["1"]
        finally:
            # a failure above must not leave the module's replica paused for the next tests
            rep.execute("SELECT pg_wal_replay_resume()")
        worker.join(30)
    assert len(outcomes) == 1
    assert outcomes[0].ok, outcomes
    assert outcomes[0].outputs["applied"] == ["2"]


def test_contract_blocked_reports_clearly_when_wait_runs_out(
    tmp_path: Path, db_url: str, cluster: Cluster
) -> None:
    write(tmp_path, {"2_drop.sql": CONTRACT})
    with psycopg.connect(cluster.replica_url, autocommit=True) as rep:
        rep.execute("SELECT pg_wal_replay_pause()")
        try:
            out = migrate(
                tmp_path,
                db_url,
                "contract",
                replicas={"replica-1": cluster.replica_url},
                replica_wait=1,
            )
        finally:
            rep.execute("SELECT pg_wal_replay_resume()")
    assert not out.ok
    assert out.summary.startswith("contract phase blocked: replica replica-1 WAL replay is paused")


def test_cli_plan_shows_applied_and_pending(tmp_path: Path, db_url: str) -> None:
    write(tmp_path, {"1_boards.sql": EXPAND, "2_drop.sql": CONTRACT})
    assert migrate(tmp_path, db_url, "expand").ok
    result = CliRunner().invoke(
        cli, ["migrations", "plan", str(tmp_path), "--database-url", db_url, "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["migrations"]
    assert [(r["version"], r["runs_in"]) for r in rows] == [
        ("1", "already applied"),
        ("2", "contract phase"),
    ]
    assert any("ban-drop-column" in line for line in rows[1]["squawk"])


def test_urls_come_from_the_environment_when_the_runbook_leaves_them_out(
    tmp_path: Path, db_url: str, cluster: Cluster
) -> None:
    write(tmp_path, {"1_boards.sql": EXPAND, "2_drop.sql": CONTRACT})
    params = MigrateParams.model_validate(
        {"directory": str(tmp_path), "phase": "contract", "replicas": {"r1": "$REPLICA_URL"}}
    )
    environment = {"DATABASE_URL": db_url, "REPLICA_URL": cluster.replica_url}
    done = MigrateAction().run(params, replace(ctx(tmp_path), env=environment))
    assert done.ok, done.summary
    assert done.outputs["applied"] == ["1", "2"]
    verify = VerifySchemaParams(directory=str(tmp_path))
    assert VerifySchemaAction().run(verify, replace(ctx(tmp_path), env=environment)).ok

    no_replica = replace(ctx(tmp_path), env={"DATABASE_URL": db_url})
    with pytest.raises(ActionError, match=r"replica r1: \$REPLICA_URL is not set"):
        MigrateAction().run(params, no_replica)
    unset = VerifySchemaParams(directory=str(tmp_path), database_url_env="SC_TEST_UNSET_URL")
    with pytest.raises(ActionError, match=r"give database_url or set \$SC_TEST_UNSET_URL"):
        VerifySchemaAction().run(unset, ctx(tmp_path))


def test_cli_apply_dry_run_changes_nothing_then_applies(tmp_path: Path, db_url: str) -> None:
    write(tmp_path, {"1_boards.sql": EXPAND, "2_drop.sql": CONTRACT})
    state = f"sqlite:///{tmp_path / 'state.db'}"
    tokens = make_team(state, people(*EVERYONE, roles=["release_captain"]), permissions={})
    env = {"SHIPCAPTAIN_DATABASE_URL": state, **token_env(tokens, "casey")}
    base = ["migrations", "apply", str(tmp_path), "--database-url", db_url, "-e", "staging"]
    dry = CliRunner(env=env).invoke(cli, [*base, "--phase", "expand", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert (
        json.loads(dry.stdout)["summary"]
        == "would apply 1 expand migration(s); deferred to contract: 2"
    )
    with psycopg.connect(db_url) as conn:  # not even the history table was made
        table = conn.execute("SELECT to_regclass('supabase_migrations.schema_migrations')")
        assert table.fetchone() == (None,)
    done = CliRunner(env=env).invoke(cli, [*base, "--phase", "expand"])
    assert done.exit_code == 0, done.output
    assert [r[0] for r in history(db_url)] == ["1"]
    with psycopg.connect(db_url) as conn:
        who = conn.execute(
            "SELECT applied_by FROM supabase_migrations.schema_migrations"
        ).fetchone()
    assert who is not None
    assert who[0].endswith("(shipcaptain migrations apply)")
    bad = CliRunner(env=env).invoke(cli, [*base, "--phase", "contract", "--replica", "no-equals"])
    assert bad.exit_code == 2, bad.output
    assert "--replica 'no-equals': write name=value" in bad.output
    assert [r[0] for r in history(db_url)] == ["1"]
    # who did what, where: in the audit log
    with open_store(state) as store:
        events = [e for e in store.list_events() if e.kind.startswith("migrations.")]
    assert [(e.kind, e.actor, e.data["phase"], e.data["environment"]) for e in events] == [
        ("migrations.dry_run", "casey", "expand", "staging"),
        ("migrations.applied", "casey", "expand", "staging"),
    ]
    assert events[1].data["outputs"]["applied"] == ["1"]
