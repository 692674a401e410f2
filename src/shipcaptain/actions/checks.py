"""Post-deploy checks a release can act on: ``health``, ``smoke`` and ``sql_check``.

* ``health``: request a URL until it answers with the expected status and the release's
  build hash (in a header, a JSON field or the body), with a deadline. Built on the
  ``http`` action; reports what it got on every try.
* ``smoke``: run a team's smoke suite as a command; where it writes JUnit XML, the failed
  tests are listed per feature-owner surface (``failed_by_surface``), so an approval step
  after it can ask each owner about their surface.
* ``sql_check``: run one query in a read-only transaction with a statement timeout and
  compare its single value, or its number of rows, with an expectation ("RLS errors since
  the release began: 0"). Without an expectation it records the rows it got, for people to
  read (the query a Markdown runbook asks someone to run and look at); it then fails only
  when the query does.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import psycopg
from pydantic import ConfigDict, Field

from shipcaptain.actions.base import (
    Action,
    ActionOutputs,
    ActionParams,
    Outcome,
    PlanContext,
    StepContext,
)
from shipcaptain.actions.http import HttpAction, HttpParams
from shipcaptain.actions.shell import ShellAction, ShellParams
from shipcaptain.runbook.durations import Duration, PositiveDuration, format_duration

# ---- health ----


class HealthParams(ActionParams):
    """Parameters of the ``health`` action."""

    url: str = Field(min_length=1, description="Health URL, e.g. https://app.example.com/health.")
    build: str = Field(min_length=1, description="The build hash the new release must report.")
    build_in: Literal["header", "json", "body"] = Field(
        default="json", description="Where the build hash is: a header, a JSON field or the body."
    )
    header: str = Field(default="X-Build-Hash", description="Header with the build (`header`).")
    json_field: str = Field(default="build", description="JSON field with the build (`json`).")
    expect_status: int = Field(default=200, ge=100, le=599, description="Expected status code.")
    deadline: Duration = Field(default=300.0, description="Keep trying for this long.")
    interval: Duration = Field(default=5.0, description="Pause between two tries.")
    timeout: Duration = Field(default=10.0, description="Limit for one request.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers to send.")

    def as_http(self) -> HttpParams:
        # The build may be a prefix of the full hash (a short hash), so it is a prefix match.
        pattern = "^" + re.escape(self.build)
        where: dict[str, Any] = {"body_pattern": pattern}
        if self.build_in == "header":
            where = {"header": self.header, "header_pattern": pattern}
        elif self.build_in == "json":
            where["json_field"] = self.json_field
        else:
            where = {"body_pattern": re.escape(self.build)}
        return HttpParams(
            url=self.url,
            expect_status=self.expect_status,
            until=self.deadline,
            interval=self.interval,
            timeout=self.timeout,
            headers=self.headers,
            **where,
        )


class HealthOutputs(ActionOutputs):
    """Outputs of the ``health`` action (and the named groups of its pattern)."""

    model_config = ConfigDict(extra="allow")

    status_code: int = Field(description="The last answer's HTTP status.")
    elapsed_ms: int = Field(description="How long the last request took.")
    matched: str | None = Field(description="The build found in the answer.")
    build: str | None = Field(description="The same build.")
    attempts: int = Field(description="Requests made until the deadline or success.")


class HealthAction(Action[HealthParams]):
    """Wait until the app answers healthy with the release's build; report what it got."""

    name = "health"
    changes_world = False
    summary = "Request a health URL until it reports the expected status and build hash."
    Params = HealthParams
    Outputs = HealthOutputs
    idempotent = True

    def describe(self, params: HealthParams, ctx: PlanContext) -> str:
        where = {
            "header": f"header {params.header}",
            "json": f"JSON field {params.json_field}",
            "body": "the body",
        }[params.build_in]
        return (
            f"GET {params.url} until it answers {params.expect_status} with build "
            f"{params.build} in {where} (deadline {format_duration(params.deadline)})"
        )

    def run(self, params: HealthParams, ctx: StepContext) -> Outcome:
        outcome = HttpAction().run(params.as_http(), ctx)
        outputs = {**outcome.outputs, "build": outcome.outputs.get("matched")}
        if outcome.ok:
            summary = f"healthy, build {params.build}: {outcome.summary}"
        else:
            summary = f"not healthy with build {params.build} within deadline: {outcome.summary}"
        return outcome.model_copy(update={"outputs": outputs, "summary": summary})


