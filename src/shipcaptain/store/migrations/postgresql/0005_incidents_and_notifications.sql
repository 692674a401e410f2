-- Incidents: opened by hand or by a failed post-deploy check in a customer-facing
-- environment; each has its acknowledge and mitigation deadlines from the runbook's SLAs,
-- and who acknowledged, mitigated and resolved it, and when.
CREATE TABLE sc_incidents (
    id TEXT PRIMARY KEY,
    release_id TEXT REFERENCES sc_releases (id) ON DELETE SET NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    status TEXT NOT NULL,
    owners JSONB NOT NULL DEFAULT '[]',
    opened_by TEXT NOT NULL,
    opened_at TIMESTAMPTZ NOT NULL,
    acknowledge_by TIMESTAMPTZ NOT NULL,
    mitigate_by TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by TEXT,
    mitigated_at TIMESTAMPTZ,
    mitigated_by TEXT,
    mitigation TEXT,
    resolved_at TIMESTAMPTZ,
    resolved_by TEXT
);

CREATE INDEX sc_incidents_opened_idx ON sc_incidents (opened_at);

-- Every notification sent or given up on: the message, where it went (never a webhook's
-- URL: those are secrets), how many tries it took and why the last one failed.
CREATE TABLE sc_notifications (
    id TEXT PRIMARY KEY,
    release_id TEXT,
    incident_id TEXT,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    at TIMESTAMPTZ NOT NULL
);

CREATE INDEX sc_notifications_release_idx ON sc_notifications (release_id, at);

-- The Slack thread of each release in each channel (the ts of its first message).
CREATE TABLE sc_release_threads (
    release_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY (release_id, channel)
);
