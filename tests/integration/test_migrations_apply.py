"""Applying migrations on a real PostgreSQL (a throwaway database per test): version order,
files that control their own transaction, statements that run alone and resume, the
Supabase CLI's history table, and what the CLI prints on failure."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from helpers.databases import admin_url, postgres_database
from helpers.migrations import write_migrations
from helpers.team import EVERYONE, make_team, people, token_env
from shipcaptain.actions.base import Outcome, StepContext
from shipcaptain.actions.migrate import MigrateAction, MigrateParams
from shipcaptain.cli.main import cli


@pytest.fixture
def db_url() -> Iterator[str]:
    with postgres_database("sc_mig") as url:
        yield url


def migrate(root: Path, url: str, phase: str) -> Outcome:
    params = MigrateParams.model_validate(
        {"directory": str(root), "database_url": url, "phase": phase}
    )
    ctx = StepContext(
        release_id="r1", step_id="migrate", attempt=1, timeout=60, workdir=root, started_by="fola"
    )
    return MigrateAction().run(params, ctx)


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def history(url: str) -> list[str]:
    rows = query(
        url, "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version::bigint"
    )
    return [str(r[0]) for r in rows]


def table_exists(url: str, name: str) -> bool:
    return query(url, f"SELECT to_regclass('{name}') IS NOT NULL")[0][0] is True


BASELINE = """\
-- a greenfield baseline that also drops an old table: contract by itself
CREATE TABLE boards (id bigint PRIMARY KEY, title text);
DROP TABLE IF EXISTS legacy_boards;
CREATE FUNCTION board_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM boards $$;
"""
CARDS = "CREATE TABLE cards (id bigint PRIMARY KEY, board_id bigint REFERENCES boards (id));\n"


def test_a_fresh_database_applies_everything_in_version_order(tmp_path: Path, db_url: str) -> None:
    write_migrations(tmp_path, {"1_baseline.sql": BASELINE, "2_cards.sql": CARDS})
    out = migrate(tmp_path, db_url, "expand")
    assert out.ok, out.detail
    assert out.outputs["applied"] == ["1", "2"]
    assert out.outputs["deferred"] == []
    assert history(db_url) == ["1", "2"]


def test_tables_without_history_mean_a_database_in_use(tmp_path: Path, db_url: str) -> None:
    """An app's schema made before migrations were tracked: not a first deploy."""
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE TABLE canvases (id bigint, legacy_owner text)")
    write_migrations(
        tmp_path,
        {
            "1_name.sql": "ALTER TABLE canvases ADD COLUMN name text;\n",
            "2_drop.sql": "ALTER TABLE canvases DROP COLUMN legacy_owner;\n",
        },
    )
    out = migrate(tmp_path, db_url, "expand")
    assert (out.outputs["applied"], out.outputs["deferred"]) == (["1"], ["2"])
    shown = CliRunner().invoke(
        cli, ["migrations", "plan", str(tmp_path), "--database-url", db_url, "--json"]
    )
    doc = json.loads(shown.stdout)
    assert doc["fresh"] is False
    assert doc["migrations"][1]["reason"] == (
        "contract: line 1: drops column canvases.legacy_owner"
    )


def test_expand_stops_at_a_contract_and_dependents_wait_as_plan_says(
    tmp_path: Path, db_url: str
) -> None:
    write_migrations(tmp_path, {"1_baseline.sql": BASELINE})
    assert migrate(tmp_path, db_url, "expand").ok
    write_migrations(
        tmp_path,
        {
            "2_rename.sql": "ALTER TABLE boards RENAME COLUMN title TO name;\n",
            "3_cards.sql": CARDS,  # references boards: waits
            "4_labels.sql": "CREATE TABLE labels (id bigint PRIMARY KEY);\n",  # independent
        },
    )
    shown = CliRunner().invoke(
        cli, ["migrations", "plan", str(tmp_path), "--database-url", db_url, "--json"]
    )
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert (doc["fresh"], doc["expand"], doc["contract"]) == (False, ["4"], ["2", "3"])
    reasons = {m["version"]: m["reason"] for m in doc["migrations"]}
    assert reasons["3"] == (
        "waits for 2_rename (earlier, waiting for the contract phase): both touch boards"
    )
    human = CliRunner().invoke(
        cli, ["migrations", "plan", str(tmp_path), "--database-url", db_url, "--no-squawk"]
    )
    assert "3_cards: expand, runs in: contract phase" in human.stdout
    assert "    why: waits for 2_rename" in human.stdout
    expand = migrate(tmp_path, db_url, "expand")
    assert (expand.outputs["applied"], expand.outputs["deferred"]) == (["4"], ["2", "3"])
    contract = migrate(tmp_path, db_url, "contract")
    assert contract.outputs["applied"] == ["2", "3"]
    assert history(db_url) == ["1", "2", "3", "4"]


