"""A server the sandbox (or an action) starts is stopped when the process that started it
dies without stopping it: kill -9, or a test stopped by pytest-timeout. Before, a throwaway
PostgreSQL (``pg_ctl`` leaves it running on its own) and a ``kubectl proxy`` stayed up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import pg_cluster
from helpers.processes import wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is gone too
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def owner(code: str) -> tuple[subprocess.Popen[str], str]:
    """A Python process running ``code``, which prints one line once its server is up."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"the owner exited with {proc.wait()}"
    return proc, line


def test_a_process_killed_with_9_has_its_server_stopped(tmp_path: Path) -> None:
    server = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        proc, said = owner(
            f"""
            from shipcaptain.watchdog import Watchdog
            Watchdog([["kill", "{server.pid}"], ["touch", "{tmp_path / "stopped"}"]])
            print("up", flush=True)
            import time; time.sleep(600)
            """
        )
        assert said == "up"
        assert server.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)  # the owner's whole group: not its watchdog
        proc.communicate()
        server.wait(timeout=30)
        wait_for((tmp_path / "stopped").exists, what="the watchdog's second command")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_disarmed_watchdog_does_nothing(tmp_path: Path) -> None:
    from shipcaptain.watchdog import Watchdog

    watchdog = Watchdog([["touch", str(tmp_path / "ran")]])
    pid = watchdog.pid
    assert pid is not None
    watchdog.disarm()
    assert not alive(pid)
    assert not (tmp_path / "ran").exists()


@pytest.mark.skipif(not pg_cluster.available(), reason="no PostgreSQL server programs here")
def test_a_throwaway_postgresql_is_stopped_when_its_owner_is_killed() -> None:
    proc, said = owner(
        """
        from shipcaptain.sandbox.postgres import _INITDB, PostgresServer
        pg = PostgresServer().start()
        (initdb, _), = _INITDB._made.values()
        print(pg.port, initdb.parent, pg.root, flush=True)
        import time; time.sleep(600)
        """
    )
    port, made, root = said.split(" ", 2)
    assert Path(made).is_dir()  # the process's initdb, copied for its clusters
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
        pass  # it serves
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()

    def stopped() -> bool:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
        except OSError:
            return not Path(root).exists() and not Path(made).exists()
        return False

    wait_for(stopped, what="the throwaway server stopped, its folder and the initdb removed")


@pytest.mark.skipif(not pg_cluster.available(), reason="no PostgreSQL server programs here")
def test_clusters_copied_from_one_initdb_are_apart_and_it_goes_with_its_process() -> None:
    """A process runs initdb once and copies it for each cluster: what one cluster holds
    the other does not, and the initdb's folder is removed when the process ends."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import psycopg
                from shipcaptain.sandbox import postgres
                with postgres.PostgresServer() as one, postgres.PostgresServer() as two:
                    (initdb, _), = postgres._INITDB._made.values()
                    with psycopg.connect(one.url, autocommit=True) as conn:
                        conn.execute("create table only_here (x int)")
                    with psycopg.connect(two.url, autocommit=True) as conn:
                        found = conn.execute("select to_regclass('only_here')").fetchone()
                    print(found[0], one.root != two.root, initdb.parent, flush=True)
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    elsewhere, apart, made = done.stdout.split()
    assert (elsewhere, apart) == ("None", "True")
    assert not Path(made).exists()


def serving(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not pg_cluster.available(), reason="no PostgreSQL server programs here")
def test_a_primary_and_its_replica_are_both_stopped_when_their_owner_is_killed() -> None:
    # the replica's data folder is inside the primary's: its watchdog and the primary's race,
    # and when the primary's removes the folder first the replica's finds nothing to stop it
    # by. The race lost for sure: the replica's own watchdog is gone before the owner
    proc, said = owner(
        """
        from shipcaptain.sandbox.postgres import PostgresWithReplica
        pg = PostgresWithReplica().start()
        pg.replica._watchdog._proc.kill()
        pg.replica._watchdog._proc.wait()
        print(pg.primary.port, pg.replica.port, pg.primary.root, flush=True)
        import time; time.sleep(600)
        """
    )
    primary, replica, root = said.split(" ", 2)
    assert serving(int(primary))
    assert serving(int(replica))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    # well within the minute after which a server notices its lock file gone by itself
    wait_for(
        lambda: not serving(int(primary)) and not serving(int(replica)) and not Path(root).exists(),
        timeout=20,
        what="the primary and its replica stopped and their folder removed",
    )
