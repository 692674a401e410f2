-- Named queries shared by the SQLite and PostgreSQL backends.
-- Parameters are :named. An optional filter is written
-- "CAST(:x AS TEXT) IS NULL OR col = :x" so PostgreSQL knows the type of a NULL.
-- Timestamps are passed as ISO 8601 text in UTC; JSON values as JSON text.

-- name: list_schema_versions
-- The migrations applied so far.
SELECT version FROM sc_schema_version ORDER BY version;

-- name: insert_schema_version
-- Record that a migration was applied.
INSERT INTO sc_schema_version (version, name, applied_at)
VALUES (:version, :name, :applied_at);

-- name: insert_release
-- Create a release; a replayed create of the same id changes nothing. :outline is its
-- runbook's outline as JSON text (NULL: none recorded).
INSERT INTO sc_releases (
    id, runbook_name, runbook_digest, runbook_text, runbook_path, workdir, environment,
    params, status, run, started_by, created_at, started_at, ended_at, reason, executor_id,
    outline
) VALUES (
    :id, :runbook_name, :runbook_digest, :runbook_text, :runbook_path, :workdir, :environment,
    :params, :status, :run, :started_by, :created_at, :started_at, :ended_at, :reason, :executor_id,
    :outline
)
ON CONFLICT (id) DO NOTHING;

-- name: get_release
-- One release by id.
SELECT * FROM sc_releases WHERE id = :id;

-- name: get_release_outline
-- The outline recorded with a release when it was created (NULL: none).
SELECT outline FROM sc_releases WHERE id = :id;

-- name: list_releases
-- Releases, newest first, optionally of one status, environment, runbook and/or starter;
-- a page of them (:offset skips the newer ones).
SELECT * FROM sc_releases
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:environment AS TEXT) IS NULL OR environment = :environment)
  AND (CAST(:runbook AS TEXT) IS NULL OR runbook_name = :runbook)
  AND (CAST(:started_by AS TEXT) IS NULL OR started_by = :started_by)
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: live_releases
-- What is live: of each runbook in each environment, the newest release that succeeded
-- (newest as list_releases orders them), optionally of one environment and/or runbook;
-- by environment, then runbook. No cap: one row per environment and runbook.
SELECT * FROM sc_releases
WHERE id IN (
    SELECT id FROM (
        SELECT r.id, ROW_NUMBER() OVER (
            PARTITION BY r.environment, r.runbook_name ORDER BY r.created_at DESC, r.id DESC
        ) AS newest
        FROM sc_releases r
        WHERE r.status = 'succeeded'
          AND (CAST(:environment AS TEXT) IS NULL OR r.environment = :environment)
          AND (CAST(:runbook AS TEXT) IS NULL OR r.runbook_name = :runbook)
    ) AS ranked
    WHERE newest = 1
)
ORDER BY environment, runbook_name;

-- name: active_releases
-- The releases not finished (pending, running, waiting, failing, rolling back), newest
-- first, optionally of one environment, runbook and/or starter. No cap.
SELECT * FROM sc_releases
WHERE status IN ('pending', 'running', 'waiting', 'failing', 'rolling_back')
  AND (CAST(:environment AS TEXT) IS NULL OR environment = :environment)
  AND (CAST(:runbook AS TEXT) IS NULL OR runbook_name = :runbook)
  AND (CAST(:started_by AS TEXT) IS NULL OR started_by = :started_by)
ORDER BY created_at DESC, id DESC;

-- name: update_release
-- Change the given fields of a release; a NULL parameter leaves its field as it is.
UPDATE sc_releases SET
    status = COALESCE(:status, status),
    run = COALESCE(:run, run),
    started_at = COALESCE(:started_at, started_at),
    ended_at = COALESCE(:ended_at, ended_at),
    reason = COALESCE(:reason, reason),
    executor_id = COALESCE(:executor_id, executor_id)
WHERE id = :id;

