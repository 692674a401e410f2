-- People and their API tokens (issue 6). A person's roles are per environment (a JSON
-- object: environment or "*" -> list of roles); surfaces are what a feature owner owns.
CREATE TABLE sc_people (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    roles TEXT NOT NULL DEFAULT '{}',
    surfaces TEXT NOT NULL DEFAULT '[]',
    admin INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);

-- API tokens: only the SHA-256 of the secret is kept; the secret is shown once.
CREATE TABLE sc_tokens (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    revoked_by TEXT
);
CREATE INDEX sc_tokens_person ON sc_tokens (person);

-- The team's permissions (the team file's "permissions" section): one row.
CREATE TABLE sc_team_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    permissions TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL
);

-- What the approver saw: the gate's evidence at the moment of the decision.
ALTER TABLE sc_decisions ADD COLUMN evidence TEXT NOT NULL DEFAULT '{}';

-- The audit log is append-only: a change or removal through SQL is refused.
CREATE TRIGGER sc_events_no_update BEFORE UPDATE ON sc_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER sc_events_no_delete BEFORE DELETE ON sc_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
