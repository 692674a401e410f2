"""Plan and apply migrations on a PostgreSQL database.

Which migration runs in which phase is decided by ``schedule`` (version order; nothing runs
while an earlier migration it may depend on is pending). Each file runs as one transaction
with its history row. A file that controls the transaction itself (``COMMIT`` in the
middle, ``SAVEPOINT``, a DO block that commits) is refused before anything is applied,
naming the line; ``BEGIN; ... COMMIT;`` around the whole file is accepted and dropped. A
statement that cannot run in a transaction (CREATE INDEX CONCURRENTLY) runs alone, between
the transactions of the statements around it, and the file's progress is recorded after
each part, so a retry after a failure or a crash resumes where the file stopped (an invalid
index left by an interrupted CONCURRENTLY build is dropped and built again).

Everything happens under one advisory lock, so two releases never migrate at once. A
migration file changed after it was applied (checksum drift) stops everything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from shipcaptain.errors import ActionError, Location
from shipcaptain.migrations.classify import classify_sql
from shipcaptain.migrations.discovery import discover
from shipcaptain.migrations.history import (
    ADVISORY_LOCK_KEY,
    Applied,
    Partial,
    app_tables,
    ensure_history,
    read_history,
    read_progress,
    record,
    save_progress,
)
from shipcaptain.migrations.schedule import PlannedMigration, Schedule, schedule
from shipcaptain.migrations.verdicts import Phase, StatementVerdict


class ChecksumDrift(ActionError):
    code = "SC621"


class MigrationRefused(ActionError):
    """A file that controls its own transaction: refused before anything runs."""

    code = "SC622"


@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)
    contract_applied: list[str] = field(default_factory=list)  # of ``applied``: contract ones
    outside_transaction: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # waiting for the contract phase
    skipped_files: list[str] = field(default_factory=list)  # not migrations (seed.sql, ...)
    failed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "contract_applied": self.contract_applied,
            "deferred": self.deferred,
            "outside_transaction": self.outside_transaction,
            "skipped_files": self.skipped_files,
            "failed": self.failed,
        }


class MigrationFailed(ActionError):
    code = "SC620"

    def __init__(self, message: str, result: ApplyResult) -> None:
        super().__init__(message)
        self.result = result


def plan(
    root: Path,
    applied: dict[str, Applied],
    progress: dict[str, Partial] | None = None,
    tables: list[str] | None = None,
) -> Schedule:
    """``tables``: some of the database's own tables (``app_tables``); with none and nothing
    applied, the database is fresh (a first deploy)."""
    found = discover(root)
    out = []
    for f in found.files:
        cls = classify_sql(f.sql, str(f.path))
        done = applied.get(f.version)
        part = (progress or {}).get(f.version)
        drift = bool(done and done.checksum and done.checksum != f.checksum) or bool(
            part and not done and part.checksum != f.checksum
        )
        out.append(
            PlannedMigration(
                f, cls, done is not None, drift, statements_done=part.statements_done if part else 0
            )
        )
    fresh = not applied and not tables
    schedule(out, fresh=fresh, in_use=tables if not applied else None)
    return Schedule(out, fresh=fresh, skipped_files=found.skipped)


def read_plan(conn: psycopg.Connection, root: Path) -> Schedule:
    return plan(root, read_history(conn), read_progress(conn), app_tables(conn))


def check_drift(planned: Schedule) -> None:
    drifted = [p for p in planned.migrations if p.drift]
    if drifted:
        names = ", ".join(p.file.path.name for p in drifted)
        raise ChecksumDrift(
            f"migration file changed after it was applied (checksum drift): {names}; "
            "write a new migration instead of editing an applied one"
        )


def check_refusals(run: list[PlannedMigration]) -> None:
    for p in run:
        at = p.classification.refused_by
        if at is not None:
            raise MigrationRefused(
                f"migration refused, nothing applied: {p.classification.refusal}",
                location=Location(str(p.file.path), at.line),
            )


def apply(
    url: str,
    root: Path,
    phase: Phase,
    who: str,
    *,
    dry_run: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> ApplyResult:
    result = ApplyResult()
    with psycopg.connect(url, autocommit=True) as conn:
        progress("waiting for the migration lock")
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            planned = read_plan(conn, root)
            result.skipped_files = [f"{n}: {why}" for n, why in planned.skipped_files]
            for line in result.skipped_files:
                progress(f"warning: skipped {line}")
            check_drift(planned)
            run = planned.to_run(phase)
            result.deferred = [p.file.version for p in planned.waiting(phase)]
            check_refusals(run)
            if dry_run:
                result.applied = [p.file.version for p in run]
                result.contract_applied = [
                    p.file.version for p in run if p.classification.phase == "contract"
                ]
                return result
            have = ensure_history(conn)
            for p in run:
                _apply_one(conn, have, p, who, result, progress)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return result


def parts(statements: list[StatementVerdict]) -> list[list[int]]:
    """Statement indexes grouped into what runs together: consecutive transactional
    statements in one transaction, each other statement alone."""
    out: list[list[int]] = []
    for i, st in enumerate(statements):
        if st.transactional and out and statements[out[-1][0]].transactional:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _apply_one(
    conn: psycopg.Connection,
    have: set[str],
    p: PlannedMigration,
    who: str,
    result: ApplyResult,
    progress: Callable[[str], None],
) -> None:
    f, cls = p.file, p.classification
    stmts = cls.statements[1:-1] if cls.wrapped else cls.statements
    texts = [s.sql for s in stmts]
    progress(f"applying {p.label} ({cls.phase}): {p.reason}")
    groups = parts(stmts)
    if (len(groups) == 1 and stmts and stmts[0].transactional) or not stmts:
        with conn.transaction():  # a failure rolls back the migration and its history row
            for st in stmts:
                _run(conn, p, st, result)
            record(conn, have, f.version, f.name, texts, f.checksum, who)
        _done(p, result)
        return
    result.outside_transaction.append(f.version)
    for group in groups:
        end = group[-1] + 1
        if end <= p.statements_done:
            progress(f"  statements up to line {stmts[group[-1]].line} were applied before")
            continue
        first = stmts[group[0]]
        if first.transactional:
            with conn.transaction():
                for i in group:
                    _run(conn, p, stmts[i], result)
                save_progress(conn, f.version, f.checksum, end)
        else:
            _run_alone(conn, p, first, result, progress)
            save_progress(conn, f.version, f.checksum, end)
    with conn.transaction():
        record(conn, have, f.version, f.name, texts, f.checksum, who)
    _done(p, result)


def _done(p: PlannedMigration, result: ApplyResult) -> None:
    result.applied.append(p.file.version)
    if p.classification.phase == "contract":
        result.contract_applied.append(p.file.version)


def _run_alone(
    conn: psycopg.Connection,
    p: PlannedMigration,
    st: StatementVerdict,
    result: ApplyResult,
    progress: Callable[[str], None],
) -> None:
    """A statement that cannot run in a transaction. If an earlier try was interrupted
    while it built an index CONCURRENTLY, the index is there but invalid: drop it first;
    if it is there and valid, the statement had finished."""
    if st.index_name and st.kind == "IndexStmt":
        row = conn.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            (st.index_name,),
        ).fetchone()
        if row is not None and row[0]:
            progress(f"  index {st.index_name} (line {st.line}) was built before")
            return
        if row is not None:
            progress(f"  index {st.index_name} is invalid (an interrupted build): rebuilt")
            conn.execute(
                sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                    sql.Identifier(st.index_name)
                )
            )
    _run(conn, p, st, result)


def _run(
    conn: psycopg.Connection, p: PlannedMigration, st: StatementVerdict, result: ApplyResult
) -> None:
    try:
        conn.execute(st.sql.encode(), prepare=False)
    except psycopg.Error as exc:
        result.failed = failure(p, st, exc)
        raise MigrationFailed(describe_failure(result), result) from exc


def failure(p: PlannedMigration, st: StatementVerdict, exc: psycopg.Error) -> dict[str, Any]:
    """What PostgreSQL said, with its position turned into the file's line."""
    diag = exc.diag
    line, column = st.line, None
    if diag.statement_position:
        before = st.sql[: int(diag.statement_position) - 1]
        line = st.line + before.count("\n")
        column = len(before) - (before.rfind("\n") + 1) + 1
    return {
        "code": MigrationFailed.code,
        "version": p.file.version,
        "file": str(p.file.path),
        "line": line,
        "column": column,
        "statement_line": st.line,
        "statement": st.sql,
        "error": (diag.message_primary or str(exc)).strip(),
        "sqlstate": diag.sqlstate,
        "detail": diag.message_detail,
        "hint": diag.message_hint,
        "context": diag.context,
    }


