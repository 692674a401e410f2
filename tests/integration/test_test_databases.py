"""The suite's throwaway PostgreSQL databases: a copy of a template is put back for the next
test as the template was, or dropped when the test changed its schema; a process the test
left connected loses its database as it would after a drop."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from helpers import databases
from helpers.databases import migrated_postgres_database, tamper_with_events

pytestmark = pytest.mark.postgres

#: the template's rows and sequences as a test sees them
_STATE = """
SELECT (SELECT count(*) FROM sc_events), (SELECT count(*) FROM dbos.workflow_status),
       (SELECT count(*) FROM dbos.dbos_migrations),
       (SELECT array_agg(coalesce(last_value, -1) ORDER BY sequencename) FROM pg_sequences)
"""


def _state(url: str) -> Any:
    with psycopg.connect(databases._libpq(url)) as conn:
        return conn.execute(_STATE).fetchone()


def _use(url: str) -> None:
    """What a test leaves: rows in the store's and DBOS's tables, every sequence moved on."""
    with psycopg.connect(databases._libpq(url)) as conn:
        conn.execute(
            "INSERT INTO dbos.workflow_status (workflow_uuid, status, name) "
            "VALUES ('left-by-a-test', 'SUCCESS', 'w')"
        )
        conn.execute(
            "INSERT INTO sc_events (seq, at, kind, actor, message, data, prev_hash, hash) "
            "VALUES (1, now(), 'release.created', 'ana', 'm', '{}', 'p', 'h')"
        )
        for (sequence,) in conn.execute("SELECT sequencename FROM pg_sequences").fetchall():
            conn.execute("SELECT nextval(%s)", (sequence,))


def _kept() -> list[str]:
    databases._recycler.wait()
    template = databases._templates["engine"]
    return list(databases._recycler._ready.get(template, []))


def test_a_copy_comes_back_as_the_template_was_under_a_new_name() -> None:
    with migrated_postgres_database() as first:
        clean = _state(first)
    assert clean[0] == 0  # no event
    assert clean[2] > 0  # DBOS's migrations recorded
    _kept()
    put_back = databases._recycler.put_back
    with migrated_postgres_database() as url:
        _use(url)
        assert _state(url) != clean
        held = psycopg.connect(databases._libpq(url))  # a process the test left behind
    try:
        kept = _kept()
        assert databases._recycler.put_back == put_back + 1, "dropped, not put back"
        assert databases.make_url(url).database not in kept  # renamed
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")  # disconnected
        with pytest.raises(psycopg.OperationalError, match="does not exist"):
            psycopg.connect(databases._libpq(url))  # its database gone by that name
    finally:
        held.close()
    with migrated_postgres_database() as again:
        assert databases.make_url(again).database == kept[-1]  # the one just put back
        assert _state(again) == clean


def test_a_copy_whose_schema_a_test_changed_is_dropped_not_put_back() -> None:
    with migrated_postgres_database():
        pass
    _kept()
    put_back = databases._recycler.put_back
    with migrated_postgres_database() as url:
        tamper_with_events(url, "SELECT 1")  # the audit log's append-only trigger disabled
        name = databases.make_url(url).database
    kept = _kept()
    assert databases._recycler.put_back == put_back
    with psycopg.connect(databases._libpq(databases.admin_url())) as conn:
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert name not in names
    for ready in kept:  # what is kept has the template's schema: the trigger on
        with psycopg.connect(databases._url_of(ready)) as conn:
            enabled = conn.execute(
                "SELECT tgenabled FROM pg_trigger WHERE tgname = 'sc_events_no_change'"
            ).fetchone()
        assert enabled == ("O",)


def test_an_empty_database_a_test_migrated_comes_back_empty() -> None:
    from shipcaptain.store import open_store

    with (
        databases.postgres_database() as first,
        psycopg.connect(databases._libpq(first)) as conn,
    ):
        fresh = conn.execute(databases._SCHEMA_OF).fetchone()
    databases._recycler.wait()
    put_back = databases._recycler.put_back
    with databases.postgres_database() as url:
        with open_store(url) as store:
            store.migrate()  # what a test of a new database does: its tables, DBOS's schema
        with psycopg.connect(databases._libpq(url)) as conn:
            conn.execute("CREATE SCHEMA made_by_a_test")
            assert conn.execute(databases._SCHEMA_OF).fetchone() != fresh
    databases._recycler.wait()
    assert databases._recycler.put_back == put_back + 1, "dropped, not emptied"
    with databases.postgres_database() as again:
        with psycopg.connect(databases._libpq(again)) as conn:
            assert conn.execute(databases._SCHEMA_OF).fetchone() == fresh
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                "('pg_catalog', 'information_schema')"
            ).fetchone()
        assert tables == (0,)
