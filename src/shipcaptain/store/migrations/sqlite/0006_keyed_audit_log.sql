-- The keyed audit chain: each event carries an HMAC of its hash, made with a key derived
-- from the audit signing key (a file outside this database). Events written before this
-- migration keep no MAC; they are accepted only as the chain's first events.
ALTER TABLE sc_events ADD COLUMN mac TEXT;
