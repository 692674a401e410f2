-- Named queries only the PostgreSQL backend runs.

-- name: has_schema_version_table
-- Whether the table of applied migrations exists (a database never migrated has none).
SELECT 1 AS found WHERE to_regclass('sc_schema_version') IS NOT NULL;

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

-- name: try_start
-- queries.sql's try_start, and the audit chain's lock taken in the same round trip (the
-- event of the try's start is appended in this transaction). What it reads is the step's
-- own rows, which only the step's writer changes, so reading them in this statement's
-- snapshot (taken before the lock) is reading them after it; the chain's head is read in
-- a statement of its own, after the lock. Its commit does not wait for the WAL's flush
-- (SET LOCAL synchronous_commit = off, as SQLite's NORMAL for the same write: a try's
-- start lost in a crash of the server is a try that never started; the step's result, a
-- synchronous commit, flushes it with itself), unless the action looks for its earlier
-- tries' work from that start (:synchronous_commit 'on').
SELECT
    (SELECT 1 FROM (SELECT pg_advisory_xact_lock(CAST(:audit_key AS BIGINT))) AS l)
        AS audit_locked,
    set_config('synchronous_commit', :synchronous_commit, true) AS synchronous_commit,
    shared.*
FROM ({{try_start}}) AS shared;

-- name: result_start
-- queries.sql's result_start, and the audit chain's lock taken in the same round trip
-- (see try_start).
SELECT
    (SELECT 1 FROM (SELECT pg_advisory_xact_lock(CAST(:audit_key AS BIGINT))) AS l)
        AS audit_locked,
    shared.*
FROM ({{result_start}}) AS shared;

-- name: upsert_step_run_head
-- queries.sql's upsert_step_run, and the audit chain's head (as last_event; NULLs for an
-- empty log) read in the same round trip: only after try_start or result_start took the
-- chain's lock in an earlier statement of the transaction (this statement's snapshot is
-- taken after it).
WITH written AS (
    {{upsert_step_run}}
    RETURNING 1 AS one
)
SELECT (SELECT COUNT(*) FROM written) AS written, h.seq, h.hash
FROM (SELECT 1 AS one) AS o
LEFT JOIN (SELECT seq, hash FROM sc_events ORDER BY seq DESC LIMIT 1) AS h ON TRUE;

-- name: record_result_head
-- queries.sql's upsert_step_run (the step's last try), insert_step_result (its status as
-- :result_status; the result as written, NULL when one was recorded before) and the audit
-- chain's head, in one round trip (see upsert_step_run_head).
WITH written AS (
    {{upsert_step_run}}
    RETURNING 1 AS one
), recorded AS (
    INSERT INTO sc_step_results (release_id, run, step_id, status, result, recorded_at)
    VALUES (:release_id, :run, :step_id, :result_status, :result, :recorded_at)
    ON CONFLICT (release_id, run, step_id) DO NOTHING
    RETURNING result
)
SELECT (SELECT COUNT(*) FROM written) AS written, (SELECT result FROM recorded) AS result,
    h.seq, h.hash
FROM (SELECT 1 AS one) AS o
LEFT JOIN (SELECT seq, hash FROM sc_events ORDER BY seq DESC LIMIT 1) AS h ON TRUE;
