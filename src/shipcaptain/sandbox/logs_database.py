"""A throwaway PostgreSQL cluster standing in for the application's logs database, so the
demo's ``sql_check`` step runs a real read-only query against real PostgreSQL.

It uses the PostgreSQL server binaries (``initdb``, ``pg_ctl``; Debian puts them in
``/usr/lib/postgresql/<version>/bin``). The cluster lives in a temporary directory, listens
on 127.0.0.1 on a free port with trust authentication, and is removed when stopped. As
root, PostgreSQL refuses to run, so it runs as the ``postgres`` user (``runuser``).

``available()`` says whether the binaries are there; the demo says so when they are not.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

from shipcaptain.errors import ShipError
from shipcaptain.sandbox.service import Service

#: the logs of the last days: ordinary lines, and one RLS error from two days ago
SEED = """
create table logs (at timestamptz not null, level text not null, message text not null);
insert into logs values
  (now() - interval '2 days', 'error',
   'new row violates row-level security policy for table "canvases"'),
  (now() - interval '20 minutes', 'info', 'GET /api/canvases 200'),
  (now() - interval '5 minutes', 'info', 'POST /api/canvases/42/archive 200');
"""


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return versions[0].parent if versions else None


def available() -> bool:
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        return False
    return os.geteuid() != 0 or shutil.which("runuser") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LogsDatabase(Service):
    """``with LogsDatabase() as db: db.url`` -> ``postgresql://postgres@127.0.0.1:<port>/logs``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._root: Path | None = None
        self._as_postgres: list[str] = []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/logs"

    def _run(self, *args: str) -> None:
        try:
            subprocess.run([*self._as_postgres, *args], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            raise ShipError(f"{Path(args[0]).name} failed: {exc.stderr.strip()[-1500:]}") from exc

    def start(self) -> LogsDatabase:
        bindir = _bindir()
        if bindir is None:
            raise ShipError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self._root = Path(tempfile.mkdtemp(prefix="shipcaptain-logs-db-"))
        if os.geteuid() == 0:
            shutil.chown(self._root, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        data = self._root / "data"
        self._run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.port = self.port or _free_port()
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self._root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("create database logs")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(SEED.encode())
        return self

    def stop(self) -> None:
        root, self._root = self._root, None
        if root is None:
            return
        bindir = _bindir()
        if bindir is not None and (root / "data" / "postmaster.pid").exists():
            subprocess.run(
                [
                    *self._as_postgres,
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(root / "data"),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m shipcaptain.sandbox.logs_database``: print the URL, serve until stopped."""
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(
        prog="python -m shipcaptain.sandbox.logs_database",
        description="Run the sandbox's logs database (PostgreSQL); print its URL; "
        "remove it when stopped.",
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 takes a free one")
    args = parser.parse_args(argv)
    if not available():
        print("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        return 1
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    with LogsDatabase(port=args.port) as db:
        print(db.url, flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
