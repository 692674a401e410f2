"""Fixtures shared by every test suite."""

from __future__ import annotations

import atexit
import gc
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import environment
from helpers.databases import (
    drop_pending,
    engine_database,
    migrated_postgres_database,
    temporary_database,
)
from helpers.suite_order import spread_out
from shipcaptain.audit.keys import AuditKey
from shipcaptain.cli.main import YOUNG_GENERATION
from shipcaptain.store import Store, open_store

# The developer's own settings and credentials never reach a test or the processes it starts.
environment.scrub(os.environ)
# Bytecode is cached even when the developer's shell turns it off (PYTHONDONTWRITEBYTECODE,
# set on CI's machines too): otherwise each pytest process compiles and rewrites the tests'
# asserts again (collection 8 s CPU instead of 3.5 s) and every CLI process a test starts
# compiles shipcaptain again (~0.1 s CPU each). The files go where Python puts them by
# default (__pycache__, ignored by git). Set here, before pytest-xdist starts its processes.
if sys.dont_write_bytecode or "PYTHONDONTWRITEBYTECODE" in os.environ:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
# Scratch files in memory, where the machine has room (tmpfs): every test's and every
# process's it starts, set before pytest-xdist starts its processes (issue 27: the suite's
# system time; see environment.scratch_in_memory).
environment.scratch_in_memory(os.environ)
# Nor does a test write into the developer's own data folder (~/.local/share/shipcaptain: the
# demo's admin token, audit key and anchors): the default data folder is this process's own.
_DATA_HOME = tempfile.mkdtemp(prefix="sc-data-home-")
os.environ["XDG_DATA_HOME"] = _DATA_HOME
atexit.register(shutil.rmtree, _DATA_HOME, True)
# Nor read or write the developer's config folder (~/.config): the token a person saved with
# `shipcaptain login` (~/.config/shipcaptain), and Chromium's crash reports database, which
# the browser tests' Chromium made in ~/.config/chromium.
_CONFIG_HOME = tempfile.mkdtemp(prefix="sc-config-home-")
os.environ["XDG_CONFIG_HOME"] = _CONFIG_HOME
atexit.register(shutil.rmtree, _CONFIG_HOME, True)
# Nor into the developer's kubectl cache (~/.kube/cache): the tests' kubectl, about 1,400
# files of discovery and HTTP cache a run, each for a loopback address no one will see
# again (four runs left 77 MB there). Each process has its own (scrub removed the parent's).
_KUBE_CACHE = tempfile.mkdtemp(prefix="sc-kube-cache-")
os.environ["KUBECACHEDIR"] = _KUBE_CACHE
atexit.register(shutil.rmtree, _KUBE_CACHE, True)
# The width of the CLI's tables: COLUMNS when set. GNU readline (imported by pytest's
# debugger plugin) exports COLUMNS and LINES into the C environment, which every process a
# test starts inherits; the CLI's output then wraps at 80 cells where the documented lines
# (and a pipe, for a person) are unbounded. Tests that want a width set it themselves.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)
    os.unsetenv(_name)
# The Go programs the tests start (kubectl about 1,200 times a run, each for a fraction of a
# second; Prometheus) collect garbage only when their heap nears 512 MiB: a kubectl command
# never gets there, and its CPU falls from about 50 to 39 ms (a quarter of it was the
# collector, for memory given back at exit anyway). Prometheus, running for minutes, still
# collects at that limit. What they do is unchanged; a developer's own GOGC is kept.
if "GOGC" not in os.environ:
    os.environ["GOGC"] = "off"
    os.environ.setdefault("GOMEMLIMIT", "512MiB")
# This process's own garbage collector: 12 % of a pytest process's CPU (22 of 181 s over
# tests/unit, web and integration at -n 3; its full collections walked every module, class
# and function loaded, ~230 ms each). Fewer young collections, as the CLI makes them
# (``shipcaptain.cli.main.YOUNG_GENERATION``), and what collection loaded is frozen out of
# the collector's walks (``pytest_collection_finish``): 9.4 s. Garbage is still collected.
gc.set_threshold(YOUNG_GENERATION, 10, 10)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The modules, fixtures and tests collection loaded stay for the whole run: kept out of
    the collector's walks (``gc.freeze``)."""
    gc.freeze()


