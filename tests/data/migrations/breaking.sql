ALTER TABLE public.boards DROP COLUMN legacy;
ALTER TABLE public.boards ALTER COLUMN title TYPE text;
ALTER TABLE public.boards ALTER COLUMN owner SET NOT NULL;
ALTER TABLE public.boards RENAME COLUMN title TO name;
DROP FUNCTION public.archive_canvas(bigint);
