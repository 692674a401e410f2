-- Idempotent, but still breaking: the running app reads boards.legacy.
DO $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_name = 'boards' AND column_name = 'legacy'
  ) THEN
    ALTER TABLE public.boards DROP COLUMN legacy;
  END IF;
END $$;
