CREATE INDEX boards_owner_idx ON public.boards (owner);
ALTER TABLE public.boards ADD CONSTRAINT boards_owner_fk FOREIGN KEY (owner) REFERENCES auth.users (id);
ALTER TABLE public.boards ADD CONSTRAINT boards_id_positive CHECK (id > 0) NOT VALID;
CREATE INDEX CONCURRENTLY boards_created_idx ON public.boards (id);
