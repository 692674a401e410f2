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

-- name: try_start
-- queries.sql's try_start, and the audit chain's lock taken in the same round trip (the
-- event of the try's start is appended in this transaction). What it reads is the step's
-- own rows, which only the step's writer changes, so reading them in this statement's
-- snapshot (taken before the lock) is reading them after it; the chain's head is read in
-- a statement of its own, after the lock.
SELECT
    (SELECT 1 FROM (SELECT pg_advisory_xact_lock(CAST(:audit_key AS BIGINT))) AS l)
        AS audit_locked,
    (SELECT 1 FROM sc_releases WHERE id = :release_id) AS release_found,
    (SELECT status FROM sc_step_results
     WHERE release_id = :release_id AND run = :run AND step_id = :step_id) AS result,
    (SELECT status FROM sc_step_runs
     WHERE release_id = :release_id AND run = :run AND step_id = :step_id
     ORDER BY attempt DESC LIMIT 1) AS try_status,
    (SELECT MAX(attempt) FROM sc_step_runs
     WHERE release_id = :release_id AND run = :run AND step_id = :step_id) AS newest_attempt,
    t.*
FROM (SELECT 1 AS one) AS o
LEFT JOIN sc_step_runs AS t
    ON t.release_id = :release_id AND t.step_id = :step_id AND t.run = :run
    AND t.attempt = :attempt;

-- name: result_start
-- queries.sql's result_start, and the audit chain's lock taken in the same round trip
-- (see try_start).
SELECT
    (SELECT 1 FROM (SELECT pg_advisory_xact_lock(CAST(:audit_key AS BIGINT))) AS l)
        AS audit_locked,
    (SELECT status FROM sc_step_results
     WHERE release_id = :release_id AND run = :run AND step_id = :step_id) AS result,
    (SELECT status FROM sc_step_runs
     WHERE release_id = :release_id AND run = :run AND step_id = :step_id
     ORDER BY attempt DESC LIMIT 1) AS try_status;
