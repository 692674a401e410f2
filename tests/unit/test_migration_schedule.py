"""Which phase each pending migration runs in, and why (no database: ``plan`` with a given
history)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers.migrations import write_migrations
from shipcaptain.cli.main import cli
from shipcaptain.errors import UsageError
from shipcaptain.migrations.discovery import discover
from shipcaptain.migrations.history import Applied
from shipcaptain.migrations.migrator import plan

BOARDS = "CREATE TABLE boards (id bigint PRIMARY KEY, title text, legacy text);\n"
DROP_LEGACY = "ALTER TABLE boards DROP COLUMN legacy;\n"
BOARDS_INDEX = "CREATE INDEX CONCURRENTLY boards_title ON boards (title);\n"
LABELS = "CREATE TABLE labels (id bigint PRIMARY KEY, name text);\n"


def applied(*versions: str) -> dict[str, Applied]:
    return {v: Applied(v, None, None) for v in versions}


def test_nothing_applied_means_everything_in_version_order(tmp_path: Path) -> None:
    root = write_migrations(
        tmp_path, {"1_boards.sql": BOARDS, "2_drop.sql": DROP_LEGACY, "3_idx.sql": BOARDS_INDEX}
    )
    got = plan(root, {})
    assert got.fresh
    assert [p.file.version for p in got.to_run("expand")] == ["1", "2", "3"]
    assert got.waiting("expand") == []
    assert all(p.reason.startswith("nothing is applied yet") for p in got.pending)


def test_a_later_expand_that_depends_on_a_waiting_contract_waits_too(tmp_path: Path) -> None:
    root = write_migrations(
        tmp_path,
        {
            "1_boards.sql": BOARDS,
            "2_drop.sql": DROP_LEGACY,
            "3_idx.sql": BOARDS_INDEX,
            "4_labels.sql": LABELS,
        },
    )
    got = plan(root, applied("1"))
    rows = {p.file.version: (p.runs_in, p.reason) for p in got.pending}
    assert rows == {
        "2": ("contract", "contract: line 1: drops column boards.legacy"),
        "3": (
            "contract",
            "waits for 2_drop (earlier, waiting for the contract phase): both touch boards",
        ),
        "4": (
            "expand",
            "expand, and independent of 2_drop, 3_idx (waiting): it mentions none of the "
            "objects they change",
        ),
    }
    assert [p.file.version for p in got.to_run("expand")] == ["4"]
    assert [p.file.version for p in got.to_run("contract")] == ["2", "3", "4"]


@pytest.mark.parametrize(
    ("waiting", "later", "why"),
    [
        # a function body mentions the table: it is not independent
        (
            DROP_LEGACY,
            "CREATE FUNCTION n() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM boards $$;",
            "both touch boards",
        ),
        # a contract statement changes whatever it names (a revoke: the table)
        (
            "REVOKE SELECT ON boards FROM anon;",
            "CREATE VIEW board_titles AS SELECT title FROM boards;",
            "both touch boards",
        ),
        # an extension brings objects no statement names
        (
            'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\nALTER TABLE boards DROP COLUMN legacy;',
            "CREATE TABLE cards (id uuid DEFAULT uuid_generate_v4());",
            "creates an extension or schema",
        ),
        # dynamic SQL: its objects are unknown
        (
            "DO $$ BEGIN EXECUTE 'DROP TABLE ' || 'boards'; END $$;",
            LABELS,
            "runs dynamic SQL, so independence cannot be proved",
        ),
    ],
)
def test_independence_must_be_proved(tmp_path: Path, waiting: str, later: str, why: str) -> None:
    root = write_migrations(
        tmp_path, {"1_boards.sql": BOARDS, "2_w.sql": waiting, "3_later.sql": later}
    )
    got = plan(root, applied("1"))
    later_plan = got.pending[-1]
    assert later_plan.runs_in == "contract"
    assert why in later_plan.reason


def test_supabase_layout_skips_seed_and_odd_names_with_a_warning(tmp_path: Path) -> None:
    supa = tmp_path / "supabase"
    write_migrations(tmp_path, {"20240101000000_boards.sql": BOARDS, "TEMPLATE_migration.sql": "x"})
    (supa / "seed.sql").write_text("INSERT INTO boards VALUES (1);")
    (supa / "config.toml").write_text("")
    (supa / "migrations" / "README.md").write_text("notes")
    for root in (tmp_path, supa, supa / "migrations"):
        found = discover(root)
        assert [f.version for f in found.files] == ["20240101000000"]
    assert discover(tmp_path).warnings == [
        "skipped README.md: not a migration (.sql) file",
        "skipped TEMPLATE_migration.sql: file name must be <version>_<name>.sql (version: "
        "digits), as the Supabase CLI's",
    ]
    result = CliRunner().invoke(cli, ["migrations", "plan", str(supa), "--no-squawk"])
    assert result.exit_code == 0, result.output
    assert "warning: skipped TEMPLATE_migration.sql" in result.stderr
    assert "20240101000000_boards: expand, runs in: expand phase" in result.stdout


def test_seed_sql_beside_migrations_is_named_as_seed_data(tmp_path: Path) -> None:
    (tmp_path / "1_boards.sql").write_text(BOARDS)
    (tmp_path / "seed.sql").write_text("select 1;")
    assert discover(tmp_path).skipped == [
        ("seed.sql", "seed data, not a migration (`supabase db reset` loads it)")
    ]


@pytest.mark.parametrize("layout", ["empty", "missing", "only-odd-names"])
def test_an_empty_or_wrong_directory_is_an_error(tmp_path: Path, layout: str) -> None:
    target = tmp_path / "migrations"
    if layout != "missing":
        target.mkdir()
    if layout == "only-odd-names":
        (target / "schema.sql").write_text(BOARDS)
    with pytest.raises(UsageError, match=r"no (migrations here|such migrations directory)"):
        discover(target)
    result = CliRunner().invoke(cli, ["migrations", "plan", str(target), "--json"])
    assert result.exit_code == 2, result.output
    assert str(target) in result.output


def test_duplicate_versions_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "1_a.sql").write_text(BOARDS)
    (tmp_path / "1-b.sql").write_text(LABELS)
    with pytest.raises(UsageError, match="version 1 is also used by"):
        discover(tmp_path)


def test_plan_json_lists_what_apply_will_do(tmp_path: Path) -> None:
    root = write_migrations(tmp_path, {"1_boards.sql": BOARDS, "2_drop.sql": DROP_LEGACY})
    result = CliRunner().invoke(cli, ["migrations", "plan", str(root), "--json", "--no-squawk"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["fresh"] is True
    assert doc["expand"] == ["1", "2"]
    assert doc["contract"] == []
    assert doc["migrations"][1]["contract_because"] == [
        {"line": 1, "kind": "AlterTableStmt", "reason": "drops column boards.legacy"}
    ]
