DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'board_kind') THEN
    CREATE TYPE board_kind AS ENUM ('personal', 'team');
  END IF;
EXCEPTION WHEN duplicate_object THEN
  RAISE NOTICE 'board_kind exists';
END
$$;
ALTER TABLE public.boards ADD COLUMN IF NOT EXISTS kind board_kind;