-- name: release_waits_for_gate
-- A running release is waiting while a gate of it is open (in the gate's transaction).
UPDATE sc_releases SET status = 'waiting' WHERE id = :id AND status = 'running';

-- name: release_runs_after_gates
-- A waiting release runs again once none of its gates is still open.
UPDATE sc_releases SET status = 'running'
WHERE id = :id AND status = 'waiting'
  AND NOT EXISTS (SELECT 1 FROM sc_gates WHERE release_id = :id AND status = 'waiting');

-- name: begin_run
-- A new run of a release (resume): pending again, with no end and no reason, and run by no
-- process yet (the one that starts it says so): a worker must not take the new run over
-- from the gone process of the run before.
UPDATE sc_releases
SET status = 'pending', run = :run, ended_at = NULL, reason = NULL, executor_id = NULL
WHERE id = :id;

-- name: upsert_step_run
-- Write one try of a step. Writing it again is harmless, and a finished try is never
-- moved back to pending, running or waiting (a replayed "started" write after "finished").
INSERT INTO sc_step_runs (
    release_id, step_id, run, attempt, status, started_at, ended_at, summary, detail,
    outputs, already_done
) VALUES (
    :release_id, :step_id, :run, :attempt, :status, :started_at, :ended_at, :summary, :detail,
    :outputs, :already_done
)
ON CONFLICT (release_id, step_id, run, attempt) DO UPDATE SET
    status = excluded.status,
    started_at = COALESCE(sc_step_runs.started_at, excluded.started_at),
    ended_at = COALESCE(excluded.ended_at, sc_step_runs.ended_at),
    summary = excluded.summary,
    detail = excluded.detail,
    outputs = excluded.outputs,
    already_done = excluded.already_done
WHERE sc_step_runs.status NOT IN ('succeeded', 'failed', 'skipped', 'cancelled', 'timed_out')
   OR excluded.status IN ('succeeded', 'failed', 'skipped', 'cancelled', 'timed_out');

-- name: get_step_run
-- One try of a step.
SELECT * FROM sc_step_runs
WHERE release_id = :release_id AND step_id = :step_id AND run = :run AND attempt = :attempt;

-- name: list_step_runs
-- Every try of every step of a release, in the order they started.
SELECT * FROM sc_step_runs
WHERE release_id = :release_id
ORDER BY run, started_at NULLS LAST, step_id, attempt;

-- name: succeeded_step_run
-- The newest try of a step that succeeded, in any run of the release.
SELECT * FROM sc_step_runs
WHERE release_id = :release_id AND step_id = :step_id AND status = 'succeeded'
ORDER BY run DESC, attempt DESC
LIMIT 1;

-- name: insert_gate
-- Open a gate; opening it again (a replay) changes nothing.
INSERT INTO sc_gates (
    release_id, step_id, run, kind, prompt, roles, people, quorum, deadline_at, evidence,
    status, opened_at, closed_at
) VALUES (
    :release_id, :step_id, :run, :kind, :prompt, :roles, :people, :quorum, :deadline_at,
    :evidence, :status, :opened_at, :closed_at
)
ON CONFLICT (release_id, step_id, run) DO NOTHING;

-- name: get_gate
-- The gate of a step in one run of a release.
SELECT * FROM sc_gates WHERE release_id = :release_id AND step_id = :step_id AND run = :run;

-- name: get_newest_gate
-- The gate of a step in the newest run that opened one.
SELECT * FROM sc_gates
WHERE release_id = :release_id AND step_id = :step_id
ORDER BY run DESC
LIMIT 1;

-- name: list_gates
-- Gates, oldest first, optionally of one status and/or release.
SELECT * FROM sc_gates
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:release_id AS TEXT) IS NULL OR release_id = :release_id)
ORDER BY opened_at, release_id, step_id, run;

-- name: waiting_gates_undecided_by
-- The gates still waiting of releases still waiting (optionally of one environment,
-- runbook and/or starter) at which :user_name has not decided in that run: newest
-- release first, then the gate opened first. No cap.
SELECT g.* FROM sc_gates g
JOIN sc_releases r ON r.id = g.release_id
WHERE g.status = 'waiting'
  AND r.status = 'waiting'
  AND (CAST(:environment AS TEXT) IS NULL OR r.environment = :environment)
  AND (CAST(:runbook AS TEXT) IS NULL OR r.runbook_name = :runbook)
  AND (CAST(:started_by AS TEXT) IS NULL OR r.started_by = :started_by)
  AND NOT EXISTS (
      SELECT 1 FROM sc_decisions d
      WHERE d.release_id = g.release_id AND d.step_id = g.step_id AND d.run = g.run
        AND d.user_name = :user_name
  )
ORDER BY r.created_at DESC, r.id DESC, g.opened_at, g.step_id;

