-- Named queries only the SQLite backend runs.

-- name: has_schema_version_table
-- Whether the table of applied migrations exists (a database never migrated has none).
SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'sc_schema_version';

-- name: create_schema_version_table
-- The table of applied migrations (made before the first migration runs).
CREATE TABLE IF NOT EXISTS sc_schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