def describe_failure(result: ApplyResult) -> str:
    f = result.failed or {}
    lines = [f"migration {Path(f['file']).name} failed at line {f['line']}: {f['error']}"]
    source = f["statement"].splitlines()
    offset = f["line"] - f["statement_line"]
    if 0 <= offset < len(source):
        lines.append(f"  LINE {f['line']}: {source[offset].strip()}")
        if f["column"]:
            pad = len(f"  LINE {f['line']}: ") + max(
                f["column"] - 1 - (len(source[offset]) - len(source[offset].lstrip())), 0
            )
            lines.append(" " * pad + "^")
    for key in ("detail", "hint", "context"):
        if f.get(key):
            lines.append(f"  {key.upper()}: {f[key]}")
    text = f["statement"].strip()
    lines.append(f"  statement (line {f['statement_line']}): {text[:500]}")
    done = ", ".join(result.applied) or "nothing"
    if f["version"] in result.outside_transaction:
        after = f"{f['version']} stopped part way: a retry resumes after its last finished part"
    else:
        after = "this migration was rolled back"
    lines.append(f"  applied before the failure: {done}; {after}")
    earlier = [v for v in result.deferred if (int(v), v) < (int(f["version"]), f["version"])]
    if earlier:  # the plan found it independent of them: say so, in case it was not
        lines.append(
            f"  earlier migrations still pending (waiting for the contract phase): "
            f"{', '.join(earlier)}"
        )
    return "\n".join(lines)
