"""Named queries built on a shared one (``{{name}}``): PostgreSQL's ``try_start``,
``result_start`` and the two queries that also read the audit chain's head are
``queries.sql``'s, with the chain's lock or head added, written once."""

from __future__ import annotations

import pytest

from shipcaptain.store.postgresql import PostgresStore
from shipcaptain.store.sqlfiles import build_queries, load_queries, parse_queries
from shipcaptain.store.sqlite import SQLiteStore

SHARED = parse_queries(
    """
-- name: step_status
-- What a step is.
SELECT status FROM steps WHERE id = :id;

-- name: uses_another
SELECT 1 FROM ({{step_status}}) AS s;
"""
)


def test_a_shared_query_named_in_braces_stands_for_its_sql() -> None:
    built = build_queries(
        {"locked": "SELECT lock(:key) AS locked, s.*\nFROM ({{ step_status }}) AS s"}, SHARED
    )
    assert built == {
        "locked": "SELECT lock(:key) AS locked, s.*\n"
        "FROM (SELECT status FROM steps WHERE id = :id) AS s"
    }


def test_a_query_the_shared_file_does_not_have_is_an_error() -> None:
    with pytest.raises(ValueError, match="no shared query 'step_state'"):
        build_queries({"locked": "SELECT * FROM ({{step_state}}) AS s"}, SHARED)


def test_a_shared_query_that_uses_another_is_refused() -> None:
    with pytest.raises(ValueError, match="'uses_another' uses another itself"):
        build_queries({"twice": "SELECT * FROM ({{uses_another}}) AS s"}, SHARED)


@pytest.mark.parametrize("store", [SQLiteStore, PostgresStore], ids=["sqlite", "postgresql"])
def test_every_backend_s_queries_are_built(store: type[SQLiteStore | PostgresStore]) -> None:
    for name, sql in store.named_queries().items():
        assert "{{" not in sql, name


@pytest.mark.parametrize(
    ("name", "shared"),
    [
        ("try_start", "try_start"),
        ("result_start", "result_start"),
        ("upsert_step_run_head", "upsert_step_run"),
        ("record_result_head", "upsert_step_run"),
    ],
)
def test_postgresql_s_locked_queries_hold_the_shared_ones(name: str, shared: str) -> None:
    """A change to the shared query is a change to PostgreSQL's: its text is in it, once,
    beside the lock or the chain's head."""
    queries = PostgresStore.named_queries()
    assert queries[name].count(load_queries("queries.sql")[shared]) == 1
    assert queries[name] != load_queries("queries.sql")[shared]


def test_a_shared_query_may_be_another_shared_one() -> None:
    """``result_start`` (before a step's result is written) reads what
    ``step_status_in_run`` reads; PostgreSQL's adds the chain's lock to it."""
    shared = load_queries("queries.sql")
    assert shared["result_start"] == shared["step_status_in_run"]
    assert "SELECT status FROM sc_step_results" in shared["result_start"]
