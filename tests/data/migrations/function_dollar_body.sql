-- A function whose $$ body contains statements that look like contract ones
CREATE OR REPLACE FUNCTION public.archive_canvas(canvas_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM canvases WHERE id = canvas_id;  -- inside the body, not a migration statement
  ALTER TABLE canvases DROP COLUMN legacy;    -- also inside the body
END;
$$;