# -- databases: every test that takes one of these runs on SQLite and on PostgreSQL --------

DATABASE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty throwaway database: a SQLite file, then a PostgreSQL database.

    For a test that takes ``store`` or ``sh`` (test_cli's shell): both migrate this database
    before the test runs, so the PostgreSQL database is a copy of one the store already
    migrated: the same schema, without the wait for the migrations in every test."""
    migrated_first = {"store", "sh"}.intersection(request.fixturenames)
    if request.param == "postgresql" and migrated_first:
        with migrated_postgres_database(kind="store") as url:
            yield url
        return
    with temporary_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=DATABASE_BACKENDS)
def engine_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a throwaway database for a test that runs an engine on it (SQLite, then
    PostgreSQL): on PostgreSQL a copy of a database an engine already launched on, so the
    test does not wait for the migrations and DBOS's schema again."""
    with engine_database(request.param, tmp_path) as url:
        yield url


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Wait for the PostgreSQL databases this process still drops in the background."""
    failures = drop_pending()
    if failures:
        print("\nthrowaway databases not dropped:\n  " + "\n  ".join(failures))


@pytest.fixture
def store_url(database_url: str) -> str:
    """The URL of an empty database for the state store (both backends)."""
    return database_url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated state store on a throwaway database (both backends); closed afterwards."""
    opened = open_store(store_url)
    opened.use_audit_key(AuditKey.generate())
    opened.migrate()
    try:
        yield opened
    finally:
        opened.close()


# Engine threads that outlive a test (a cancelled workflow stops at its next checkpoint)
# may log after pytest closed its capture streams; that is noise, not a failure.
logging.raiseExceptions = False


@pytest.fixture(scope="session")
def scraped() -> Iterator[tuple[Any, Any]]:
    """One sandbox app and a Prometheus scraping it, shared by a test process's tests
    (``helpers.prometheus``: ``app``, ``prometheus``, ``shared_prometheus``); imported
    when first used."""
    from helpers.prometheus import app_and_prometheus

    with app_and_prometheus() as pair:
        yield pair


# -- distribution over pytest-xdist's processes ----------------------------------------------
# The suite runs with ``--dist loadgroup``: tests go to whichever process is free, one by one,
# so a long file no longer holds one process busy while the other has finished. A module whose
# tests share a module-scoped fixture (a PostgreSQL cluster, a Prometheus) stays together in
# one process, as with ``--dist loadfile``: split, it would start that fixture twice.

_SHARED_SCOPES = {"module", "package", "class"}
#: session-scoped fixtures slow to start (seconds): every test using one runs in one process
_ONE_PROCESS = {"scraped": "prometheus"}


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """Groups marked before pytest-xdist's own hook reads them (a wrapper runs around it),
    and the group's name put in each test's id after it, where xdist's own naming does not
    take: xdist 3.8 sets ``item._nodeid``, which pytest 9.2 no longer reads (its ids are
    ``item._id``). Without it every group is ignored and ``loadgroup`` is plain ``load``:
    a module's shared fixture started in every process that got one of its tests.
    ``tests/unit/test_suite_groups.py`` checks that a group runs in one process."""
    _mark_groups(items)
    # groups first (a group is one unit of work, the browser tests' about a minute: handed
    # out last, it would run on one process while the others had finished), then each file's
    # tests spread over the run
    items[:] = spread_out(items, _waits)
    yield
    if getattr(config.option, "loadgroup", False):  # set in an xdist process
        _name_groups(items)


def _waits(item: pytest.Item) -> bool:
    """A test that mostly waits (processes and servers of its own, timers, takeovers,
    rollouts paced like a cluster's): the acceptance and integration tests."""
    return item.nodeid.startswith(("tests/acceptance/", "tests/integration/"))


def _mark_groups(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        for name, group in _ONE_PROCESS.items():
            if name in info.name2fixturedefs and not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(group))
        shared = any(
            definition.scope in _SHARED_SCOPES
            for definitions in info.name2fixturedefs.values()
            for definition in definitions
        )
        if shared and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


def _name_groups(items: list[pytest.Item]) -> None:
    for item in items:
        names = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId  # pytest 9.2's structured ids

            item._id = NodeId.parse(item.nodeid + suffix)
