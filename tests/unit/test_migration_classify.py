"""Classification cases as data files (pyinfra's habit): ``tests/data/migrations/<case>.sql``
(hand-written idioms) and ``tests/data/migrations/<project>/<file>.sql`` (real migrations of
public projects, sources in each project's SOURCES.md), each with ``<case>.expected.json``:
the verdict, the statements (line and reason) that make it contract, the findings (rule and
line), why the file would be refused, and where squawk disagrees and why. Adding a case is
adding two files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.squawk_compare import ours, squawk
from shipcaptain.errors import UsageError
from shipcaptain.migrations.classify import classify_sql
from shipcaptain.migrations.discovery import discover

DATA = Path(__file__).parent.parent / "data" / "migrations"
CASES = sorted(DATA.glob("*.sql")) + sorted(DATA.glob("*/*.sql"))
REAL = sorted(DATA.glob("*/*.sql"))


def _id(case: Path) -> str:
    return str(case.relative_to(DATA).with_suffix(""))


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_classification_matches_expected(case: Path) -> None:
    expected = json.loads(case.with_suffix(".expected.json").read_text())
    got = classify_sql(case.read_text(), str(case))
    assert got.phase == expected["phase"]
    assert got.declared == expected["declared_phase"]
    assert [[s.line, s.reason] for s in got.contract_statements] == expected["contract_because"]
    assert [[f.rule, f.line] for f in got.findings] == expected["findings"]
    assert got.refusal == expected["refused"]
    if "statements" in expected:
        assert [[s.line, s.kind, s.phase, s.transactional] for s in got.statements] == expected[
            "statements"
        ]


def test_every_contract_verdict_names_a_statement_and_line() -> None:
    for case in CASES:
        got = classify_sql(case.read_text(), str(case))
        if got.inferred == "contract":
            assert got.contract_statements, case
            assert all(s.line > 0 and s.reason for s in got.contract_statements), case


def test_squawk_agrees_where_it_has_a_rule() -> None:
    """Where squawk has a rule for the same thing (drop column or table, rename, NOT NULL,
    type change, index without CONCURRENTLY, constraint without NOT VALID), both flag the
    same statements, except the documented differences: squawk does not know that a table
    made earlier in the file is not in use, and does not read DO blocks."""
    found = squawk([c.resolve() for c in CASES])
    agreed = 0
    for case in CASES:
        expected = json.loads(case.with_suffix(".expected.json").read_text())
        mine = ours(classify_sql(case.read_text(), str(case)))
        theirs = found[case.resolve()]
        assert sorted(map(list, mine ^ theirs)) == [d[:2] for d in expected["squawk_differs"]], case
        agreed += len(mine & theirs)
    assert agreed >= 8


def test_the_real_corpus_has_several_projects_with_sources() -> None:
    projects = {c.parent for c in REAL}
    assert len(projects) >= 4
    for project in projects:
        sources = (project / "SOURCES.md").read_text()
        assert "commit: " in sources
        assert "licence: " in sources
        for case in project.glob("*.sql"):
            assert f"| {case.name} |" in sources, case


def test_issue_idioms_are_not_contract() -> None:
    """The idioms that made most real contract verdicts false: DO blocks with IF NOT EXISTS
    guards, DROP TRIGGER/POLICY IF EXISTS before creating them again, set_config."""
    for name in (
        "baseline_recreates_triggers",
        "recreate_policy_on_existing_table",
        "do_block_guarded_create_type",
        "session_and_reads",
    ):
        assert classify_sql((DATA / f"{name}.sql").read_text()).phase == "expand", name


def test_a_drop_that_nothing_recreates_is_contract_with_its_line() -> None:
    got = classify_sql("CREATE TABLE a (id int);\nDROP TRIGGER IF EXISTS t ON boards;\n")
    assert got.phase == "contract"
    assert [(s.line, s.reason) for s in got.contract_statements] == [(2, "drops trigger boards.t")]


def test_transaction_control_is_detected() -> None:
    wrapped = classify_sql((DATA / "wrapped_in_begin_commit.sql").read_text())
    assert wrapped.wrapped
    assert wrapped.refusal is None
    mid = classify_sql((DATA / "commit_mid_file.sql").read_text())
    assert not mid.wrapped
    assert mid.refusal is not None
    assert mid.refusal.startswith("COMMIT at line 3")
    rollback = classify_sql("CREATE TABLE a (id int);\nSAVEPOINT s;\n")
    assert rollback.refusal is not None
    assert "SAVEPOINT at line 2" in rollback.refusal


def test_bad_declared_phase_names_file_and_line() -> None:
    with pytest.raises(UsageError) as err:
        classify_sql("select 1;\n-- shipcaptain: phase=later\n", "m.sql")
    assert "m.sql:2" in str(err.value)


def test_unparsable_sql_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="does not parse"):
        classify_sql("ALTER TABLE;", "bad.sql")


def test_lines_count_characters_not_bytes() -> None:
    got = classify_sql(
        "-- café, naïve\nCREATE TABLE a (id int);\n\nCOMMENT ON TABLE a IS 'ünï ✓';\n"
    )
    assert [(s.line, s.kind) for s in got.statements] == [(2, "CreateStmt"), (4, "CommentStmt")]
    assert got.statements[1].sql == "COMMENT ON TABLE a IS 'ünï ✓'"


def test_discovery_sorts_by_version_number_in_supabase_layout(tmp_path: Path) -> None:
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    for name in ("10_b.sql", "9_a.sql", "100_c.sql"):
        (folder / name).write_text("select 1;")
    assert [m.version for m in discover(tmp_path).files] == ["9", "10", "100"]
