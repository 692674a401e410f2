-- shipcaptain's own tables on SQLite, version 1.
-- Timestamps are ISO 8601 text in UTC with microseconds (fixed width, so they sort as times);
-- JSON values are text. Statements end with ";" at the end of a line.

CREATE TABLE sc_releases (
    id TEXT PRIMARY KEY,
    runbook_name TEXT NOT NULL,
    runbook_digest TEXT NOT NULL,
    runbook_text TEXT NOT NULL,
    runbook_path TEXT,
    workdir TEXT,
    environment TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    run INTEGER NOT NULL DEFAULT 1,
    started_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    reason TEXT,
    executor_id TEXT
);

CREATE INDEX sc_releases_created_idx ON sc_releases (created_at, id);

CREATE INDEX sc_releases_status_idx ON sc_releases (status, created_at);

CREATE INDEX sc_releases_environment_idx ON sc_releases (environment, created_at);

CREATE TABLE sc_step_runs (
    release_id TEXT NOT NULL REFERENCES sc_releases (id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    run INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    summary TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    outputs TEXT NOT NULL DEFAULT '{}',
    already_done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (release_id, step_id, run, attempt)
);

CREATE TABLE sc_gates (
    release_id TEXT NOT NULL REFERENCES sc_releases (id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    run INTEGER NOT NULL,
    kind TEXT NOT NULL,
    prompt TEXT NOT NULL,
    roles TEXT NOT NULL DEFAULT '[]',
    people TEXT NOT NULL DEFAULT '[]',
    quorum INTEGER NOT NULL DEFAULT 1,
    deadline_at TEXT,
    evidence TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT,
    PRIMARY KEY (release_id, step_id, run)
);

CREATE INDEX sc_gates_status_idx ON sc_gates (status, opened_at);

CREATE TABLE sc_decisions (
    release_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    run INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    role TEXT,
    decision TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    PRIMARY KEY (release_id, step_id, run, user_name),
    FOREIGN KEY (release_id, step_id, run)
        REFERENCES sc_gates (release_id, step_id, run) ON DELETE CASCADE
);

-- The audit log has no foreign key: it outlives the releases it tells about.
CREATE TABLE sc_events (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    release_id TEXT,
    step_id TEXT,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL
);

CREATE INDEX sc_events_release_idx ON sc_events (release_id, seq);

CREATE TABLE sc_workers (
    executor_id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
