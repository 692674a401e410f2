"""Classification cases as data files: tests/data/migrations/<case>.sql -> <case>.expected.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipcaptain.errors import UsageError
from shipcaptain.migrations.classify import classify_sql
from shipcaptain.migrations.discovery import discover

DATA = Path(__file__).parent.parent / "data" / "migrations"
CASES = sorted(DATA.glob("*.sql"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_classification_matches_expected(case: Path) -> None:
    expected = json.loads(case.with_suffix(".expected.json").read_text())
    got = classify_sql(case.read_text(), str(case))
    assert got.phase == expected["phase"]
    assert got.declared == expected["declared_phase"]
    assert [[s.kind, s.phase, s.transactional] for s in got.statements] == expected["statements"]
    assert [[f.rule, f.statement] for f in got.findings] == expected["findings"]


def test_there_are_cases() -> None:
    assert len(CASES) >= 8


def test_bad_declared_phase_names_file_and_line() -> None:
    with pytest.raises(UsageError) as err:
        classify_sql("select 1;\n-- shipcaptain: phase=later\n", "m.sql")
    assert "m.sql:2" in str(err.value)


def test_unparsable_sql_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="does not parse"):
        classify_sql("ALTER TABLE;", "bad.sql")


def test_discovery_sorts_by_version_number_in_supabase_layout(tmp_path: Path) -> None:
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    for name in ("10_b.sql", "9_a.sql", "100_c.sql"):
        (folder / name).write_text("select 1;")
    assert [m.version for m in discover(tmp_path)] == ["9", "10", "100"]


def test_discovery_rejects_a_bad_file_name(tmp_path: Path) -> None:
    (tmp_path / "add_table.sql").write_text("select 1;")
    with pytest.raises(UsageError, match=r"add_table\.sql"):
        discover(tmp_path)
