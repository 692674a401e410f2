"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database per test.

PostgreSQL: the admin URL comes from ``SHIPCAPTAIN_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``). Each test gets its own database
``sc_test_<random>``, dropped WITH (FORCE) afterwards. When the server cannot be reached,
the test is skipped, unless ``SHIPCAPTAIN_REQUIRE_POSTGRES`` is set: then it fails.

Two things keep this cheap (a PostgreSQL test used to spend about 3 s here):

- A test that runs an engine gets a copy (``CREATE DATABASE ... TEMPLATE``) of a template
  that an engine of this process already migrated and launched on once
  (:func:`migrated_postgres_database`): the store's migrations and DBOS's system schema are
  in place, which saves the 1-1.5 s of a first launch. On SQLite likewise a copy of a file an
  engine launched on (:func:`engine_database`): DBOS's migrations, each statement committed
  to disk, were about half of an engine's launch there.
- ``DROP DATABASE`` takes 0.4-2 s (the server syncs); the drops run in one background
  thread of this process, and :func:`drop_pending` (the end of the session) waits for them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import sqlite3
import threading
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


def _drop(name: str) -> None:
    with psycopg.connect(_libpq(admin_url()), autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


class _Dropper:
    """Drops databases in one background thread, in the order given."""

    def __init__(self) -> None:
        self._names: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failures: list[str] = []

    def drop_later(self, name: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-dropper", daemon=True)
                self._thread.start()
        self._names.put(name)

    def _run(self) -> None:
        while True:
            name = self._names.get()
            try:
                _drop(name)
            except psycopg.Error as exc:
                self.failures.append(f"{name}: {exc}")
            finally:
                self._names.task_done()

    def wait(self) -> None:
        """Return when every database handed over so far is dropped."""
        self._names.join()


_dropper = _Dropper()


def drop_pending() -> list[str]:
    """Drop this process's templates and wait for the background drops; the databases that
    could not be dropped (and why)."""
    for template in _templates.values():
        _dropper.drop_later(template)
    _templates.clear()
    _dropper.wait()
    return list(_dropper.failures)


@contextmanager
def postgres_database(prefix: str = "sc_test", template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``); its URL. Dropped (with
    FORCE) on exit, in the background: :func:`drop_pending` waits for it."""
    require_postgres()
    admin = _libpq(admin_url())
    name = f"{prefix}_{secrets.token_hex(6)}"
    # FILE_COPY: the template's files copied as they are; PostgreSQL 15's default
    # (WAL_LOG) writes every page of the template into the WAL, the catalogs' ~7 MB a test:
    # about 100 ms of the server's CPU a database made and dropped, against 50
    create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template or "template1")
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.info.server_version >= 150000:  # the STRATEGY option came in 15
            create += sql.SQL(" STRATEGY FILE_COPY")
        conn.execute(create)
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        _dropper.drop_later(name)


#: rows an engine's launch leaves that a fresh database does not have: its heartbeat,
#: the queues it registered, its application version (the next engine writes its own)
_LAUNCH_LEFTOVERS = ("sc_workers", "dbos.queues", "dbos.application_versions")


#: this process's template databases by kind ("store", "engine"): made on first use
_templates: dict[str, str] = {}


def _template(kind: str) -> str:
    """The name of this process's template database of ``kind``: "store" is migrated by the
    store; "engine" was launched on once by an engine (so DBOS's system schema is there too),
    without the rows that launch left."""
    if kind in _templates:
        return _templates[kind]
    import tempfile

    from sqlalchemy import text

    from helpers.releases import harness
    from shipcaptain.store import open_store

    admin = _libpq(admin_url())
    name = f"sc_template_{kind}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        if kind == "store":
            with open_store(url) as store:
                store.migrate()
        else:
            with (
                tempfile.TemporaryDirectory(prefix="sc-template-") as directory,
                harness(url, Path(directory)),
            ):
                pass
            with raw_engine(url) as engine, engine.begin() as conn:
                for table in _LAUNCH_LEFTOVERS:
                    conn.execute(text(f"DELETE FROM {table}"))
    except BaseException:
        _drop(name)
        raise
    _templates[kind] = name
    return name


@contextmanager
def migrated_postgres_database(prefix: str = "sc_test", kind: str = "engine") -> Iterator[str]:
    """A new PostgreSQL database with the state store's schema in place (``kind`` "store"),
    or as an engine's first launch leaves it, less that engine's own rows (``kind``
    "engine"); its URL."""
    require_postgres()
    with postgres_database(prefix, template=_template(kind)) as url:
        yield url


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


#: this process's SQLite template file for engine tests: made on first use
_sqlite_templates: dict[str, Path] = {}


def _sqlite_engine_template() -> Path:
    """A SQLite file an engine of this process launched on once (the store's migrations and
    DBOS's system tables in place), without the rows that launch left: launching on a copy
    skips DBOS's migrations, about half of an engine's launch on SQLite (the statements
    each commit to disk)."""
    if "engine" in _sqlite_templates:
        return _sqlite_templates["engine"]
    import atexit
    import shutil
    import tempfile

    from sqlalchemy import text

    from helpers.releases import harness

    directory = Path(tempfile.mkdtemp(prefix="sc-sqlite-template-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "state.db"
    url = f"sqlite:///{path}"
    with harness(url, directory):
        pass
    with raw_engine(url) as engine, engine.begin() as conn:
        for table in _LAUNCH_LEFTOVERS:  # DBOS's tables have no schema on SQLite
            conn.execute(text(f"DELETE FROM {table.removeprefix('dbos.')}"))
    _sqlite_templates["engine"] = path
    return path


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database with SQLite's own backup (consistent whatever its journal)."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


@contextmanager
def engine_database(backend: str, directory: Path) -> Iterator[str]:
    """Like :func:`temporary_database`, for a test that runs an engine on it: a copy of a
    database an engine of this process already launched on (PostgreSQL: ``CREATE DATABASE
    ... TEMPLATE``; SQLite: a copy of the file)."""
    if backend == "postgresql":
        with migrated_postgres_database() as url:
            yield url
    elif backend == "sqlite":
        path = directory.resolve() / "state.db"
        _copy_sqlite(_sqlite_engine_template(), path)
        yield f"sqlite:///{path}"
    else:
        with temporary_database(backend, directory) as url:
            yield url


@contextmanager
def copy_of_database(url: str, directory: Path) -> Iterator[str]:
    """A throwaway copy of the database at ``url`` (nobody connected to it); its URL. SQLite:
    a file in ``directory``; PostgreSQL: a database made with ``url``'s as its template."""
    if url.startswith("sqlite"):
        path = directory.resolve() / "state.db"
        _copy_sqlite(Path(make_url(url).database or ""), path)
        yield f"sqlite:///{path}"
        return
    with postgres_database(template=make_url(url).database) as copy:
        yield copy


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
