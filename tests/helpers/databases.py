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
- A copy of a template is not dropped but put back for the next test (:class:`_Recycler`):
  in that same background thread, whoever is still connected is disconnected, the database
  is renamed (a process the test left behind finds its database gone, as after a drop), and
  its rows and sequences are put back as the template had them; a database whose schema the
  test changed (a table, a trigger disabled, a grant...) is dropped instead, except an empty
  one (a copy of ``template1``), whose schemas are dropped and ``public`` made again. Making a copy
  cost the server ~60-125 ms of CPU under the suite's load (the copy of the catalogs and
  the checkpoint that comes with it), about half of the server's CPU in a whole run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

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


def _url_of(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return make_url(_libpq(admin_url())).set(database=name).render_as_string(hide_password=False)


#: what of a database's schema a test may change and the next test must not inherit: its
#: schemas, relations (with their grants and row security), columns, indexes, constraints,
#: triggers (enabled or not), functions, types, policies, views, extensions, settings
_SCHEMA_OF = """
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema')
    AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
)
SELECT md5(string_agg(x, E'\\n' ORDER BY x)) FROM (
  SELECT format('ns %s %s', nspname, n.nspacl) FROM ns JOIN pg_namespace n USING (nspname)
  UNION ALL
  SELECT format('rel %s.%s %s %s %s %s', ns.nspname, c.relname, c.relkind, c.relacl,
                c.relrowsecurity, c.relpersistence)
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
  UNION ALL
  SELECT format('col %s.%s.%s %s %s %s %s', ns.nspname, c.relname, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attnum,
                pg_get_expr(d.adbin, d.adrelid))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON ns.oid = c.relnamespace
  UNION ALL
  SELECT format('con %s %s %s', ns.nspname, co.conname, pg_get_constraintdef(co.oid))
  FROM pg_constraint co JOIN ns ON ns.oid = co.connamespace
  UNION ALL
  SELECT format('trg %s %s %s', t.tgrelid::regclass, t.tgname, t.tgenabled)
  FROM pg_trigger t WHERE NOT t.tgisinternal
  UNION ALL
  SELECT format('fn %s %s %s', p.oid::regprocedure, md5(p.prosrc), p.proacl)
  FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
  UNION ALL
  SELECT format('type %s %s', ns.nspname, t.typname)
  FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
  UNION ALL
  SELECT format('enum %s %s', e.enumtypid::regtype, e.enumlabel) FROM pg_enum e
  UNION ALL
  SELECT format('policy %s %s %s', p.polrelid::regclass, p.polname,
                pg_get_expr(p.polqual, p.polrelid))
  FROM pg_policy p
  UNION ALL
  SELECT format('view %s %s', c.oid::regclass, pg_get_viewdef(c.oid))
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
  UNION ALL
  SELECT format('ext %s %s', extname, extversion) FROM pg_extension
  UNION ALL
  SELECT format('setting %s', s.setconfig) FROM pg_db_role_setting s
  JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()
  UNION ALL
  SELECT format('large objects %s', count(*)) FROM pg_largeobject_metadata
) AS everything(x)
"""

_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1
"""

_SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value, start_value),
       last_value IS NOT NULL
FROM pg_sequences ORDER BY 1
"""


class _Snapshot:
    """A template database as a test must find its copy: its schema (a digest), the rows of
    its tables (``COPY``), its sequences."""

    def __init__(self, name: str) -> None:
        with psycopg.connect(_url_of(name), autocommit=True) as conn:
            self.schema = conn.execute(_SCHEMA_OF).fetchone()[0]  # type: ignore[index]
            self.tables = [row[0] for row in conn.execute(_TABLES)]
            self.rows: dict[str, bytes] = {}
            for table in self.tables:
                if not conn.execute(f"SELECT EXISTS (SELECT FROM {table})").fetchone()[0]:  # type: ignore[index]
                    continue
                with conn.cursor().copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy:
                    self.rows[table] = b"".join(bytes(block) for block in copy)
            self.sequences = list(conn.execute(_SEQUENCES))
        #: an empty database (no table): a copy a test filled is emptied again
        self.empty = not self.tables

    def put_back(self, name: str) -> bool:
        """Make database ``name`` (a copy of this template that no one is connected to) as
        the template was, in one transaction; False (and nothing changed) when its schema is
        not the template's."""
        with psycopg.connect(_url_of(name)) as conn:
            schema = conn.execute(_SCHEMA_OF).fetchone()[0]  # type: ignore[index]
            if schema != self.schema and not (self.empty and _emptied(conn, self.schema)):
                conn.rollback()
                return False
            # as pg_restore does: no trigger fires (the audit log's append-only one, the
            # foreign keys' checks), so the tables empty in any order
            conn.execute("SET LOCAL session_replication_role = replica")
            for table in self.tables:
                conn.execute(f"DELETE FROM {table}")
            for table, data in self.rows.items():
                with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                    copy.write(data)
            for sequence, value, called in self.sequences:
                conn.execute("SELECT setval(%s, %s, %s)", (sequence, value, called))
        return True


def _emptied(conn: psycopg.Connection[Any], schema: str) -> bool:
    """Empty a copy of an empty database (``template1``) that a test filled (migrated, say):
    every schema dropped, ``public`` made again as PostgreSQL 15 makes it; whether its schema
    is then ``schema`` (the empty database's)."""
    found = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', "
        "'information_schema') AND nspname NOT LIKE 'pg\\_%'"
    ).fetchall()
    for (namespace,) in found:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(namespace)))
    conn.execute("CREATE SCHEMA public")
    conn.execute("ALTER SCHEMA public OWNER TO pg_database_owner")
    conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    return conn.execute(_SCHEMA_OF).fetchone()[0] == schema  # type: ignore[index]


