ALTER TABLE public.boards ADD COLUMN tenant bigint NOT NULL;
