-- Named queries only the SQLite backend runs.

-- name: create_schema_version_table
-- The table of applied migrations (made before the first migration runs).
CREATE TABLE IF NOT EXISTS sc_schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
