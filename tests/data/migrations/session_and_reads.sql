SET statement_timeout = '5s';
SELECT set_config('search_path', 'public', false);
SELECT count(*) FROM public.boards;
COMMENT ON TABLE public.boards IS 'Kanban boards';
CREATE TABLE public.board_stats (board_id bigint, cards int);
ALTER TABLE public.board_stats ALTER COLUMN cards SET NOT NULL;
ALTER TABLE public.board_stats DROP COLUMN cards;
DROP TABLE public.board_stats;
