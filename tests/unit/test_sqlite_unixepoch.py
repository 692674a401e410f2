"""DBOS gives its SQLite tables ``DEFAULT (unixepoch('subsec') * 1000)`` on Python 3.12 and
newer; a Python built against a SQLite older than 3.42 (Debian 12's 3.40) gets NULL from
that, and every workflow insert failed ("NOT NULL constraint failed:
workflow_status.created_at"). Every SQLite connection of a process that has loaded the
store understands it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from shipcaptain.store.sqlite import unixepoch


def test_a_table_with_dbos_default_timestamp_takes_a_row(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'dbos.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE workflow_status (workflow_uuid TEXT PRIMARY KEY, "
                    "created_at INTEGER NOT NULL DEFAULT (unixepoch('subsec') * 1000))"
                )
            )
            before = time.time() * 1000
            conn.execute(text("INSERT INTO workflow_status (workflow_uuid) VALUES ('w1')"))
            created = conn.execute(text("SELECT created_at FROM workflow_status")).scalar_one()
        assert before - 1000 <= created <= time.time() * 1000 + 1000
    finally:
        engine.dispose()


def test_unixepoch_gives_the_current_time_and_refuses_other_times() -> None:
    assert isinstance(unixepoch(), int)
    assert isinstance(unixepoch("now"), int)
    subsec = unixepoch("subsec")
    assert isinstance(subsec, float)
    assert abs(subsec - time.time()) < 5
    assert abs(unixepoch("now", "subsec") - time.time()) < 5
    with pytest.raises(ValueError, match="only the current time"):
        unixepoch("2020-01-01")
