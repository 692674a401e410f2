-- Environment locks: in an exclusive environment one release of a service runs at a
-- time. Each release that asks is a row; the earliest active asker holds the lock.
CREATE TABLE sc_env_locks (
    service TEXT NOT NULL,
    environment TEXT NOT NULL,
    release_id TEXT NOT NULL REFERENCES sc_releases (id) ON DELETE CASCADE,
    requested_at TIMESTAMPTZ NOT NULL,
    acquired_at TIMESTAMPTZ,
    PRIMARY KEY (service, environment, release_id)
);

-- Takeovers: who took over a release from which incarnation of a gone process. The first
-- insert wins, so when several live processes notice at once only one takes it over.
CREATE TABLE sc_takeovers (
    release_id TEXT NOT NULL REFERENCES sc_releases (id) ON DELETE CASCADE,
    from_executor TEXT NOT NULL,
    from_started_at TIMESTAMPTZ NOT NULL,
    to_executor TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (release_id, from_executor, from_started_at)
);
