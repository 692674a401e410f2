"""The history table, Supabase's ``supabase_migrations.schema_migrations`` (version, name,
statements: what the Supabase CLI writes and reads) plus shipcaptain's own columns
(checksum, applied_by, applied_at) when it may add them.

A table the Supabase CLI made is used as it is: its rows count as applied (without a
checksum, so no drift check for them); shipcaptain adds its columns if the table's owner
lets it, and writes only the columns the table has. Progress through a file that runs in
parts (CREATE INDEX CONCURRENTLY cannot run in a transaction) is kept in
``supabase_migrations.shipcaptain_progress`` until the file's history row is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

SUPABASE_DDL = """
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
    version text NOT NULL PRIMARY KEY, statements text[], name text);
"""
EXTRA_DDL = """
ALTER TABLE supabase_migrations.schema_migrations
    ADD COLUMN IF NOT EXISTS checksum text,
    ADD COLUMN IF NOT EXISTS applied_by text,
    ADD COLUMN IF NOT EXISTS applied_at timestamptz DEFAULT now();
"""
PROGRESS_DDL = """
CREATE TABLE IF NOT EXISTS supabase_migrations.shipcaptain_progress (
    version text PRIMARY KEY, checksum text NOT NULL, statements_done int NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now());
"""

#: one key for every shipcaptain migrator: two releases never migrate one database at once
ADVISORY_LOCK_KEY = 0x5C1A_7A1E


@dataclass(frozen=True)
class Applied:
    version: str
    name: str | None
    checksum: str | None


@dataclass(frozen=True)
class Partial:
    """A file applied in part by an interrupted earlier try."""

    version: str
    checksum: str
    statements_done: int


def columns(conn: Any) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'supabase_migrations' AND table_name = 'schema_migrations'"
    ).fetchall()
    return {r[0] for r in rows}


def ensure_history(conn: Any) -> set[str]:
    """Make the table if it is missing, add shipcaptain's columns if allowed; its columns."""
    if not columns(conn):  # the Supabase CLI's table may exist, owned by another role
        with conn.transaction():
            conn.execute(SUPABASE_DDL)
    try:
        with conn.transaction():
            conn.execute(EXTRA_DDL)
    except psycopg.errors.InsufficientPrivilege:
        pass  # another role owns the Supabase CLI's table: write its own columns only
    return columns(conn)


def read_history(conn: Any) -> dict[str, Applied]:
    """Applied migrations by version; empty if the table does not exist (nothing applied)."""
    have = columns(conn)
    if not have:
        return {}
    name = "name" if "name" in have else "NULL"
    checksum = "checksum" if "checksum" in have else "NULL"
    rows = conn.execute(
        f"SELECT version, {name}, {checksum} FROM supabase_migrations.schema_migrations"
    ).fetchall()
    return {r[0]: Applied(r[0], r[1], r[2]) for r in rows}


#: schemas of PostgreSQL and of the Supabase platform: their tables are not the app's
PLATFORM_SCHEMAS = (
    "pg_catalog", "information_schema", "pg_toast", "auth", "storage", "realtime", "_realtime",
    "extensions", "graphql", "graphql_public", "vault", "pgsodium", "pgsodium_masks",
    "supabase_functions", "supabase_migrations", "net", "cron", "pgbouncer", "_analytics",
)  # fmt: skip


def app_tables(conn: Any, limit: int = 3) -> list[str]:
    """A few tables of the app's own (outside the platform's schemas): a database with
    some is in use, even with no migration history."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) "
        "AND n.nspname NOT LIKE 'pg_temp%%' ORDER BY 1 LIMIT %s",
        (list(PLATFORM_SCHEMAS), limit),
    ).fetchall()
    return [r[0] for r in rows]


def read_progress(conn: Any) -> dict[str, Partial]:
    row = conn.execute("SELECT to_regclass('supabase_migrations.shipcaptain_progress')")
    if row.fetchone()[0] is None:
        return {}
    rows = conn.execute(
        "SELECT version, checksum, statements_done FROM supabase_migrations.shipcaptain_progress"
    ).fetchall()
    return {r[0]: Partial(r[0], r[1], r[2]) for r in rows}


def save_progress(conn: Any, version: str, checksum: str, done: int) -> None:
    conn.execute(PROGRESS_DDL)
    conn.execute(
        "INSERT INTO supabase_migrations.shipcaptain_progress (version, checksum, "
        "statements_done) VALUES (%s, %s, %s) ON CONFLICT (version) DO UPDATE SET "
        "statements_done = excluded.statements_done, updated_at = now()",
        (version, checksum, done),
    )


def record(
    conn: Any,
    have: set[str],
    version: str,
    name: str,
    statements: list[str],
    checksum: str,
    who: str,
) -> None:
    """The history row, in the columns the table has; clears the file's progress."""
    values: dict[str, Any] = {"version": version, "name": name, "statements": statements}
    values.update({"checksum": checksum, "applied_by": who})
    cols = [c for c in values if c in have]
    conn.execute(
        f"INSERT INTO supabase_migrations.schema_migrations ({', '.join(cols)}) "
        f"VALUES ({', '.join(['%s'] * len(cols))})",
        [values[c] for c in cols],
    )
    if conn.execute("SELECT to_regclass('supabase_migrations.shipcaptain_progress')").fetchone()[0]:
        conn.execute(
            "DELETE FROM supabase_migrations.shipcaptain_progress WHERE version = %s", (version,)
        )
