-- People and their API tokens (issue 6). A person's roles are per environment (a JSON
-- object: environment or "*" -> list of roles); surfaces are what a feature owner owns.
CREATE TABLE sc_people (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    roles JSONB NOT NULL DEFAULT '{}',
    surfaces JSONB NOT NULL DEFAULT '[]',
    admin INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    updated_at TIMESTAMPTZ NOT NULL
);

-- API tokens: only the SHA-256 of the secret is kept; the secret is shown once.
CREATE TABLE sc_tokens (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    revoked_by TEXT
);
CREATE INDEX sc_tokens_person ON sc_tokens (person);

-- The team's permissions (the team file's "permissions" section): one row.
CREATE TABLE sc_team_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    permissions JSONB NOT NULL DEFAULT '{}',
    updated_at TIMESTAMPTZ NOT NULL
);

-- What the approver saw: the gate's evidence at the moment of the decision.
ALTER TABLE sc_decisions ADD COLUMN evidence JSONB NOT NULL DEFAULT '{}';

-- The audit log is append-only: a change or removal through SQL is refused (an owner of
-- the table can still drop the trigger; the hash chain then shows what was changed).
CREATE FUNCTION sc_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER sc_events_no_change BEFORE UPDATE OR DELETE ON sc_events
FOR EACH ROW EXECUTE FUNCTION sc_events_append_only();
