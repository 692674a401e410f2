"""The production topology on one machine: ``shipcaptain server --no-workers`` and several
``shipcaptain worker`` processes on one PostgreSQL state database, and people using the CLI
with ``--server`` (each with their own token), every one its own process.

``shipcaptain demo --team`` shows it to a person; the acceptance suite
(tests/acceptance/test_production_topology.py) checks it.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import click

from shipcaptain.errors import ShipError
from shipcaptain.store import GateRecord

#: settings each process of the topology gets from it, not from the caller's environment
_OWN = frozenset(
    f"SHIPCAPTAIN_{name}" for name in ("TOKEN", "SERVER", "WORKER_ID", "DATABASE_URL", "DATA_DIR")
)


def _shipcaptain(*args: str) -> list[str]:
    return [sys.executable, "-m", "shipcaptain", *args]


class Topology:
    """A server (it only serves) and ``workers`` engine processes on ``database_url``,
    their logs under ``logs``; :meth:`cli` runs a command as a person, through the server.

    ``env``: the environment of every process (the sandbox's tools and services); the
    workers run as the person of ``worker_token`` (who needs ``worker.run``)."""

    def __init__(
        self,
        database_url: str,
        *,
        env: dict[str, str],
        logs: Path,
        runbooks: Path,
        worker_token: str,
        workers: int = 2,
        heartbeat_interval: float = 0.5,
        takeover_after: float = 3.0,
    ) -> None:
        self.logs = logs
        self.runbooks = runbooks
        self.env = {
            **{k: v for k, v in env.items() if k not in _OWN},
            "SHIPCAPTAIN_DATABASE_URL": database_url,
            "SHIPCAPTAIN_DATA_DIR": str(logs / "server-data"),
            "SHIPCAPTAIN_HEARTBEAT_INTERVAL": str(heartbeat_interval),
            "SHIPCAPTAIN_TAKEOVER_AFTER": str(takeover_after),
            "PYTHONUNBUFFERED": "1",
        }
        self.worker_token = worker_token
        self.worker_ids = [f"team-worker-{n}" for n in range(1, workers + 1)]
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.server: subprocess.Popen[bytes] | None = None
        self.url = ""
        #: the CLI's own state directory: with --server it must stay empty
        self.cli_data_dir = logs / "cli-data"

    # ---- processes ----

    def _start(self, name: str, args: list[str], token: str | None) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        if token is not None:
            env["SHIPCAPTAIN_TOKEN"] = token
        with (self.logs / f"{name}.log").open("wb") as out:
            return subprocess.Popen(
                _shipcaptain(*args), env=env, cwd=self.runbooks, stdout=out, stderr=out
            )

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def start(self) -> Topology:
        self.server = self._start(
            "server",
            ["server", "--port", "0", "--no-workers", "--runbooks", str(self.runbooks)],
            None,
        )
        deadline = time.monotonic() + 60
        while not (found := re.search(r"server on (https?://\S+?)/?\s", self.log("server"))):
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise ShipError(f"the server did not start:\n{self.log('server')}")
            time.sleep(0.1)
        self.url = found.group(1)
        for executor_id in self.worker_ids:
            self.start_worker(executor_id)
        return self

    def start_worker(self, executor_id: str) -> subprocess.Popen[bytes]:
        proc = self._start(executor_id, ["worker", "--id", executor_id], self.worker_token)
        self.workers[executor_id] = proc
        return proc

    def kill(self, executor_id: str) -> int:
        """kill -9 of a worker; its pid."""
        proc = self.workers[executor_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        return proc.pid

    def stop(self) -> None:
        """SIGTERM (SIGINT for the server), then SIGKILL whatever is still running."""
        running = [(p, signal.SIGTERM) for p in self.workers.values()]
        if self.server is not None:
            running.append((self.server, signal.SIGINT))
        for proc, sig in running:
            if proc.poll() is None:
                proc.send_signal(sig)
        for proc, _ in running:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> Topology:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- people ----

    def cli_args(self) -> list[str]:
        """The command line of the CLI, before its arguments."""
        return _shipcaptain()

    def cli_env(self, token: str) -> dict[str, str]:
        """The CLI's environment as the person of ``token``: the server's address, no
        state database, its own (empty) data directory."""
        env = {k: v for k, v in self.env.items() if k != "SHIPCAPTAIN_DATABASE_URL"}
        return env | {
            "SHIPCAPTAIN_SERVER": self.url,
            "SHIPCAPTAIN_TOKEN": token,
            "SHIPCAPTAIN_DATA_DIR": str(self.cli_data_dir),
        }

    def cli(self, token: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``shipcaptain ARGS`` with --server, as the person of ``token``."""
        return subprocess.run(
            [*self.cli_args(), *args],
            env=self.cli_env(token),
            cwd=self.runbooks,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


#: the sandbox's drill severity: deadlines of seconds, so the reminder and the escalation of
#: an incident's SLA clock arrive while one watches
DRILL = "P3"


def add_drill_severity(runbook: Path, acknowledge: str = "4s", mitigate: str = "10m") -> str:
    """Add the drill severity to the SLA table of the sandbox's copy of ``runbook``."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    document = yaml.load(runbook.read_text(encoding="utf-8"))
    document["slas"][DRILL] = {
        "description": "Sandbox drill: deadlines of seconds.",
        "acknowledge": acknowledge,
        "mitigate": mitigate,
    }
    with runbook.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    return DRILL


def approve_through(
    topology: Topology, tokens: dict[str, str], release_id: str
) -> Callable[[str, GateRecord], None]:
    """How the demo's people approve in the topology: `shipcaptain release approve` with
    --server, each with their own token."""

    def decide(person: str, gate: GateRecord) -> None:
        done = topology.cli(
            tokens[person],
            "release", "approve", release_id, gate.step_id, "-m", "checked in the sandbox",
        )  # fmt: skip
        said = (done.stdout.strip() or done.stderr.strip()).splitlines()
        click.echo(f"    $ shipcaptain release approve {gate.step_id}: {' '.join(said)}")

    return decide
