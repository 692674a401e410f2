"""Database URLs: which backend a URL means, the SQLAlchemy form of it, and a printable form.

Accepted forms::

    sqlite:///relative/path.db       sqlite:////absolute/path.db
    postgresql://user:password@host:port/database   (also postgres://, postgresql+psycopg://)

PostgreSQL URLs always go through the psycopg (3) driver. A password never appears in a
message: use :func:`shipcaptain.urls.mask_url` for anything shown to people or logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from shipcaptain.errors import InvalidSettings
from shipcaptain.urls import mask_url, password_of

__all__ = [
    "Backend",
    "backend_of",
    "mask_url",
    "normalize_url",
    "password_of",
    "plain_postgres_url",
    "plain_sqlite_file",
    "sqlite_path",
]

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

Backend = Literal["sqlite", "postgresql"]


# SQLAlchemy parses URLs; it is imported where a URL is parsed (the commands that only read
# a SQLite file never need it: see plain_sqlite_file).


def _parse(url: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise InvalidSettings(f"not a database URL: {mask_url(url)!r}") from exc


def backend_of(url: str) -> Backend:
    """``"sqlite"`` or ``"postgresql"`` for a URL; :class:`InvalidSettings` for anything else."""
    scheme = _parse(url).get_backend_name()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise InvalidSettings(
        f"unsupported database URL {mask_url(url)!r}: use sqlite:///path/to/file.db "
        "or postgresql://user@host:port/database"
    )


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL for ``url`` (``postgresql+psycopg://`` for PostgreSQL).

    The result keeps the password, so never print it; other code (the durable engine's
    configuration, tests) can reuse it to reach the same database.
    """
    backend = backend_of(url)
    parsed = _parse(url)
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise InvalidSettings(
                f"the state database must be a file, not {mask_url(url)!r}: "
                "use sqlite:///path/to/file.db"
            )
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///`` URL names."""
    database = _parse(normalize_url(url)).database
    assert database is not None  # normalize_url refused URLs without a file
    return Path(database)


#: what a plain ``sqlite:///`` URL's file name may not hold: anything SQLAlchemy would read
#: differently from the text (escapes, a query string, a fragment)
_NOT_PLAIN = ("%", "?", "#")


def plain_sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///path`` URL, read without SQLAlchemy (the same file
    :func:`sqlite_path` names); None for any other URL, for which the caller takes the
    ordinary way (:func:`sqlite_path`, which explains what is wrong with a bad one)."""
    head = "sqlite:///"
    if not url.startswith(head):
        return None
    database = url[len(head) :]
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if any(c in database for c in _NOT_PLAIN):
        return None
    return Path(database)


#: the schemes of a PostgreSQL URL, as libpq reads the first two (the third is SQLAlchemy's)
_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
#: what a plain PostgreSQL URL may not hold: escapes and a fragment, which SQLAlchemy and
#: libpq might read differently
_NOT_PLAIN_POSTGRES = ("%", "#")


def plain_postgres_url(url: str) -> str | None:
    """A plain PostgreSQL URL as libpq reads it (``postgresql://`` for SQLAlchemy's
    ``postgresql+psycopg://``), naming the same database as :func:`normalize_url`'s, read
    without SQLAlchemy; None for any other URL (the caller takes the ordinary way, which
    explains what is wrong with a bad one)."""
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            rest = url[len(scheme) :]
            break
    else:
        return None
    if not rest or any(c in rest for c in _NOT_PLAIN_POSTGRES):
        return None
    return "postgresql://" + rest
