"""A throwaway PostgreSQL primary with a streaming replica, from Debian's PG 15 binaries run
as the postgres user. Ports: the kernel picks free ones (bind to port 0, then release it just
before the server starts). Data directories live in a temporary directory and are removed."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    """The binaries and root (for runuser) are here, or CI requires PostgreSQL: then the
    tests run and fail loudly rather than being skipped."""
    if os.environ.get("SHIPCAPTAIN_REQUIRE_POSTGRES"):
        return True
    return (BIN / "initdb").exists() and shutil.which("runuser") is not None and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60
    )


@dataclass(frozen=True)
class Cluster:
    primary_url: str
    replica_url: str


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def primary_with_replica() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="sc-pg-"))
    os.chmod(root, 0o755)
    shutil.chown(root, "postgres", "postgres")
    primary, replica = root / "primary", root / "replica"
    started: list[Path] = []
    try:
        _as_postgres(
            str(BIN / "initdb"), "-D", str(primary), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        p_port = _free_port()
        opts = (
            f"-p {p_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
            "-c wal_level=replica -c fsync=off"
        )
        _as_postgres(
            str(BIN / "pg_ctl"),
            "-D",
            str(primary),
            "-o",
            opts,
            "-l",
            str(root / "primary.log"),
            "-w",
            "start",
        )
        started.append(primary)
        primary_url = f"postgresql://postgres@127.0.0.1:{p_port}/postgres"
        _wait_ready(primary_url)
        _as_postgres(
            str(BIN / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(p_port),
            "-U",
            "postgres",
            "-D",
            str(replica),
            "-R",
            "-X",
            "stream",
        )
        r_port = _free_port()
        r_opts = (
            f"-p {r_port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={root} -c fsync=off"
        )
        _as_postgres(
            str(BIN / "pg_ctl"),
            "-D",
            str(replica),
            "-o",
            r_opts,
            "-l",
            str(root / "replica.log"),
            "-w",
            "start",
        )
        started.append(replica)
        replica_url = f"postgresql://postgres@127.0.0.1:{r_port}/postgres"
        _wait_ready(replica_url)
        yield Cluster(primary_url, replica_url)
    finally:
        for data in reversed(started):
            with contextlib.suppress(subprocess.CalledProcessError):
                _as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