class _Recycler:
    """Puts databases back or drops them, in one background thread, in the order given; the
    copies of each template put back, ready for the next test that asks for one."""

    #: copies of one template kept ready at most (more are dropped)
    KEEP = 4

    def __init__(self) -> None:
        self._names: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._snapshots: dict[str, _Snapshot] = {}
        self._ready: dict[str, list[str]] = {}
        #: copies of each template handed over and not yet put back (or dropped)
        self._coming: dict[str, int] = {}
        self.failures: list[str] = []
        self.put_back = 0

    def drop_later(self, name: str) -> None:
        self._hand_over(name, None)

    def recycle_later(self, name: str, template: str) -> None:
        """Put ``name``, a copy of ``template``, back as the template is, or drop it."""
        with self._lock:
            self._coming[template] = self._coming.get(template, 0) + 1
        self._hand_over(name, template)

    def remember(self, template: str, copy: str | None = None) -> None:
        """Put copies of ``template`` back from now on: read it (before any copy is made: no
        one may be connected to a template that is copied), or ``copy``, a copy of it no one
        used yet (a template other processes copy: ``template1``)."""
        self._snapshots[template] = _Snapshot(copy or template)

    def knows(self, template: str) -> bool:
        return template in self._snapshots

    def take(self, template: str, wait: float = 2.0) -> str | None:
        """A copy of ``template`` put back since its last test, or None. When none is
        ready but one is being put back (the last test's, most often), waits for it up to
        ``wait`` seconds: a put-back takes tens of milliseconds, a new copy hundreds under
        load."""
        deadline = time.monotonic() + wait
        with self._changed:
            while not self._ready.get(template) and self._coming.get(template, 0) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            ready = self._ready.get(template)
            return ready.pop() if ready else None

    def forget(self, template: str) -> list[str]:
        """The copies of ``template`` kept ready, no longer kept."""
        with self._lock:
            self._snapshots.pop(template, None)
            return self._ready.pop(template, [])

    def _hand_over(self, name: str, template: str | None) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-recycler", daemon=True)
                self._thread.start()
        self._names.put((name, template))

    def _run(self) -> None:
        while True:
            name, template = self._names.get()
            try:
                if template is None or not self._recycle(name, template):
                    _drop(name)
            except psycopg.Error as exc:
                self.failures.append(f"{name}: {exc}")
            finally:
                if template is not None:
                    with self._changed:
                        self._coming[template] -= 1
                        self._changed.notify_all()
                self._names.task_done()

    def _recycle(self, name: str, template: str) -> bool:
        """Put ``name`` back under a new name; whether it was taken care of (put back, or
        dropped under its new name): False leaves ``name`` to be dropped."""
        with self._lock:
            if len(self._ready.get(template, ())) >= self.KEEP:
                return False
        snapshot = self._snapshots.get(template)
        if snapshot is None:
            return False
        fresh = f"{name.rsplit('_', 1)[0]}_{secrets.token_hex(6)}"
        with psycopg.connect(_libpq(admin_url()), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            try:  # fails when someone connected again since: then it is dropped
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(name), sql.Identifier(fresh)
                    )
                )
            except psycopg.errors.ObjectInUse:
                return False
        try:
            if not snapshot.put_back(fresh):
                _drop(fresh)
                return True
        except psycopg.Error:
            _drop(fresh)
            raise
        with self._lock:
            if template in self._snapshots:
                self._ready.setdefault(template, []).append(fresh)
                self.put_back += 1
                return True
        _drop(fresh)
        return True

    def wait(self) -> None:
        """Return when every database handed over so far is put back or dropped."""
        self._names.join()


_recycler = _Recycler()


def drop_pending() -> list[str]:
    """Drop this process's templates and their copies kept ready, and wait for the
    background drops; the databases that could not be dropped (and why)."""
    _recycler.wait()
    for template in ("template1", *_templates.values()):
        for ready in _recycler.forget(template):
            _recycler.drop_later(ready)
    for template in _templates.values():
        _recycler.drop_later(template)
    _templates.clear()
    _recycler.wait()
    return list(_recycler.failures)


@contextmanager
def postgres_database(prefix: str = "sc_test", template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (empty, or a copy of ``template``); its URL. On exit, in
    the background, put back for the next test when it is empty or a copy of one of this
    process's templates, else dropped (with FORCE); :func:`drop_pending` waits for it."""
    require_postgres()
    # an empty database (a copy of template1) is put back too: emptied again
    recycled = template is None or template in _templates.values()
    template = template or "template1"
    ready = _recycler.take(template) if recycled else None
    if ready is not None:
        try:
            yield _url_of(ready)
        finally:
            _recycler.recycle_later(ready, template)
        return
    admin = _libpq(admin_url())
    name = f"{prefix}_{secrets.token_hex(6)}"
    # FILE_COPY: the template's files copied as they are; PostgreSQL 15's default
    # (WAL_LOG) writes every page of the template into the WAL, the catalogs' ~7 MB a test:
    # about 100 ms of the server's CPU a database made and dropped, against 50
    create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.info.server_version >= 150000:  # the STRATEGY option came in 15
            create += sql.SQL(" STRATEGY FILE_COPY")
        conn.execute(create)
    if template == "template1" and not _recycler.knows(template):
        _recycler.remember(template, copy=name)
    try:
        yield _url_of(name)
    finally:
        if recycled:
            _recycler.recycle_later(name, template)
        else:
            _recycler.drop_later(name)


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
    url = _url_of(name)
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
        _recycler.remember(name)
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
