"""shipcaptain on a PostgreSQL server whose shipcaptain role may connect only to the state
database, as a hardened server is set up (``REVOKE CONNECT ON DATABASE postgres FROM
PUBLIC``): a release start and a worker run without connecting anywhere else, so nothing
warns on the person's terminal and nothing is refused in the server's log, where a DBA's
alerts look for ``FATAL`` lines. The real CLI as subprocesses, on a throwaway server of its
own (the permissions are the server's)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from helpers import pg_cluster
from helpers.processes import wait_for
from helpers.team import CLI, People, make_team, token_env
from shipcaptain.engine.system_database import SystemDatabaseEngine
from shipcaptain.sandbox.postgres import PostgresServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not pg_cluster.available(), reason="PostgreSQL's server programs"),
]

RUNBOOK = """\
name: locked-down
phases:
  - id: one
    steps:
      - {id: a, action: shell, with: {command: "true"}}
      - {id: b, action: shell, needs: [a], with: {command: "true"}}
"""


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as pg:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute("CREATE ROLE shipcaptain LOGIN")
            conn.execute("CREATE DATABASE state OWNER shipcaptain")
            for other in ("postgres", "template1"):
                conn.execute(f"REVOKE CONNECT ON DATABASE {other} FROM PUBLIC")
        yield pg


def refused(pg: PostgresServer) -> list[str]:
    """The server log's FATAL and ERROR lines."""
    assert pg.root is not None
    log = "\n".join(p.read_text(errors="replace") for p in Path(pg.root).glob("*.log"))
    return [line for line in log.splitlines() if "FATAL:" in line or "ERROR:" in line]


def test_an_engine_connects_only_to_the_state_database(
    server: PostgresServer, tmp_path: Path
) -> None:
    url = server.url.replace("postgres@", "shipcaptain@").rsplit("/", 1)[0] + "/state"
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(url.rsplit("/", 1)[0] + "/postgres").close()  # as the role is set up
    tokens = make_team(url, ["casey", "ops"], admin="casey")
    (tmp_path / "runbook.yaml").write_text(RUNBOOK)
    casey = People(url, tmp_path)
    casey.env |= token_env(tokens, "casey")

    def shipcaptain(*args: str) -> subprocess.CompletedProcess[str]:
        done = casey.run(*args)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "WARNING" not in done.stderr, done.stderr  # DBOS's "Could not connect..."
        return done

    before = refused(server)
    assert "succeeded" in shipcaptain("release", "start", "runbook.yaml", "--json").stdout
    assert refused(server) == before

    # a worker, which launches its engine the same way, runs a release queued by a command
    # that hands DBOS the release through its client
    worker = subprocess.Popen(
        [*CLI, "worker", "--id", "w-locked"],
        env=casey.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        shipcaptain("release", "start", "runbook.yaml", "--detach", "--json")
        with psycopg.connect(url) as conn:

            def both_succeeded() -> bool:
                rows = conn.execute("SELECT status FROM sc_releases").fetchall()
                conn.commit()
                return [r[0] for r in rows] == ["succeeded", "succeeded"]

            wait_for(both_succeeded, 60, what="the worker to run the queued release")
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=30)
    assert "WARNING" not in out, out[-3000:]
    assert refused(server) == before


@pytest.mark.parametrize(
    ("query", "timeout", "connect_timeout"),
    [
        ("", "1min", "10"),  # DBOS's own: a minute idle in a transaction, 10 s to connect
        ("?options=-c%20idle_in_transaction_session_timeout%3D5s&connect_timeout=3", "5s", "3"),
        ("?options=-c%20search_path%3Dpublic", "1min", "10"),  # the URL's options kept
    ],
)
def test_dbos_s_connections_are_set_up_as_dbos_sets_up_its_own(
    server: PostgresServer, query: str, timeout: str, connect_timeout: str
) -> None:
    made = SystemDatabaseEngine(server.url + query)
    try:
        with made.engine.connect() as conn:
            shown = conn.exec_driver_sql(
                "SELECT current_setting('idle_in_transaction_session_timeout'),"
                " current_setting('application_name'), current_setting('search_path')"
            ).one()
            dsn = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert shown[0] == timeout
        assert shown[1] == "dbos_transact"
        if "search_path" in query:
            assert shown[2] == "public"
        assert dsn["connect_timeout"] == connect_timeout
        assert made.engine.pool.size() == 2  # type: ignore[attr-defined]
    finally:
        made.dispose()


def test_a_connection_given_back_after_the_engine_was_disposed_is_closed(
    server: PostgresServer,
) -> None:
    made = SystemDatabaseEngine(server.url)
    straggler = made.engine.connect()  # a thread of DBOS's still holding one
    raw = straggler.connection.dbapi_connection
    assert raw is not None
    made.dispose()
    assert not raw.closed
    straggler.close()  # given back after the dispose: closed, not kept in the pool
    assert raw.closed