-- name: releases_waiting_for_gates_undecided_by
-- The releases of waiting_gates_undecided_by's gates (the same filters), each once.
SELECT r.* FROM sc_releases r
WHERE r.status = 'waiting'
  AND (CAST(:environment AS TEXT) IS NULL OR r.environment = :environment)
  AND (CAST(:runbook AS TEXT) IS NULL OR r.runbook_name = :runbook)
  AND (CAST(:started_by AS TEXT) IS NULL OR r.started_by = :started_by)
  AND EXISTS (
      SELECT 1 FROM sc_gates g
      WHERE g.release_id = r.id AND g.status = 'waiting'
        AND NOT EXISTS (
            SELECT 1 FROM sc_decisions d
            WHERE d.release_id = g.release_id AND d.step_id = g.step_id AND d.run = g.run
              AND d.user_name = :user_name
        )
  );

-- name: close_gate
-- Close a gate that still waits.
UPDATE sc_gates SET status = :status, closed_at = :closed_at
WHERE release_id = :release_id AND step_id = :step_id AND run = :run AND status = 'waiting';

-- name: insert_decision
-- Record a person's decision; the same person deciding again at the same gate changes nothing.
INSERT INTO sc_decisions (
    release_id, step_id, run, user_name, role, decision, comment, at, evidence
) VALUES (
    :release_id, :step_id, :run, :user_name, :role, :decision, :comment, :at, :evidence
)
ON CONFLICT (release_id, step_id, run, user_name) DO NOTHING;

-- name: get_decision
-- One person's decision at a gate.
SELECT * FROM sc_decisions
WHERE release_id = :release_id AND step_id = :step_id AND run = :run AND user_name = :user_name;

-- name: list_decisions
-- The decisions taken in a release, optionally at one step, in the order they were taken.
SELECT * FROM sc_decisions
WHERE release_id = :release_id
  AND (CAST(:step_id AS TEXT) IS NULL OR step_id = :step_id)
ORDER BY at, step_id, run, user_name;

