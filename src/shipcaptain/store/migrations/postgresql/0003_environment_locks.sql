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
