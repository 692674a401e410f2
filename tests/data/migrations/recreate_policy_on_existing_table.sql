-- An existing table's policy and trigger, dropped and created again with a new definition.
DROP POLICY IF EXISTS "members read boards" ON public.boards;
CREATE POLICY "members read boards" ON public.boards FOR SELECT
  USING (owner = auth.uid() OR is_member(id));

DROP TRIGGER IF EXISTS boards_audit ON public.boards;
CREATE TRIGGER boards_audit AFTER UPDATE ON public.boards
  FOR EACH ROW EXECUTE FUNCTION audit_row();
NOTIFY pgrst, 'reload schema';
