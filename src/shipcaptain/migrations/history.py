"""The history table, compatible with Supabase's ``supabase_migrations.schema_migrations``
(version, name, statements) plus checksum, applied_by and applied_at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HISTORY_DDL = """
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
    version text PRIMARY KEY, statements text[], name text);
ALTER TABLE supabase_migrations.schema_migrations
    ADD COLUMN IF NOT EXISTS checksum text,
    ADD COLUMN IF NOT EXISTS applied_by text,
    ADD COLUMN IF NOT EXISTS applied_at timestamptz DEFAULT now();
"""

#: one key for every shipcaptain migrator: two releases never migrate one database at once
ADVISORY_LOCK_KEY = 0x5C1A_7A1E


@dataclass(frozen=True)
class Applied:
    version: str
    name: str | None
    checksum: str | None


def ensure_history(conn: Any) -> None:
    with conn.transaction():
        conn.execute(HISTORY_DDL)


def read_history(conn: Any) -> dict[str, Applied]:
    """Applied migrations by version; empty if the table does not exist (nothing applied)."""
    row = conn.execute(
        "SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL"
    ).fetchone()
    if not row[0]:
        return {}
    has_checksum = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema='supabase_migrations' "
        "AND table_name='schema_migrations' AND column_name='checksum'"
    ).fetchone()
    cols = "version, name, checksum" if has_checksum else "version, name, NULL"
    rows = conn.execute(f"SELECT {cols} FROM supabase_migrations.schema_migrations").fetchall()
    return {r[0]: Applied(r[0], r[1], r[2]) for r in rows}


def record(
    conn: Any, version: str, name: str, statements: list[str], checksum: str, who: str
) -> None:
    conn.execute(
        "INSERT INTO supabase_migrations.schema_migrations "
        "(version, name, statements, checksum, applied_by, applied_at) "
        "VALUES (%s, %s, %s, %s, %s, now())",
        (version, name, statements, checksum, who),
    )
