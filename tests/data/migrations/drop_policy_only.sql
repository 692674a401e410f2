CREATE POLICY "owners read boards" ON public.boards FOR SELECT USING (owner = auth.uid());
DROP POLICY IF EXISTS "anyone reads boards" ON public.boards;
