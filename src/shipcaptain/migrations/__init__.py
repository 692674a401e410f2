"""Database migrations: find them, classify them (expand or contract), apply them in order
under an advisory lock, and keep a Supabase-compatible history."""
