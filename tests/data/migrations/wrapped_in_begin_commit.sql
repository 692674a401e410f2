BEGIN;
CREATE TABLE public.labels (id bigint PRIMARY KEY, name text NOT NULL);
ALTER TABLE public.cards ADD COLUMN label_id bigint;
COMMIT;
