CREATE TABLE public.boards (id bigint PRIMARY KEY, owner uuid NOT NULL);
ALTER TABLE public.boards ENABLE ROW LEVEL SECURITY;
CREATE POLICY "owners read boards" ON public.boards FOR SELECT USING (auth.uid() = owner);
