"""Database URLs: which backend a URL means, the SQLAlchemy form of it, and a printable form.

Accepted forms::

    sqlite:///relative/path.db       sqlite:////absolute/path.db
    postgresql://user:password@host:port/database   (also postgres://, postgresql+psycopg://)

PostgreSQL URLs always go through the psycopg (3) driver. A password never appears in a
message: use :func:`shipcaptain.urls.mask_url` for anything shown to people or logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from shipcaptain.errors import InvalidSettings
from shipcaptain.urls import mask_url, password_of

__all__ = ["Backend", "backend_of", "mask_url", "normalize_url", "password_of", "sqlite_path"]

Backend = Literal["sqlite", "postgresql"]


def _parse(url: str) -> URL:
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
