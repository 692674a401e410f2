"""Find migration files: the Supabase layout (``supabase/migrations/<timestamp>_<name>.sql``)
or a plain directory of ``.sql`` files. Version = the digits before the first ``_`` (or
``-``, as in ``20240110120000-add-columns.sql``); migrations are sorted by version as a
number, not by file name.

The directory may be a project root (with ``supabase/migrations``), the ``supabase``
directory of one (with ``config.toml`` and ``migrations/``), or the migrations directory
itself. As the Supabase CLI does, a file whose name is not a migration's (``seed.sql``,
``TEMPLATE_migration.sql``, a README) is skipped with a warning, not an error; a directory
that does not exist or holds no migration at all is an error."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from shipcaptain.errors import Location, UsageError

_NAME = re.compile(r"^(\d+)[_-](.+)\.sql$")


@dataclass(frozen=True)
class MigrationFile:
    version: str
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Discovery:
    folder: Path
    files: list[MigrationFile]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)

    @property
    def warnings(self) -> list[str]:
        return [f"skipped {name}: {why}" for name, why in self.skipped]


def migrations_dir(root: Path) -> Path:
    """``root/supabase/migrations``, ``root/migrations`` of a Supabase directory, or ``root``."""
    supa = root / "supabase" / "migrations"
    if supa.is_dir():
        return supa
    supabase_dir = root.resolve().name == "supabase" or (root / "config.toml").is_file()
    if supabase_dir and (root / "migrations").is_dir():
        return root / "migrations"
    return root


def discover(root: Path) -> Discovery:
    folder = migrations_dir(root)
    if not folder.is_dir():
        raise UsageError(
            "no such migrations directory (give the migrations directory, or a project root "
            "with supabase/migrations)",
            location=Location(file=str(root)),
        )
    found: dict[str, MigrationFile] = {}
    skipped: list[tuple[str, str]] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        match = _NAME.match(path.name)
        if match is None:
            skipped.append((path.name, _why_skipped(path.name)))
            continue
        version, name = match.group(1), match.group(2)
        if version in found:
            raise UsageError(
                f"version {version} is also used by {found[version].path.name}",
                location=Location(file=str(path), field="version"),
            )
        found[version] = MigrationFile(version, name, path, path.read_text(encoding="utf-8"))
    if not found:
        raise UsageError(
            "no migrations here: a migration is a file named <version>_<name>.sql "
            "(version: digits, e.g. 20240101120000_create_boards.sql)",
            location=Location(file=str(folder)),
        )
    files = sorted(found.values(), key=lambda m: (int(m.version), m.version))
    return Discovery(folder, files, skipped)


def _why_skipped(name: str) -> str:
    if name == "seed.sql":
        return "seed data, not a migration (`supabase db reset` loads it)"
    if name.endswith(".sql"):
        return "file name must be <version>_<name>.sql (version: digits), as the Supabase CLI's"
    return "not a migration (.sql) file"
