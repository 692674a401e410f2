-- The audit log's append-only trigger (0004) fired on UPDATE and DELETE, each row; TRUNCATE
-- fires no row trigger and emptied the log without a word. A statement trigger refuses it
-- too (an owner of the table can still drop the triggers; the hash chain's signed anchors
-- then show what went). Numbered after the stop that found it: a gap is allowed.
CREATE TRIGGER sc_events_no_truncate BEFORE TRUNCATE ON sc_events
FOR EACH STATEMENT EXECUTE FUNCTION sc_events_append_only();
