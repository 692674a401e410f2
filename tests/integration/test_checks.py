"""health, smoke and sql_check against real things: the sandbox app on a free port, real
bash commands writing JUnit XML, and a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers.databases import postgres_database
from shipcaptain.actions.base import StepContext
from shipcaptain.actions.checks import (
    HealthAction,
    HealthParams,
    SmokeAction,
    SmokeParams,
    SqlCheckAction,
    SqlCheckParams,
)
from shipcaptain.sandbox import logs_database
from shipcaptain.sandbox.health_server import HealthServer
from shipcaptain.sandbox.logs_database import LogsDatabase


@pytest.fixture
def app() -> Iterator[HealthServer]:
    with HealthServer(build="old0000") as server:
        yield server


def ctx(workdir: Path, progress: list[str] | None = None, **env: str) -> StepContext:
    sink = progress if progress is not None else []
    return StepContext(
        release_id="rel-1",
        step_id="check",
        attempt=1,
        timeout=30.0,
        workdir=workdir,
        env=env,
        progress=sink.append,
    )


# ---- health ----


class _DeployAfterFirstTry(list[str]):
    """The progress lines of a health check; the new build goes live once the first try
    has been reported (not after a fixed time: on a loaded machine the first try came
    after the timer, saw the new build, and the check never waited)."""

    def __init__(self, app: HealthServer) -> None:
        super().__init__()
        self.app = app

    def append(self, line: str) -> None:
        super().append(line)
        if line.startswith("try 1:"):
            self.app.set_build("abc1234def")


@pytest.mark.parametrize("build_in", ["header", "json", "body"])
def test_health_waits_for_the_new_build(app: HealthServer, tmp_path: Path, build_in: str) -> None:
    progress = _DeployAfterFirstTry(app)
    raw: dict[str, Any] = {
        "url": app.health_url,
        "build": "abc1234",
        "build_in": build_in,
        "deadline": 10,
        "interval": 0.2,
    }
    outcome = HealthAction().run(HealthParams(**raw), ctx(tmp_path, progress))
    assert outcome.ok, outcome.summary
    assert outcome.summary.startswith("healthy, build abc1234")
    assert outcome.outputs["attempts"] > 1
    assert any("try 1" in line for line in progress)  # it reported what it got meanwhile


def test_health_reports_what_it_got_when_the_deadline_passes(
    app: HealthServer, tmp_path: Path
) -> None:
    app.set_healthy(False)
    raw = {"url": app.health_url, "build": "abc1234", "deadline": 0.5, "interval": 0.1}
    outcome = HealthAction().run(HealthParams(**raw), ctx(tmp_path))
    assert not outcome.ok
    assert "not healthy with build abc1234 within deadline" in outcome.summary
    assert "503" in outcome.summary
    assert outcome.outputs["status_code"] == 503


def test_health_with_the_old_build_fails(app: HealthServer, tmp_path: Path) -> None:
    raw = {"url": app.health_url, "build": "abc1234", "deadline": 0.3, "interval": 0.1}
    outcome = HealthAction().run(HealthParams(**raw), ctx(tmp_path))
    assert not outcome.ok
    assert "old0000" in outcome.summary


# ---- smoke ----

SUITE = textwrap.dedent(
    """\
    cat > report.xml <<'XML'
    <testsuites>
      <testsuite name="smoke" tests="4">
        <testcase classname="canvas.Archive" name="test_archive"/>
        <testcase classname="canvas.Archive" name="test_restore"><failure message="500"/></testcase>
        <testcase classname="billing.Invoices" name="test_pay"><error message="boom"/></testcase>
        <testcase classname="misc" name="test_other"><failure/></testcase>
      </testsuite>
    </testsuites>
    XML
    exit 1
    """
)


def test_smoke_groups_failed_tests_by_surface(tmp_path: Path) -> None:
    raw = {
        "command": SUITE,
        "junit": "report.xml",
        "surfaces": {"canvas": ["canvas.*"], "billing": ["billing.*"]},
    }
    outcome = SmokeAction().run(SmokeParams(**raw), ctx(tmp_path))
    assert not outcome.ok
    assert outcome.outputs["tests"] == 4
    assert outcome.outputs["failed_by_surface"] == {
        "canvas": ["canvas.Archive.test_restore"],
        "billing": ["billing.Invoices.test_pay"],
        "unassigned": ["misc.test_other"],
    }
    assert outcome.summary.startswith("3 of 4 smoke tests failed (canvas: canvas.Archive")


def test_smoke_passes_and_ignores_a_stale_report(tmp_path: Path) -> None:
    passing = SUITE.replace('<failure message="500"/>', "").replace("exit 1", "exit 0")
    passing = passing.replace('<error message="boom"/>', "").replace("<failure/>", "")
    outcome = SmokeAction().run(SmokeParams(command=passing, junit="report.xml"), ctx(tmp_path))
    assert outcome.ok
    assert outcome.summary == "4 smoke tests passed"
    # A suite that does not write its report this time is not judged by the old one.
    report = tmp_path / "report.xml"
    os.utime(report, (report.stat().st_atime - 3600, report.stat().st_mtime - 3600))
    outcome = SmokeAction().run(SmokeParams(command="true", junit="report.xml"), ctx(tmp_path))
    assert not outcome.ok
    assert "no JUnit report report.xml written by this run" in outcome.summary


# ---- sql_check ----


@pytest.fixture
def logs_db() -> Iterator[str]:
    with postgres_database("sc_check") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE logs (at timestamptz DEFAULT now(), message text)")
            conn.execute("INSERT INTO logs (message) VALUES ('ok'), ('RLS violation on canvases')")
        yield url


RLS = "select count(*) from logs where message like 'RLS%'"


@pytest.mark.postgres
def test_sql_check_compares_the_value(logs_db: str, tmp_path: Path) -> None:
    failing = SqlCheckAction().run(
        SqlCheckParams(query=RLS, equals=0), ctx(tmp_path, DATABASE_URL=logs_db)
    )
    assert not failing.ok
    assert failing.summary == "got 1, expected = 0"
    assert failing.outputs["value"] == 1
    passing = SqlCheckAction().run(
        SqlCheckParams(query=RLS, below=2), ctx(tmp_path, DATABASE_URL=logs_db)
    )
    assert passing.ok
    assert passing.summary == "got 1 (< 2)"


@pytest.mark.postgres
def test_sql_check_is_read_only(logs_db: str, tmp_path: Path) -> None:
    outcome = SqlCheckAction().run(
        SqlCheckParams(query="delete from logs returning 1", equals=0),
        ctx(tmp_path, DATABASE_URL=logs_db),
    )
    assert not outcome.ok
    assert not outcome.retryable
    assert "read-only" in outcome.summary
    with psycopg.connect(logs_db) as conn:
        assert conn.execute("select count(*) from logs").fetchone() == (2,)


@pytest.mark.postgres
def test_sql_check_stops_a_slow_query(logs_db: str, tmp_path: Path) -> None:
    outcome = SqlCheckAction().run(
        SqlCheckParams(query="select pg_sleep(5)", equals="", timeout=0.5),
        ctx(tmp_path, DATABASE_URL=logs_db),
    )
    assert not outcome.ok
    assert outcome.summary == "the query ran longer than 0.5s"


def test_sql_check_without_a_database_url_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOGS_DB", raising=False)
    outcome = SqlCheckAction().run(
        SqlCheckParams(query=RLS, equals=0, database_url_env="LOGS_DB"), ctx(tmp_path)
    )
    assert not outcome.ok
    assert outcome.summary == "$LOGS_DB is not set: no database to ask"


@pytest.mark.postgres
def test_sql_check_without_an_expectation_records_the_rows(logs_db: str, tmp_path: Path) -> None:
    outcome = SqlCheckAction().run(
        SqlCheckParams(query="select message, at is not null as dated from logs order by 1"),
        ctx(tmp_path, DATABASE_URL=logs_db),
    )
    assert outcome.ok, outcome.summary
    assert outcome.summary == "2 row(s) recorded (no expectation)"
    assert outcome.outputs["columns"] == ["message", "dated"]
    assert outcome.outputs["rows"] == [["RLS violation on canvases", True], ["ok", True]]
    lines = outcome.outputs["text"].splitlines()
    assert lines[0].split("|")[0].strip() == "message"
    assert lines[-1] == "(2 rows)"
    broken = SqlCheckAction().run(
        SqlCheckParams(query="select version from schema_migrations"),
        ctx(tmp_path, DATABASE_URL=logs_db),
    )
    assert not broken.ok
    assert "schema_migrations" in broken.summary


@pytest.mark.postgres
def test_sql_check_keeps_known_secrets_out_of_the_rows(logs_db: str, tmp_path: Path) -> None:
    context = ctx(tmp_path, DATABASE_URL=logs_db)
    context.secrets.append("hunter2-canary")
    outcome = SqlCheckAction().run(
        SqlCheckParams(query="select 'password=hunter2-canary' as dsn, 7 as n"), context
    )
    assert outcome.ok, outcome.summary
    assert outcome.outputs["rows"] == [["password=***", 7]]
    assert "hunter2-canary" not in outcome.outputs["text"]
    assert "password=***" in outcome.outputs["text"]


@pytest.mark.postgres
def test_sql_check_judges_the_number_of_rows(logs_db: str, tmp_path: Path) -> None:
    query = "select message from logs where message like 'RLS%'"
    none_wanted = SqlCheckAction().run(
        SqlCheckParams(query=query, rows=0), ctx(tmp_path, DATABASE_URL=logs_db)
    )
    assert not none_wanted.ok
    assert none_wanted.summary == "got 1 row(s), expected no rows"
    assert none_wanted.outputs["rows"] == [["RLS violation on canvases"]]
    one = SqlCheckAction().run(
        SqlCheckParams(query=query, rows=1), ctx(tmp_path, DATABASE_URL=logs_db)
    )
    assert one.ok, one.summary
    shown = SqlCheckAction().run(
        SqlCheckParams(query="select generate_series(1, 50)", rows=50, show_rows=3),
        ctx(tmp_path, DATABASE_URL=logs_db),
    )
    assert shown.ok, shown.summary
    assert len(shown.outputs["rows"]) == 3
    assert shown.outputs["text"].endswith("(50 rows, 3 shown)")
    too_many = SqlCheckAction().run(
        SqlCheckParams(query="select generate_series(1, 50)", rows=40),
        ctx(tmp_path, DATABASE_URL=logs_db),
    )
    assert not too_many.ok
    assert too_many.summary == "got 41+ row(s), expected 40 row(s)"


def test_a_guard_sql_check_needs_an_expectation() -> None:
    action = SqlCheckAction()
    assert action.cannot_fail_a_guard({"query": RLS}) == (
        "a guard's sql_check needs an expectation (equals, below, above or rows)"
    )
    assert action.cannot_fail_a_guard({"query": RLS, "rows": 0}) is None


@pytest.mark.skipif(not logs_database.available(), reason="no PostgreSQL server binaries")
def test_the_demo_logs_database_answers_the_rls_check(tmp_path: Path) -> None:
    query = (
        "select count(*) from logs where message ilike '%row-level security%' "
        "and at > now() - interval '{window}'"
    )
    with LogsDatabase() as db:
        recent = SqlCheckAction().run(
            SqlCheckParams(query=query.format(window="1 hour"), equals=0),
            ctx(tmp_path, DATABASE_URL=db.url),
        )
        assert recent.ok, recent.summary
        older = SqlCheckAction().run(
            SqlCheckParams(query=query.format(window="3 days"), equals=0),
            ctx(tmp_path, DATABASE_URL=db.url),
        )
        assert older.summary == "got 1, expected = 0"
        root = db.server.root
        assert root is not None
        assert root.exists()
    assert not root.exists()  # the cluster is removed with its files
