"""The SQLite writer queue: one process's transactions on one file take turns in Python
(microseconds) instead of in SQLite's busy handler (milliseconds), whichever library
opened the connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection

from shipcaptain.store import Store, open_store
from shipcaptain.store.sqlite import writer_queue


def test_another_librarys_transactions_on_the_file_wait_their_turn(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    undo = store.queue_all_transactions()
    foreign = create_engine(f"sqlite:///{path}")
    held = threading.Event()
    order: list[str] = []

    def hold_a_transaction() -> None:
        with foreign.begin() as conn:
            conn.execute(text("SELECT 1"))
            held.set()
            time.sleep(0.3)
            order.append("foreign ends")

    try:
        worker = threading.Thread(target=hold_a_transaction)
        worker.start()
        assert held.wait(5)
        store.append_event(None, None, "test.write", "tester", "after the foreign one")
        order.append("store wrote")
        worker.join(5)
        assert order == ["foreign ends", "store wrote"]
    finally:
        undo()
    # once undone, a foreign transaction no longer holds the queue
    with foreign.begin() as conn:
        conn.execute(text("SELECT 1"))
        assert writer_queue(str(path))._lock.acquire(timeout=1)
        writer_queue(str(path))._lock.release()
    foreign.dispose()
    store.close()


def test_a_transaction_that_never_began_gives_the_queue_back(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = open_store(f"sqlite:///{path}")
    undo = store.queue_all_transactions()
    foreign = create_engine(f"sqlite:///{path}")

    def refuse(conn: Connection) -> None:  # runs after the queue was taken
        raise RuntimeError("BEGIN failed")

    event.listen(foreign, "begin", refuse)
    try:
        with foreign.connect() as conn, pytest.raises(RuntimeError, match="BEGIN failed"):
            conn.begin()
        taken = threading.Event()

        def other_thread() -> None:
            if writer_queue(str(path))._lock.acquire(timeout=2):
                writer_queue(str(path))._lock.release()
                taken.set()

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(5)
        assert taken.is_set(), "the queue was not given back when the connection closed"
    finally:
        undo()
        foreign.dispose()
        store.close()


def _writes(store: Store, within: float = 5.0) -> bool:
    """Whether a write of ``store`` gets its turn within ``within`` seconds (in a thread
    of its own: one that never gets it is left waiting)."""
    written = threading.Event()

    def write() -> None:
        store.append_event(None, None, "test.write", "tester", "its turn came")
        written.set()

    threading.Thread(target=write, daemon=True).start()
    return written.wait(within)


def _commit_after_the_undo(conn: Connection, transaction: Any, undo: Callable[[], None]) -> None:
    undo()
    transaction.commit()


def _lost(conn: Connection, transaction: Any, undo: Callable[[], None]) -> None:
    conn.invalidate()  # as when the database goes away under it
    transaction.rollback()


@pytest.mark.parametrize("end", [_commit_after_the_undo, _lost], ids=["undone", "lost"])
def test_a_transaction_gives_its_turn_back_however_it_ends(
    tmp_path: Path, end: Callable[[Connection, Any, Callable[[], None]], None]
) -> None:
    """undone: an engine stopping undoes the queuing while a workflow thread DBOS left
    running may be inside a transaction, which gives its turn back when it ends (the
    listener that did was removed with the undo, and the process's next write waited for
    ever: a rehearsal hung at its next release). lost: the listeners hear every connection
    of the process, a PostgreSQL store's too; one lost inside its transaction is rolled
    back without them asking it for anything (they asked for its ``info``, which tried to
    reconnect it and raised: PostgreSQL outage tests in the same process failed), and its
    turn goes back when it is invalidated."""
    path = tmp_path / "state.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    undo = store.queue_all_transactions()
    foreign = create_engine(f"sqlite:///{path}")
    try:
        with foreign.connect() as conn:
            transaction = conn.begin()  # takes the turn
            conn.execute(text("SELECT 1"))
            end(conn, transaction, undo)
        assert _writes(store), "the turn of the transaction was kept"
    finally:
        undo()
        foreign.dispose()
        store.close()


def test_the_stores_reads_do_not_wait_for_the_queue(tmp_path: Path) -> None:
    """Readers must not sit on the pool's connections while waiting for a turn: with more
    readers than the pool has connections, a writer would then wait for a connection."""
    path = tmp_path / "state.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    undo = store.queue_all_transactions()
    foreign = create_engine(f"sqlite:///{path}")
    held = threading.Event()
    release = threading.Event()

    def hold_a_transaction() -> None:
        with foreign.begin() as conn:
            conn.execute(text("SELECT 1"))
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_a_transaction)
    holder.start()
    try:
        assert held.wait(5)
        done: list[int] = []

        def read(i: int) -> None:
            store.list_releases()
            done.append(i)

        readers = [threading.Thread(target=read, args=(i,)) for i in range(30)]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join(10)
        assert len(done) == 30  # all read while the queue was held
    finally:
        release.set()
        holder.join(5)
        undo()
        foreign.dispose()
        store.close()