# ---- smoke ----


class SmokeParams(ActionParams):
    """Parameters of the ``smoke`` action."""

    command: str = Field(min_length=1, description="The smoke suite, e.g. `npm run test:smoke`.")
    junit: str | None = Field(
        default=None, description="JUnit XML file(s) the suite writes (a glob, in the workdir)."
    )
    surfaces: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Feature-owner surface -> patterns (fnmatch) of test class or test names.",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Environment for the command.")
    timeout: Duration | None = Field(default=None, description="Limit for the suite.")


class SmokeOutputs(ActionOutputs):
    """Outputs of the ``smoke`` action (and the command's ``::output`` lines)."""

    model_config = ConfigDict(extra="allow")

    exit_code: int | None = Field(description="The suite's exit code.")
    tests: int = Field(description="Tests in the JUnit report.")
    failed: list[str] = Field(description="Names of the failed tests.")
    failed_by_surface: dict[str, list[str]] = Field(
        description="Failed tests grouped by feature-owner surface (`other`: none matched)."
    )
    by_surface: dict[str, dict[str, Any]] = Field(
        description="Per surface: `tests`, `failed` (names) and `passed` (count)."
    )


class SmokeAction(Action[SmokeParams]):
    """Run a smoke suite; list the failed tests per feature-owner surface."""

    name = "smoke"
    changes_world = False
    summary = "Run a smoke suite; show failed JUnit tests per feature-owner surface."
    Params = SmokeParams
    Outputs = SmokeOutputs
    idempotent = True
    shell_params = ("command",)

    def describe(self, params: SmokeParams, ctx: PlanContext) -> str:
        text = f"run the smoke suite: {params.command}"
        if params.junit:
            text += f"; read {params.junit}"
            if params.surfaces:
                text += f" (surfaces: {', '.join(params.surfaces)})"
        return text

    def run(self, params: SmokeParams, ctx: StepContext) -> Outcome:
        began = time.time()
        shell = ShellParams(command=params.command, env=params.env, timeout=params.timeout)
        ran = ShellAction().run(shell, ctx)
        if params.junit is None:
            return ran
        pattern = str(Path(ctx.workdir) / params.junit)
        files = [f for f in sorted(glob.glob(pattern)) if os.path.getmtime(f) >= began - 1]
        if not files:
            return Outcome.failure(
                f"{ran.summary}; no JUnit report {params.junit} written by this run",
                detail=ran.detail,
                outputs=ran.outputs,
            )
        try:
            cases = _read_junit(files)
        except (ET.ParseError, OSError) as exc:
            return Outcome.failure(f"cannot read the JUnit report: {exc}", detail=ran.detail)
        tests = len(cases)
        failed = [name for name, _, bad in cases if bad]
        per_surface = _by_surface(cases, params.surfaces)
        by_surface = {s: r["failed"] for s, r in per_surface.items() if r["failed"]}
        outputs = {
            **ran.outputs,
            "tests": tests,
            "failed": failed,
            "failed_by_surface": by_surface,
            "by_surface": per_surface,
        }
        if not failed and ran.ok:
            return Outcome.success(
                f"{tests} smoke tests passed", detail=ran.detail, outputs=outputs
            )
        if not failed:
            return Outcome.failure(
                f"the suite failed ({ran.summary}) but its report lists no failed test",
                detail=ran.detail,
                outputs=outputs,
            )
        shown = "; ".join(
            f"{surface}: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else "")
            for surface, names in by_surface.items()
        )
        return Outcome.failure(
            f"{len(failed)} of {tests} smoke tests failed ({shown})",
            detail=ran.detail,
            outputs=outputs,
        )