def test_a_file_with_commit_in_the_middle_is_refused_before_anything_runs(
    tmp_path: Path, db_url: str
) -> None:
    """The failure-after-COMMIT case: run as written, the first part would stay applied
    with no history row and the retry would fail with "already exists"."""
    write_migrations(
        tmp_path,
        {
            "1_labels.sql": (
                "BEGIN;\nCREATE TABLE labels (id bigint PRIMARY KEY);\nCOMMIT;\n\n"
                "INSERT INTO missing_table VALUES (1);\n"
            )
        },
    )
    out = migrate(tmp_path, db_url, "expand")
    assert not out.ok
    assert "1_labels.sql:3: migration refused, nothing applied: COMMIT at line 3" in out.summary
    assert out.outputs["failed"]["code"] == "SC622"
    assert not table_exists(db_url, "labels")
    assert not table_exists(db_url, "supabase_migrations.schema_migrations")


def test_begin_commit_around_the_whole_file_runs_as_one_transaction(
    tmp_path: Path, db_url: str
) -> None:
    body = "CREATE TABLE labels (id bigint PRIMARY KEY);\nINSERT INTO {table} VALUES (1);\n"
    write_migrations(
        tmp_path, {"1_labels.sql": "BEGIN;\n" + body.format(table="missing") + "COMMIT;\n"}
    )
    failed = migrate(tmp_path, db_url, "expand")
    assert not failed.ok
    assert failed.outputs["failed"]["line"] == 3
    assert not table_exists(db_url, "labels")  # rolled back with the failure
    write_migrations(
        tmp_path, {"1_labels.sql": "BEGIN;\n" + body.format(table="labels") + "COMMIT;\n"}
    )
    done = migrate(tmp_path, db_url, "expand")
    assert done.ok, done.detail
    assert query(db_url, "SELECT id FROM labels") == [(1,)]
    assert query(db_url, "SELECT statements FROM supabase_migrations.schema_migrations") == [
        (
            [
                "CREATE TABLE labels (id bigint PRIMARY KEY)",
                "INSERT INTO labels VALUES (1)",
            ],
        )
    ]


def test_concurrently_runs_alone_and_a_retry_resumes_after_it(tmp_path: Path, db_url: str) -> None:
    write_migrations(
        tmp_path,
        {
            "1_labels.sql": (
                "CREATE TABLE labels (id bigint PRIMARY KEY, name text);\n"
                "CREATE INDEX CONCURRENTLY labels_name ON labels (name);\n"
                "INSERT INTO colours VALUES (1);\n"
            )
        },
    )
    first = migrate(tmp_path, db_url, "expand")
    assert not first.ok
    assert "1 stopped part way: a retry resumes after its last finished part" in first.detail
    assert first.outputs["outside_transaction"] == ["1"]
    assert table_exists(db_url, "labels_name")
    assert query(
        db_url, "SELECT statements_done FROM supabase_migrations.shipcaptain_progress"
    ) == [(2,)]
    assert history(db_url) == []
    with psycopg.connect(db_url) as conn:  # the operator fixes what the file needed
        conn.execute("CREATE TABLE colours (id int)")
    retry = migrate(tmp_path, db_url, "expand")
    assert retry.ok, retry.detail  # no "relation labels already exists"
    assert history(db_url) == ["1"]
    assert query(db_url, "SELECT count(*) FROM supabase_migrations.shipcaptain_progress") == [(0,)]


