"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database per test.

PostgreSQL: the admin URL comes from ``SHIPCAPTAIN_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``). Each test gets its own database
``sc_test_<random>``, dropped WITH (FORCE) afterwards. When the server cannot be reached,
the test is skipped, unless ``SHIPCAPTAIN_REQUIRE_POSTGRES`` is set: then it fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from shipcaptain.store import mask_url, normalize_url

ADMIN_URL_ENV = "SHIPCAPTAIN_TEST_POSTGRES_URL"
REQUIRE_ENV = "SHIPCAPTAIN_REQUIRE_POSTGRES"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")


def admin_url() -> str:
    """The URL of a PostgreSQL database the tests may create databases from."""
    return os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL


def _libpq(url: str) -> str:
    """``url`` as libpq understands it (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def postgres_unavailable() -> str | None:
    """Why the test PostgreSQL server cannot be used, or None when it can."""
    try:
        with psycopg.connect(_libpq(admin_url()), connect_timeout=3, autocommit=True):
            pass
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL is not reachable at {mask_url(admin_url())}: {first_line}"
    return None


def require_postgres() -> None:
    """Skip the current test without a PostgreSQL server (fail if one is required)."""
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} (and {REQUIRE_ENV} is set)")
    pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")


@contextmanager
def postgres_database(prefix: str = "sc_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; its URL. Dropped (with FORCE) on exit."""
    require_postgres()
    admin = _libpq(admin_url())
    name = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    """The URL of a SQLite file (not created yet) in ``directory``."""
    yield f"sqlite:///{directory.resolve() / 'state.db'}"


@contextmanager
def temporary_database(backend: str, directory: Path) -> Iterator[str]:
    """A throwaway database of ``backend`` ("sqlite" or "postgresql"); its URL."""
    if backend == "sqlite":
        with sqlite_database(directory) as url:
            yield url
    elif backend == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown database backend {backend!r} (expected one of {BACKENDS})")


@contextmanager
def raw_engine(url: str) -> Iterator[Engine]:
    """A plain SQLAlchemy engine on ``url`` for going around the store; disposed on exit."""
    engine = create_engine(normalize_url(url))
    try:
        yield engine
    finally:
        engine.dispose()


def tamper_with_events(url: str, statement: str, **params: object) -> None:
    """Run ``statement`` on the audit log as a database owner who first removes the
    append-only triggers (what a forger with the credentials would do)."""
    from sqlalchemy import text

    with raw_engine(url) as engine, engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER IF EXISTS sc_events_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS sc_events_no_delete"))
        else:
            conn.execute(text("ALTER TABLE sc_events DISABLE TRIGGER USER"))
        conn.execute(text(statement), params)