def _read_junit(files: list[str]) -> list[tuple[str, str, bool]]:
    """(name, classname, failed) of every test case; failed: a failure or an error."""
    cases: list[tuple[str, str, bool]] = []
    for file in files:
        root = ET.parse(file).getroot()
        for case in root.iter("testcase"):
            classname = case.get("classname", "")
            name = case.get("name", "?")
            bad = case.find("failure") is not None or case.find("error") is not None
            cases.append((f"{classname}.{name}" if classname else name, classname, bad))
    return cases


def _surface_of(name: str, classname: str, surfaces: dict[str, list[str]]) -> str:
    return next(
        (
            surface
            for surface, patterns in surfaces.items()
            if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(classname, p) for p in patterns)
        ),
        "unassigned",
    )


def _by_surface(
    cases: list[tuple[str, str, bool]], surfaces: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Per surface (every configured one, then ``unassigned`` if a test matched none): the
    number of tests, the failed tests' names and how many passed."""
    out: dict[str, dict[str, Any]] = {s: {"tests": 0, "failed": [], "passed": 0} for s in surfaces}
    for name, classname, bad in cases:
        entry = out.setdefault(
            _surface_of(name, classname, surfaces), {"tests": 0, "failed": [], "passed": 0}
        )
        entry["tests"] += 1
        if bad:
            entry["failed"].append(name)
        else:
            entry["passed"] += 1
    return out


# ---- sql_check ----


class SqlCheckParams(ActionParams):
    """Parameters of the ``sql_check`` action."""

    query: str = Field(
        min_length=1,
        description="SQL to run read-only; equals, below and above judge its first column "
        "of row 1.",
    )
    database_url_env: str = Field(
        default="DATABASE_URL",
        description="Environment variable holding the PostgreSQL URL (kept out of the runbook).",
    )
    equals: float | str | None = Field(default=None, description="The value must equal this.")
    below: float | None = Field(default=None, description="The value must be below this.")
    above: float | None = Field(default=None, description="The value must be above this.")
    rows: int | None = Field(
        default=None, ge=0, description="The query must return exactly this many rows (0: none)."
    )
    show_rows: int = Field(
        default=20, ge=1, le=1000, description="How many of the rows to keep in the step's output."
    )
    timeout: PositiveDuration = Field(default=30.0, description="Statement timeout.")

    def judges_value(self) -> bool:
        return self.equals is not None or self.below is not None or self.above is not None

    def expectation(self) -> str:
        """What the result must be, in words; empty when the step only records it."""
        parts = []
        if self.rows is not None:
            parts.append("no rows" if self.rows == 0 else f"{self.rows} row(s)")
        if self.equals is not None:
            shown = self.equals if isinstance(self.equals, str) else f"{self.equals:g}"
            parts.append(f"= {shown}")
        if self.below is not None:
            parts.append(f"< {self.below:g}")
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        return " and ".join(parts)


class SqlCheckOutputs(ActionOutputs):
    """Outputs of the ``sql_check`` action."""

    columns: list[str] = Field(description="Column names.")
    rows: list[list[Any]] = Field(description="The first rows (`show_rows`), secrets redacted.")
    row_count: int | None = Field(description="Rows returned; null: more than were read.")
    text: str = Field(description="The rows as a text table.")
    value: Any = Field(default=None, description="With `equals`/`below`/...: the value judged.")


class SqlCheckAction(Action[SqlCheckParams]):
    """Run a query read-only, with a timeout, and compare its value or row count with an
    expectation; without one, record its rows."""

    name = "sql_check"
    changes_world = False
    summary = "Run a read-only SQL query with a timeout; judge its value or rows, or record them."
    Params = SqlCheckParams
    Outputs = SqlCheckOutputs
    idempotent = True

    def describe(self, params: SqlCheckParams, ctx: PlanContext) -> str:
        one_line = " ".join(params.query.split())
        where = f"${params.database_url_env}"
        expect = params.expectation()
        verdict = f"expect {expect}" if expect else "record the rows for people to read"
        return f"read-only query on {where}: {one_line}; {verdict}"

    def cannot_fail_a_guard(self, params: dict[str, Any]) -> str | None:
        try:
            parsed = SqlCheckParams.model_validate(params)
        except ValueError:
            return None  # reported by the parameter check
        if parsed.expectation():
            return None
        return "a guard's sql_check needs an expectation (equals, below, above or rows)"

    def run(self, params: SqlCheckParams, ctx: StepContext) -> Outcome:
        url = ctx.getenv(params.database_url_env)
        if not url:
            return Outcome.failure(
                f"${params.database_url_env} is not set: no database to ask", retryable=False
            )
        limit = min(params.timeout, ctx.timeout)
        wanted = max(params.show_rows, 1 if params.rows is None else params.rows + 1)
        try:
            with psycopg.connect(url, connect_timeout=max(1, int(limit))) as conn:
                conn.read_only = True
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(f"SET LOCAL statement_timeout = {int(limit * 1000)}")
                    cur.execute(params.query.encode())
                    columns = [c.name for c in cur.description or []]
                    got = cur.fetchmany(wanted + 1) if cur.description else []
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            return Outcome.failure(
                f"the query tried to change the database (sql_check is read-only): {_first(exc)}",
                retryable=False,
            )
        except psycopg.errors.QueryCanceled:
            return Outcome.failure(f"the query ran longer than {format_duration(limit)}")
        except psycopg.Error as exc:
            return Outcome.failure(ctx.redact(f"the query failed: {_first(exc)}"))
        more = len(got) > wanted
        # known secrets are kept out of the rows as out of every other output
        rows = [[_plain(v, ctx.redact) for v in row] for row in got[:wanted]]
        count = f"{len(rows)}+" if more else str(len(rows))
        outputs: dict[str, Any] = {
            "columns": columns,
            "rows": rows[: params.show_rows],
            "row_count": len(rows) if not more else None,
            "text": _table(columns, rows[: params.show_rows], count),
        }
        problem = ""
        if params.rows is not None and (more or len(rows) != params.rows):
            problem = f"got {count} row(s), expected {params.expectation()}"
        if params.judges_value():
            if not rows or not rows[0]:
                return Outcome.failure(
                    f"the query returned no row; expected {params.expectation()}", outputs=outputs
                )
            value = got[0][0]
            outputs["value"] = rows[0][0]
            if not problem and _compare(value, params):
                problem = f"got {value!r}, expected {params.expectation()}"
            if not problem:
                return Outcome.success(f"got {value!r} ({params.expectation()})", outputs=outputs)
        if problem:
            return Outcome.failure(problem, outputs=outputs)
        if params.rows is not None:
            return Outcome.success(f"got {count} row(s) ({params.expectation()})", outputs=outputs)
        return Outcome.success(f"{count} row(s) recorded (no expectation)", outputs=outputs)


def _plain(value: Any, redact: Callable[[str], str]) -> Any:
    """A value as JSON can keep it: numbers and None as they are, the rest as text without
    known secrets."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


def _table(columns: list[str], rows: list[list[Any]], count: str) -> str:
    """The rows as an aligned text table, the way psql shows them."""
    if not columns:
        return "(the statement returned no rows)"
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[k]) for r in cells)]) for k, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [
        " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]
    shown = f", {len(rows)} shown" if count.endswith("+") or int(count) > len(rows) else ""
    lines.append(f"({count} row{'s' if count != '1' else ''}{shown})")
    return "\n".join(lines)


def _compare(value: Any, params: SqlCheckParams) -> str:
    """An empty string when ``value`` meets the expectation, else what is wrong."""
    if params.equals is not None:
        same = (
            str(value) == params.equals
            if isinstance(params.equals, str)
            else _number(value) == params.equals
        )
        if not same:
            return "not equal"
    if params.below is not None and not _number(value) < params.below:
        return "not below"
    if params.above is not None and not _number(value) > params.above:
        return "not above"
    return ""


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _first(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
