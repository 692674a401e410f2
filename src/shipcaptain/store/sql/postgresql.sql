-- Named queries only the PostgreSQL backend runs.

-- name: create_schema_version_table
-- The table of applied migrations (made before the first migration runs).
CREATE TABLE IF NOT EXISTS sc_schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);

-- name: advisory_xact_lock
-- Serialise a critical section (migrations, appends to the audit chain) across processes
-- until the transaction ends.
SELECT pg_advisory_xact_lock(CAST(:key AS BIGINT));
