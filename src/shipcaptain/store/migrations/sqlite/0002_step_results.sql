-- The final result of each step in each run of a release, written once when the step
-- ends (the first write wins). Steps that need it read it from here.
CREATE TABLE sc_step_results (
    release_id TEXT NOT NULL REFERENCES sc_releases (id) ON DELETE CASCADE,
    run INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (release_id, run, step_id)
);
