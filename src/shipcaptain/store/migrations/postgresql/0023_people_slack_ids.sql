-- People's Slack member ids (issue 23): comms mention them (<@U...>) instead of naming
-- them in plain text. Numbered after the issue: a gap is allowed.
ALTER TABLE sc_people ADD COLUMN slack_id TEXT NOT NULL DEFAULT '';