def test_an_interrupted_concurrent_index_is_dropped_and_built_again(
    tmp_path: Path, db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE tags (name text)")
        conn.execute("INSERT INTO tags VALUES ('a'), ('a')")
    write_migrations(
        tmp_path, {"1_tags.sql": "CREATE UNIQUE INDEX CONCURRENTLY tags_name ON tags (name);\n"}
    )
    first = migrate(tmp_path, db_url, "expand")
    assert not first.ok
    assert first.outputs["failed"]["detail"] == "Key (name)=(a) is duplicated."
    invalid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'tags_name'::regclass"
    assert query(db_url, invalid) == [(False,)]  # what PostgreSQL leaves behind
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM tags WHERE ctid = (SELECT max(ctid) FROM tags)")
    retry = migrate(tmp_path, db_url, "expand")
    assert retry.ok, retry.detail
    assert query(db_url, invalid) == [(True,)]
    assert history(db_url) == ["1"]


def test_the_supabase_cli_history_table_without_our_columns(tmp_path: Path, db_url: str) -> None:
    """A table the Supabase CLI made and another role owns: its rows count as applied, and
    new rows are written in its own columns only."""
    suffix = secrets.token_hex(4)
    owner, migrator = f"sc_supa_owner_{suffix}", f"sc_migrator_{suffix}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {owner}")
        admin.execute(f"CREATE ROLE {migrator} LOGIN")
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA supabase_migrations AUTHORIZATION {owner}")
            conn.execute(
                "CREATE TABLE supabase_migrations.schema_migrations "
                "(version text NOT NULL PRIMARY KEY, statements text[], name text)"
            )
            conn.execute(f"ALTER TABLE supabase_migrations.schema_migrations OWNER TO {owner}")
            conn.execute(
                "INSERT INTO supabase_migrations.schema_migrations VALUES "
                "('20240101000000', ARRAY['CREATE TABLE boards (id bigint)'], 'boards')"
            )
            conn.execute("CREATE TABLE boards (id bigint)")
            conn.execute(f"ALTER TABLE boards OWNER TO {migrator}")
            conn.execute(f"GRANT USAGE ON SCHEMA supabase_migrations TO {migrator}")
            conn.execute(
                f"GRANT SELECT, INSERT ON supabase_migrations.schema_migrations TO {migrator}"
            )
            conn.execute(f"GRANT CREATE ON SCHEMA public TO {migrator}")
        write_migrations(
            tmp_path,
            {
                "20240101000000_boards.sql": "CREATE TABLE boards (id bigint);\n",
                "20240102000000_cards.sql": "CREATE TABLE cards (id bigint);\n",
            },
        )
        as_migrator = db_url.replace("postgres@", f"{migrator}@", 1)
        out = migrate(tmp_path, as_migrator, "expand")
        assert out.ok, out.detail
        assert out.outputs["applied"] == ["20240102000000"]  # the CLI's row counts as applied
        rows = query(
            db_url,
            "SELECT version, name, statements FROM supabase_migrations.schema_migrations "
            "ORDER BY version",
        )
        assert rows[1] == ("20240102000000", "cards", ["CREATE TABLE cards (id bigint)"])
        columns = query(
            db_url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'schema_migrations' ORDER BY ordinal_position",
        )
        assert [c[0] for c in columns] == ["version", "statements", "name"]
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {owner}, {migrator} CASCADE")
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {migrator}")
            admin.execute(f"DROP ROLE IF EXISTS {owner}")


def test_the_cli_prints_one_json_document_and_postgres_hints(tmp_path: Path, db_url: str) -> None:
    write_migrations(
        tmp_path,
        {
            "1_boards.sql": "CREATE TABLE boards (id bigint PRIMARY KEY, title text);\n",
            "2_titles.sql": (
                "ALTER TABLE boards ADD COLUMN slug text;\n"
                "INSERT INTO boards (id, title)\n  VALUES (1, lower(42));\n"
            ),
        },
    )
    seed = tmp_path / "supabase" / "migrations" / "seed.sql"  # as some projects keep it
    seed.write_text("INSERT INTO boards VALUES (1, 'a');\n")
    state = f"sqlite:///{tmp_path / 'state.db'}"
    tokens = make_team(state, people(*EVERYONE, roles=["release_captain"]), permissions={})
    env = {"SHIPCAPTAIN_DATABASE_URL": state, **token_env(tokens, "casey")}
    base = ["migrations", "apply", str(tmp_path), "--database-url", db_url, "--phase", "expand"]
    as_json = CliRunner(env=env).invoke(cli, [*base, "--json"])
    assert as_json.exit_code == 6, as_json.output
    doc = json.loads(as_json.stdout)  # one document: it would not parse with two
    assert doc["ok"] is False
    assert doc["applied"] == ["1"]
    assert doc["failed"]["version"] == "2"
    assert (doc["failed"]["line"], doc["failed"]["column"]) == (3, 14)
    assert "explicit type casts" in doc["failed"]["hint"]
    assert doc["error"]["code"] == "SC620"
    assert history(db_url) == ["1"]
    human = CliRunner(env=env).invoke(cli, base)
    assert human.exit_code == 6
    err = human.stderr
    assert "error[SC620]: migration 2_titles.sql failed at line 3: function lower(integer)" in err
    assert "  LINE 3: VALUES (1, lower(42))\n" + " " * 21 + "^\n" in err
    assert "  HINT: No function matches the given name and argument types." in err
    assert "  statement (line 2): INSERT INTO boards (id, title)" in err
    assert "applied before the failure: nothing; this migration was rolled back" in err
    assert "warning: skipped seed.sql" in err
    assert query(db_url, "SELECT applied_by FROM supabase_migrations.schema_migrations") == [
        ("casey (shipcaptain migrations apply)",)
    ]


def test_a_failure_names_the_earlier_migrations_still_pending(tmp_path: Path, db_url: str) -> None:
    write_migrations(tmp_path, {"1_baseline.sql": BASELINE})
    assert migrate(tmp_path, db_url, "expand").ok
    write_migrations(
        tmp_path,
        {
            "2_rename.sql": "ALTER TABLE boards RENAME COLUMN title TO name;\n",
            "3_labels.sql": "CREATE TABLE labels (id bigint);\nINSERT INTO colours VALUES (1);\n",
        },
    )
    out = migrate(tmp_path, db_url, "expand")
    assert not out.ok
    assert out.outputs["deferred"] == ["2"]
    assert out.detail.endswith(
        "earlier migrations still pending (waiting for the contract phase): 2"
    )
