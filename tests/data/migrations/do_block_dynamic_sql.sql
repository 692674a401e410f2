DO $$
DECLARE
  t text;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'archive' LOOP
    EXECUTE format('DROP TABLE archive.%I', t);
  END LOOP;
  EXECUTE 'CREATE TABLE IF NOT EXISTS archive_log (id bigint)';
END $$;
