-- Which runbooks may run where (issue 17): the team file's environments (protected or not)
-- beside its permissions, and the allow-list the admins keep per environment.
ALTER TABLE sc_team_policy ADD COLUMN environments JSONB NOT NULL DEFAULT '{}';

CREATE TABLE sc_runbook_allowlist (
    environment TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('digest', 'name')),
    value TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TIMESTAMPTZ NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (environment, kind, value)
);

-- The dashboard's sessions: the cookie carries only the id; the token that opened the
-- session is referenced (its id), never kept, so revoking the token ends the session.
CREATE TABLE sc_web_sessions (
    id_hash TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    token_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    ended_by TEXT
);
CREATE INDEX sc_web_sessions_token ON sc_web_sessions (token_id);
