BEGIN;
CREATE TABLE public.labels (id bigint PRIMARY KEY);
COMMIT;

ALTER TABLE public.cards ADD COLUMN label_id bigint REFERENCES public.labels (id);
