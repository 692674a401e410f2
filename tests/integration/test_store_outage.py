"""The state store on PostgreSQL behind a TCP proxy the test cuts: a read or a write made
while the database is unreachable waits the outage out; a transaction whose connection
breaks before its commit runs again; one whose commit may have happened does not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from helpers.databases import migrated_postgres_database
from shipcaptain.errors import StoreError
from shipcaptain.sandbox.tcp_proxy import TcpProxy
from shipcaptain.store import ReleaseRecord, Store, open_store
from shipcaptain.store.base import ConnectionLost

pytestmark = pytest.mark.postgres

OUTAGE = 3.0


def release(**overrides: Any) -> ReleaseRecord:
    fields: dict[str, Any] = {
        "runbook_name": "valuecanvas",
        "runbook_digest": "sha256:abc",
        "runbook_text": "name: valuecanvas\n",
        "environment": "production",
        "started_by": "ann",
        "params": {"version": "1.4.2"},
    }
    fields.update(overrides)
    return ReleaseRecord(**fields)


@pytest.fixture
def proxied() -> Iterator[tuple[Store, TcpProxy]]:
    """A migrated store reached through a proxy; it waits up to 30 s for a connection."""
    with migrated_postgres_database(kind="store") as url:
        target = make_url(url)
        with TcpProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
            through = target.set(host="127.0.0.1", port=proxy.port)
            store = open_store(through.render_as_string(hide_password=False))
            store.reconnect_for = 30.0
            try:
                yield store, proxy
            finally:
                store.close()


def _outage_in_background(proxy: TcpProxy) -> threading.Thread:
    proxy.cut()
    mender = threading.Thread(target=proxy.outage, args=(OUTAGE,), daemon=True)
    mender.start()
    return mender


def test_a_read_and_a_write_ride_out_a_3s_outage(proxied: tuple[Store, TcpProxy]) -> None:
    store, proxy = proxied
    first = store.create_release(release())
    # the pooled connections are dropped and new ones refused while the outage lasts
    mender = _outage_in_background(proxy)
    assert store.get_release(first.id).id == first.id
    mender.join()
    assert proxy.refused > 0  # the read did meet the outage
    refused = proxy.refused
    mender = _outage_in_background(proxy)
    second = store.create_release(release(params={"version": "1.4.3"}))
    mender.join()
    assert proxy.refused > refused
    assert {r.id for r in store.list_releases()} == {first.id, second.id}


def test_a_transaction_cut_before_its_commit_runs_again(
    proxied: tuple[Store, TcpProxy], caplog: pytest.LogCaptureFixture
) -> None:
    """The connection breaks under the transaction's first statement: the server rolls it
    back, and the store call runs again once the database answers; the write is there once."""
    store, proxy = proxied
    statements: list[str] = []

    def cut_on_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)
        if len(statements) == 1:
            _outage_in_background(proxy)

    engine = store._write_engine
    event.listen(engine, "before_cursor_execute", cut_on_first)
    try:
        created = store.create_release(release())
    finally:
        event.remove(engine, "before_cursor_execute", cut_on_first)
    # the first try failed at its first statement; the call ran again, whole
    assert "ReleaseStore.create_release: the state database connection was lost" in caplog.text
    assert statements.count(statements[0]) >= 2
    assert proxy.refused > 0
    assert [r.id for r in store.list_releases()] == [created.id]


def test_a_transaction_cut_at_its_commit_is_not_run_again(
    proxied: tuple[Store, TcpProxy],
) -> None:
    """The connection breaks as the commit goes out: whether it committed is unknown, so
    the call fails (a StoreError, not a retried ConnectionLost) and runs once."""
    store, proxy = proxied
    commits: list[int] = []

    def cut_at_commit(conn: Any) -> None:
        commits.append(1)
        proxy.cut()

    engine = store._write_engine
    event.listen(engine, "commit", cut_at_commit)
    try:
        with pytest.raises(StoreError) as failed:
            store.create_release(release())
    finally:
        event.remove(engine, "commit", cut_at_commit)
        proxy.restore()
    assert not isinstance(failed.value, ConnectionLost)
    assert "failed while creating a release" in str(failed.value)
    assert commits == [1]


def test_a_read_cut_at_its_last_round_trip_runs_again(
    proxied: tuple[Store, TcpProxy], caplog: pytest.LogCaptureFixture
) -> None:
    """A read wrote nothing, so a connection lost as its last round trip goes out (for a
    read in a transaction its commit, the moment a write's call must not run again) loses
    nothing: the read runs again once the database answers (seen in a rehearsal: the
    follower's read failed at its commit, and the demo stopped its engine in the middle of
    the release). On PostgreSQL a read runs in autocommit (no BEGIN, no COMMIT: see
    ``store/postgresql.py``), so its last round trip is its statement."""
    store, proxy = proxied
    created = store.create_release(release())
    last: list[str] = []

    def cut_at_first_read(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        last.append(statement)
        if len(last) == 1:
            _outage_in_background(proxy)

    engine = store._read_engine
    assert engine.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    event.listen(engine, "before_cursor_execute", cut_at_first_read)
    try:
        assert store.get_release(created.id).id == created.id
    finally:
        event.remove(engine, "before_cursor_execute", cut_at_first_read)
    assert len(last) >= 2  # the first try's statement broke; a later try's went through
    assert "ReleaseStore.get_release: the state database connection was lost" in caplog.text
    assert proxy.refused > 0


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    proxied: tuple[Store, TcpProxy],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pooled connection unused for longer than ``PING_AFTER_S`` is pinged as it is
    checked out, and one the server dropped is replaced there: the call does not fail
    and is not run again. (A connection used a moment ago is not pinged: its loss is met
    at its first statement, as in the tests above.)"""
    from shipcaptain.store import postgresql

    store, proxy = proxied
    created = store.create_release(release())
    monkeypatch.setattr(postgresql, "PING_AFTER_S", 0.0)  # every connection counts as idle
    proxy.cut()  # the pooled connections are dropped; new ones are let through again
    proxy.restore()
    assert store.get_release(created.id).id == created.id
    assert "connection was lost" not in caplog.text


def test_a_call_that_wrote_pings_its_next_connection_however_recently_used(
    proxied: tuple[Store, TcpProxy],
) -> None:
    """A store call that committed a write cannot run again, so the connection its next
    transaction checks out is pinged even if it was used a moment ago: one the server
    dropped in between is replaced, and the call's second write goes through."""
    from shipcaptain.store.base import _retried

    store, proxy = proxied
    created = store.create_release(release())

    @_retried
    def two_writes() -> None:
        with store._transaction("the first write", write=True) as conn:
            conn.exec_driver_sql("SELECT 1")
        proxy.cut()  # the pooled connection, used a moment ago, is dropped
        proxy.restore()
        with store._transaction("the second write", write=True) as conn:
            conn.exec_driver_sql("SELECT 1")

    two_writes()
    assert store.get_release(created.id).id == created.id
