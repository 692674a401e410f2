-- A release's outline (issue 27): its steps in the order they run, each with its phase,
-- label, action and dependencies, as JSON, written once when the release is created from
-- the checked runbook, so `release show` lists them without reading the runbook's YAML.
-- NULL for the releases created before: they are read from the runbook text as before.
-- Numbered after the issue: a gap is allowed.
ALTER TABLE sc_releases ADD COLUMN outline TEXT;
