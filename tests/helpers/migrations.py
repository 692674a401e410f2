"""Migration files for tests, in the Supabase layout."""

from __future__ import annotations

from pathlib import Path


def write_migrations(root: Path, files: dict[str, str]) -> Path:
    """Write ``{file name: SQL}`` to ``root/supabase/migrations``; returns ``root``."""
    mig = root / "supabase" / "migrations"
    mig.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (mig / name).write_text(sql)
    return root
