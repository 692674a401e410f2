"""Plan and apply migrations on a PostgreSQL database.

The expand phase applies pending expand migrations in version order (contract ones wait);
the contract phase applies every migration still pending, in version order. Each migration
runs in its own transaction, unless one of its statements cannot (CREATE INDEX
CONCURRENTLY): then its statements run one by one outside a transaction, and that is
reported. Everything happens under one advisory lock, so two releases never migrate at once.
A migration file changed after it was applied (checksum drift) stops everything."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from shipcaptain.errors import ActionError
from shipcaptain.migrations.classify import Classification, Phase, classify_sql
from shipcaptain.migrations.discovery import MigrationFile, discover
from shipcaptain.migrations.history import (
    ADVISORY_LOCK_KEY,
    Applied,
    ensure_history,
    read_history,
    record,
)


class MigrationFailed(ActionError):
    code = "SC601"


class ChecksumDrift(ActionError):
    code = "SC602"


@dataclass
class PlannedMigration:
    file: MigrationFile
    classification: Classification
    applied: bool
    drift: bool = False

    @property
    def runs_in(self) -> str:
        if self.applied:
            return "already applied"
        return f"{self.classification.phase} phase"


@dataclass
class ApplyResult:
    applied: list[str] = field(default_factory=list)
    outside_transaction: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)


def plan(root: Path, applied: dict[str, Applied]) -> list[PlannedMigration]:
    out = []
    for f in discover(root):
        cls = classify_sql(f.sql, str(f.path))
        done = applied.get(f.version)
        drift = bool(done and done.checksum and done.checksum != f.checksum)
        out.append(PlannedMigration(f, cls, done is not None, drift))
    return out


def check_drift(planned: list[PlannedMigration]) -> None:
    drifted = [p for p in planned if p.drift]
    if drifted:
        names = ", ".join(p.file.path.name for p in drifted)
        raise ChecksumDrift(
            f"migration file changed after it was applied (checksum drift): {names}; "
            "write a new migration instead of editing an applied one"
        )


def select(
    planned: list[PlannedMigration], phase: Phase
) -> tuple[list[PlannedMigration], list[str]]:
    pending = [p for p in planned if not p.applied]
    if phase == "contract":
        return pending, []
    run = [p for p in pending if p.classification.phase == "expand"]
    return run, [p.file.version for p in pending if p.classification.phase != "expand"]


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
            planned = plan(root, read_history(conn))
            check_drift(planned)
            run, result.deferred = select(planned, phase)
            if dry_run:
                result.applied = [p.file.version for p in run]
                return result
            ensure_history(conn)
            for p in run:
                _apply_one(conn, p, who, result, progress)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return result


def _apply_one(
    conn: psycopg.Connection,
    p: PlannedMigration,
    who: str,
    result: ApplyResult,
    progress: Callable[[str], None],
) -> None:
    f, stmts = p.file, [s.sql for s in p.classification.statements]
    progress(f"applying {f.version}_{f.name} ({p.classification.phase})")
    if p.classification.transactional:
        with conn.transaction():  # a failure rolls back the migration and its history row
            for stmt in stmts:
                _run(conn, f, stmt)
            record(conn, f.version, f.name, stmts, f.checksum, who)
    else:
        result.outside_transaction.append(f.version)
        for stmt in stmts:
            _run(conn, f, stmt)
        record(conn, f.version, f.name, stmts, f.checksum, who)
    result.applied.append(f.version)


def _run(conn: psycopg.Connection, f: MigrationFile, stmt: str) -> None:
    try:
        conn.execute(stmt.encode(), prepare=False)
    except psycopg.Error as exc:
        raise MigrationFailed(
            f"migration {f.path.name} failed: {str(exc).strip()}\n  statement: {stmt.strip()[:500]}"
        ) from exc
