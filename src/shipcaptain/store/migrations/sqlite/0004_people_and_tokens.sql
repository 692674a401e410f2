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
