"""Find migration files: the Supabase layout (``supabase/migrations/<timestamp>_<name>.sql``)
or a plain directory of ``.sql`` files. Version = the digits before the first ``_`` (or
``-``, as in ``20240110120000-add-columns.sql``);
migrations are sorted by version as a number, not by file name."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
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


def migrations_dir(root: Path) -> Path:
    """``root`` itself, or ``root/supabase/migrations`` when it is a Supabase project."""
    supa = root / "supabase" / "migrations"
    return supa if supa.is_dir() else root


def discover(root: Path) -> list[MigrationFile]:
    folder = migrations_dir(root)
    if not folder.is_dir():
        raise UsageError("no such migrations directory", location=Location(file=str(root)))
    found: dict[str, MigrationFile] = {}
    for path in folder.glob("*.sql"):
        match = _NAME.match(path.name)
        if match is None:
            raise UsageError(
                "migration file name must be <version>_<name>.sql or <version>-<name>.sql "
                "(version: digits)",
                location=Location(file=str(path), field="file name"),
            )
        version, name = match.group(1), match.group(2)
        if version in found:
            raise UsageError(
                f"version {version} is also used by {found[version].path.name}",
                location=Location(file=str(path), field="version"),
            )
        found[version] = MigrationFile(version, name, path, path.read_text(encoding="utf-8"))
    return sorted(found.values(), key=lambda m: (int(m.version), m.version))