-- name: last_event
-- The end of the audit chain (read while holding the chain's lock).
SELECT seq, hash FROM sc_events ORDER BY seq DESC LIMIT 1;

-- name: insert_event
-- Append one event to the audit chain.
INSERT INTO sc_events (seq, at, release_id, step_id, kind, actor, message, data, prev_hash, hash, mac)
VALUES (:seq, :at, :release_id, :step_id, :kind, :actor, :message, :data, :prev_hash, :hash, :mac);

-- name: events_of_kind
-- The events of one kind, of one release or of none (an incident's reminders and
-- escalations: a few per incident), in order.
SELECT * FROM sc_events
WHERE kind = :kind
  AND (release_id = :release_id OR (release_id IS NULL AND CAST(:release_id AS TEXT) IS NULL))
ORDER BY seq;

-- name: get_event
-- One event by its sequence number.
SELECT * FROM sc_events WHERE seq = :seq;

-- name: release_event_span
-- The first and last sequence numbers of a release's events (NULL when it has none).
SELECT MIN(seq) AS first_seq, MAX(seq) AS last_seq FROM sc_events WHERE release_id = :release_id;

-- name: events_between
-- Every event from one sequence number to another (both included), in order.
SELECT * FROM sc_events WHERE seq >= :first_seq AND seq <= :last_seq ORDER BY seq;

-- name: list_events
-- Events after a sequence number, in order, optionally of one release.
SELECT * FROM sc_events
WHERE seq > :after_seq
  AND (CAST(:release_id AS TEXT) IS NULL OR release_id = :release_id)
ORDER BY seq
LIMIT :limit;

-- name: upsert_worker
-- A process says it is alive; a new pid or host under the same executor id is a restart.
INSERT INTO sc_workers (executor_id, pid, hostname, kind, started_at, heartbeat_at)
VALUES (:executor_id, :pid, :hostname, :kind, :now, :now)
ON CONFLICT (executor_id) DO UPDATE SET
    started_at = CASE
        WHEN sc_workers.pid = excluded.pid AND sc_workers.hostname = excluded.hostname
        THEN sc_workers.started_at
        ELSE excluded.started_at
    END,
    pid = excluded.pid,
    hostname = excluded.hostname,
    kind = excluded.kind,
    heartbeat_at = excluded.heartbeat_at;

-- name: get_worker
-- One process by executor id.
SELECT * FROM sc_workers WHERE executor_id = :executor_id;

-- name: list_workers
-- Every process known, by executor id.
SELECT * FROM sc_workers ORDER BY executor_id;

-- name: forget_worker
-- A process that stopped and handed its releases over: no longer listed.
DELETE FROM sc_workers WHERE executor_id = :executor_id;

-- name: insert_step_result
-- Record a step's final result in a run; a second write (a replay) changes nothing. The
-- result as written, or no row when one was recorded before.
INSERT INTO sc_step_results (release_id, run, step_id, status, result, recorded_at)
VALUES (:release_id, :run, :step_id, :status, :result, :recorded_at)
ON CONFLICT (release_id, run, step_id) DO NOTHING
RETURNING result;

-- name: get_step_result
-- One step's final result in one run.
SELECT result FROM sc_step_results WHERE release_id = :release_id AND run = :run AND step_id = :step_id;

-- name: list_step_results
-- The final results of the steps of one run that have ended.
SELECT step_id, result FROM sc_step_results WHERE release_id = :release_id AND run = :run;

-- name: releases_run_by
-- The unfinished releases a process runs.
SELECT * FROM sc_releases
WHERE executor_id = :executor_id
  AND status IN ('pending', 'running', 'waiting', 'failing', 'rolling_back')
ORDER BY created_at, id;

-- name: request_env_lock
-- Ask for an environment lock (asking again keeps the first request's time).
INSERT INTO sc_env_locks (service, environment, release_id, requested_at)
VALUES (:service, :environment, :release_id, :asked)
ON CONFLICT (service, environment, release_id) DO NOTHING;

-- name: env_lock_queue
-- The unfinished releases of a service to an environment in turn order: the holder first,
-- then by when each asked for the lock (or, if it has not asked yet, was created). A
-- rollback people asked for has no place until it asks (once approved): one waiting for
-- its approval holds nobody up.
SELECT r.id AS release_id
FROM sc_releases r
LEFT JOIN sc_env_locks l
  ON l.release_id = r.id AND l.service = :service AND l.environment = :environment
WHERE r.runbook_name = :service AND r.environment = :environment
  AND r.status IN ('pending', 'running', 'waiting', 'failing', 'rolling_back')
  AND (r.status <> 'rolling_back' OR l.release_id IS NOT NULL)
ORDER BY CASE WHEN l.acquired_at IS NULL THEN 1 ELSE 0 END,
         COALESCE(l.requested_at, r.created_at), r.id;

-- name: acquire_env_lock
-- The asker at the head of the queue takes the lock.
UPDATE sc_env_locks SET acquired_at = :now
WHERE service = :service AND environment = :environment AND release_id = :release_id
  AND acquired_at IS NULL;

-- name: drop_env_lock
-- A release gives its lock (or its place in the queue) back.
DELETE FROM sc_env_locks
WHERE service = :service AND environment = :environment AND release_id = :release_id;

-- name: drop_env_locks_of
-- A release gives back every environment lock it holds or asked for (a new run).
DELETE FROM sc_env_locks WHERE release_id = :release_id;

-- name: last_worker_takeover_or_pickup
-- The newest takeover of a release by a worker, or its pick-up from the release queue.
SELECT * FROM sc_events
WHERE release_id = :release_id AND actor = 'engine'
  AND kind IN ('release.taken_over', 'release.picked_up')
ORDER BY seq DESC
LIMIT 1;

-- name: insert_takeover
-- Claim the takeover of a release from one incarnation of a gone process (first wins).
INSERT INTO sc_takeovers (release_id, from_executor, from_started_at, to_executor, at)
VALUES (:release_id, :from_executor, :from_started_at, :to_executor, :at)
ON CONFLICT (release_id, from_executor, from_started_at) DO NOTHING;

-- name: insert_incident
-- Open an incident; opening the same id again (a replay) changes nothing.
INSERT INTO sc_incidents (
    id, release_id, severity, summary, status, owners, opened_by, opened_at,
    acknowledge_by, mitigate_by
) VALUES (
    :id, :release_id, :severity, :summary, 'open', :owners, :opened_by, :opened_at,
    :acknowledge_by, :mitigate_by
)
ON CONFLICT (id) DO NOTHING;

-- name: get_incident
-- One incident by id.
SELECT * FROM sc_incidents WHERE id = :id;

-- name: list_incidents
-- Every incident, newest first (a period is picked out by the caller).
SELECT * FROM sc_incidents ORDER BY opened_at DESC, id;

-- name: open_incident_of_release
-- The newest incident of a release that is not resolved yet.
SELECT * FROM sc_incidents WHERE release_id = :release_id AND status <> 'resolved'
ORDER BY opened_at DESC LIMIT 1;

-- name: unmitigated_incidents_of_release
-- A release's incidents that nobody has mitigated yet, oldest first.
SELECT * FROM sc_incidents WHERE release_id = :release_id AND mitigated_at IS NULL
ORDER BY opened_at, id;

-- name: acknowledge_incident
-- The first acknowledgement counts; a later one changes nothing.
UPDATE sc_incidents SET acknowledged_at = :at, acknowledged_by = :by,
    status = CASE WHEN status = 'open' THEN 'acknowledged' ELSE status END
WHERE id = :id AND acknowledged_at IS NULL;

-- name: mitigate_incident
-- The first mitigation counts (it acknowledges too, if nobody had).
UPDATE sc_incidents SET mitigated_at = :at, mitigated_by = :by, mitigation = :mitigation,
    acknowledged_at = COALESCE(acknowledged_at, :at),
    acknowledged_by = COALESCE(acknowledged_by, :by),
    status = CASE WHEN status = 'resolved' THEN status ELSE 'mitigated' END
WHERE id = :id AND mitigated_at IS NULL;

-- name: resolve_incident
-- Resolve an incident (it counts as mitigated then, if it was not).
UPDATE sc_incidents SET resolved_at = :at, resolved_by = :by, status = 'resolved',
    acknowledged_at = COALESCE(acknowledged_at, :at),
    acknowledged_by = COALESCE(acknowledged_by, :by),
    mitigated_at = COALESCE(mitigated_at, :at),
    mitigated_by = COALESCE(mitigated_by, :by)
WHERE id = :id AND resolved_at IS NULL;

-- name: insert_notification
-- Record a notification sent or given up on.
INSERT INTO sc_notifications (
    id, release_id, incident_id, kind, channel, text, status, attempts, error, at
) VALUES (
    :id, :release_id, :incident_id, :kind, :channel, :text, :status, :attempts, :error, :at
)
ON CONFLICT (id) DO NOTHING;

-- name: list_notifications
-- The notifications of a release, oldest first.
SELECT * FROM sc_notifications WHERE release_id = :release_id ORDER BY at, id;

-- name: list_incident_notifications
-- The notifications of an incident, oldest first.
SELECT * FROM sc_notifications WHERE incident_id = :incident_id ORDER BY at, id;

-- name: get_release_thread
-- The Slack thread of a release in a channel.
SELECT ts FROM sc_release_threads WHERE release_id = :release_id AND channel = :channel;

-- name: insert_release_thread
-- Remember a release's thread in a channel (the first one stays).
INSERT INTO sc_release_threads (release_id, channel, ts) VALUES (:release_id, :channel, :ts)
ON CONFLICT (release_id, channel) DO NOTHING;

-- name: upsert_person
-- Add a person or replace what is known of them (the team file is the source).
INSERT INTO sc_people (
    name, display_name, email, slack_id, roles, surfaces, admin, active, updated_at
)
VALUES (
    :name, :display_name, :email, :slack_id, :roles, :surfaces, :admin, :active, :updated_at
)
ON CONFLICT (name) DO UPDATE SET
    display_name = excluded.display_name,
    email = excluded.email,
    slack_id = excluded.slack_id,
    roles = excluded.roles,
    surfaces = excluded.surfaces,
    admin = excluded.admin,
    active = excluded.active,
    updated_at = excluded.updated_at;

-- name: deactivate_person
-- Someone no longer in the team file stays known (for the audit) but is inactive.
UPDATE sc_people SET active = 0, updated_at = :updated_at WHERE name = :name AND active = 1;

-- name: get_person
-- One person by name.
SELECT * FROM sc_people WHERE name = :name;

-- name: list_people
-- Everyone known, by name.
SELECT * FROM sc_people ORDER BY name;

-- name: insert_token
-- A new API token (only the hash of its secret).
INSERT INTO sc_tokens (
    id, person, label, secret_hash, created_at, created_by, expires_at, revoked_at, revoked_by
) VALUES (
    :id, :person, :label, :secret_hash, :created_at, :created_by, :expires_at, NULL, NULL
);

-- name: get_token_by_hash
-- The token whose secret hashes to :secret_hash.
SELECT * FROM sc_tokens WHERE secret_hash = :secret_hash;

-- name: get_token
-- One token by id.
SELECT * FROM sc_tokens WHERE id = :id;

-- name: list_tokens
-- Tokens, optionally of one person, oldest first.
SELECT * FROM sc_tokens
WHERE (CAST(:person AS TEXT) IS NULL OR person = :person)
ORDER BY created_at, id;

-- name: revoke_token
-- Revoke a token; revoking it again keeps the first revocation.
UPDATE sc_tokens SET revoked_at = :revoked_at, revoked_by = :revoked_by
WHERE id = :id AND revoked_at IS NULL;

-- name: count_live_admin_tokens
-- Unrevoked, unexpired tokens of active admins (none: the team can be bootstrapped).
SELECT COUNT(*) AS n FROM sc_tokens t JOIN sc_people p ON p.name = t.person
WHERE p.admin = 1 AND p.active = 1 AND t.revoked_at IS NULL
  AND (t.expires_at IS NULL OR t.expires_at > :now);

-- name: get_team_policy
-- The team's permissions and environments, if a team file set them.
SELECT permissions, environments FROM sc_team_policy WHERE id = 1;

-- name: put_team_policy
-- Set the team's permissions and environments.
INSERT INTO sc_team_policy (id, permissions, environments, updated_at)
VALUES (1, :permissions, :environments, :updated_at)
ON CONFLICT (id) DO UPDATE SET
    permissions = excluded.permissions,
    environments = excluded.environments,
    updated_at = excluded.updated_at;

-- name: list_runbook_rules
-- The allow-list of runbooks, by environment.
SELECT * FROM sc_runbook_allowlist ORDER BY environment, kind, value;

-- name: insert_runbook_rule
-- Allow a runbook (by digest or by name) in an environment; allowing it again changes nothing.
INSERT INTO sc_runbook_allowlist (environment, kind, value, added_by, added_at, note)
VALUES (:environment, :kind, :value, :added_by, :added_at, :note)
ON CONFLICT (environment, kind, value) DO NOTHING;

-- name: delete_runbook_rule
-- Take an entry off the allow-list.
DELETE FROM sc_runbook_allowlist WHERE environment = :environment AND kind = :kind AND value = :value;

-- name: insert_web_session
-- A dashboard session (only the hash of its id is kept).
INSERT INTO sc_web_sessions (id_hash, person, token_id, csrf, created_at, expires_at)
VALUES (:id_hash, :person, :token_id, :csrf, :created_at, :expires_at);

-- name: get_web_session
-- One session by the hash of its id.
SELECT * FROM sc_web_sessions WHERE id_hash = :id_hash;

-- name: end_web_session
-- End one session (sign-out); ending it again keeps the first end.
UPDATE sc_web_sessions SET ended_at = :ended_at, ended_by = :ended_by
WHERE id_hash = :id_hash AND ended_at IS NULL;

-- name: end_token_sessions
-- End every session a token opened (the token was revoked).
UPDATE sc_web_sessions SET ended_at = :ended_at, ended_by = :ended_by
WHERE token_id = :token_id AND ended_at IS NULL;

-- name: step_status_in_run
-- What a step is in a run, for the before and after of its events: its recorded result,
-- else its newest try's status (pending when it has none).
SELECT
    (SELECT status FROM sc_step_results
     WHERE release_id = :release_id AND run = :run AND step_id = :step_id) AS result,
    (SELECT status FROM sc_step_runs
     WHERE release_id = :release_id AND run = :run AND step_id = :step_id
     ORDER BY attempt DESC LIMIT 1) AS try_status;

-- name: try_start
-- Before a try of a step is written, in one statement: whether the release exists, what
-- the step is in the run (as step_status_in_run, and its newest try's attempt) and the same
-- try as stored before (its columns NULL when it has none). PostgreSQL's takes the audit
-- chain's lock too (postgresql.sql).
SELECT
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
-- Before a step's result is written: what the step is in the run (step_status_in_run).
-- PostgreSQL's takes the audit chain's lock too (postgresql.sql).
{{step_status_in_run}};

-- name: step_start_tries
-- Every try of every step of a release, for what the engine reads before a step starts:
-- without their times and live output (detail), which it does not use and which grow with
-- the release (every step reads every try).
SELECT release_id, step_id, run, attempt, status, summary, outputs, already_done
FROM sc_step_runs
WHERE release_id = :release_id;

-- name: step_start_own_tries
-- The tries of one step of a release (step_start_tries's columns): what a step's start
-- reads when it needs no other step's outputs, so its read does not grow with the release.
SELECT release_id, step_id, run, attempt, status, summary, outputs, already_done
FROM sc_step_runs
WHERE release_id = :release_id AND step_id = :step_id;
