"""Loading the store's SQL: named queries and versioned migration scripts.

Named queries live in ``store/sql/*.sql`` as blocks that start with ``-- name: <name>``;
the comment lines right after the name say what the query does::

    -- name: get_release
    -- One release by id.
    SELECT ... FROM sc_releases WHERE id = :id;

Parameters are ``:named`` (SQLAlchemy ``text()``), so the same text runs on SQLite and
PostgreSQL. A query built on a shared one names it as ``{{name}}``, which stands for the
SQL of ``queries.sql``'s query ``name``; PostgreSQL's ``try_start`` is the shared one
with the audit chain's lock in the same statement::

    -- name: try_start
    SELECT <the lock> AS audit_locked, shared.* FROM ({{try_start}}) AS shared;

Migrations live in ``store/migrations/<backend>/NNNN_<what>.sql``; their statements end
with ``;`` at the end of a line (no ``;`` inside a statement's lines).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$")
_SHARED = re.compile(r"\{\{\s*(?P<name>[a-z_][a-z0-9_]*)\s*\}\}")
#: the file of the queries every backend runs, which ``{{name}}`` refers to
SHARED_FILE = "queries.sql"
_MIGRATION = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
#: the store package's folder: its ``sql/`` and ``migrations/`` are read from it directly
#: (importlib.resources cost every command ~5 ms to import; the package is never zipped)
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Migration:
    """One schema migration: its version, name and statements, in order."""

    version: int
    name: str
    statements: tuple[str, ...]


def _read(*parts: str) -> str:
    return _HERE.joinpath(*parts).read_text(encoding="utf-8")


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of ``-- name:`` blocks into ``{name: sql}`` (comments left out)."""
    queries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _NAME.match(line.strip())
        if match:
            name = match["name"]
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice")
            current = queries[name] = []
        elif current is not None and not line.strip().startswith("--"):
            current.append(line)
    result = {name: "\n".join(lines).strip().rstrip(";").strip() for name, lines in queries.items()}
    empty = [name for name, sql in result.items() if not sql]
    if empty:
        raise ValueError(f"query {empty[0]!r} has no SQL")
    return result


def build_queries(queries: dict[str, str], shared: dict[str, str]) -> dict[str, str]:
    """``queries`` with each ``{{name}}`` replaced by the SQL of ``shared[name]``, in one
    pass: a shared query that still names another (``queries.sql``'s own, built against
    itself) is an error, as is a name ``shared`` does not have (ValueError). A backend's
    queries are built against ``queries.sql``'s built ones."""

    def shared_sql(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in shared:
            raise ValueError(f"{{{{{name}}}}}: no shared query {name!r}")
        if _SHARED.search(shared[name]):
            raise ValueError(f"{{{{{name}}}}}: the shared query {name!r} uses another itself")
        return shared[name]

    return {name: _SHARED.sub(shared_sql, sql) for name, sql in queries.items()}


@cache
def load_queries(filename: str) -> dict[str, str]:
    """The named queries of ``store/sql/<filename>``, each ``{{name}}`` in them replaced
    by ``queries.sql``'s query ``name``."""
    queries = parse_queries(_read("sql", filename))
    shared = queries if filename == SHARED_FILE else load_queries(SHARED_FILE)
    return build_queries(queries, shared)


class Statements(dict[str, T], Generic[T]):
    """A backend's named queries as its driver runs them, each written for the driver
    (``compile``) when first run: a command runs a few of the ~90, and compiling them all
    cost every store milliseconds of CPU (twice in a CLI's engine). Plain, unchanging data,
    the same from any thread: shared by every store of a backend and driver."""

    def __init__(self, queries: dict[str, str], compile: Callable[[str], T]) -> None:
        super().__init__()
        self._queries = queries
        self._compile = compile

    def __missing__(self, name: str) -> T:
        query = self[name] = self._compile(self._queries[name])
        return query


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a migration script (``--`` comment lines dropped)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    statements: list[str] = []
    current: list[str] = []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";").strip())
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return tuple(s for s in statements if s)


@cache
def load_migrations(backend: str) -> tuple[Migration, ...]:
    """Every migration of one backend, by version; versions are unique. A gap is allowed
    (work merged from branches numbered ahead), an applied version is never re-run."""
    folder = _HERE / "migrations" / backend
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match is None:
            continue
        script = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match["version"]), match["name"], split_statements(script)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or (versions and versions[0] < 1):
        raise ValueError(f"{backend} migrations are not numbered uniquely from 1: {versions}")
    return tuple(found)


@cache
def migration_versions(backend: str) -> frozenset[int]:
    """The versions of one backend's migrations, from their file names alone (what a
    command that only reads checks the database against, without reading the scripts)."""
    folder = _HERE / "migrations" / backend
    found = (_MIGRATION.match(entry.name) for entry in folder.iterdir())
    return frozenset(int(match["version"]) for match in found if match is not None)
