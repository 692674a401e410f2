ALTER TABLE public.boards ADD COLUMN archived boolean NOT NULL DEFAULT false;
ALTER TABLE public.boards ADD COLUMN note text;
ALTER TABLE public.boards ADD COLUMN created_at timestamptz DEFAULT now();
ALTER TABLE public.boards ADD COLUMN token uuid DEFAULT gen_random_uuid();
