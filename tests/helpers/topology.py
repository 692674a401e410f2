"""The production topology for tests: a PostgreSQL state database, `shipcaptain worker`
processes and CLI commands, each a subprocess of its own, whose stderr is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helpers.databases import temporary_database
from helpers.processes import STACKS_ON_ABORT, ended_or_stacks, wait_for
from helpers.team import make_team, run_here
from shipcaptain.cli.main import LEFT_BEHIND
from shipcaptain.store import Store, open_store

#: three steps, the middle one slow; every line a step writes names its release, so the
#: effects of several releases can be told apart (``effects``)
SLOW_STEP_RUNBOOK = """
    name: fleet
    environment: "{{ environment }}"
    parameters:
      environment: {default: staging}
    phases:
      - id: one
        steps:
          - {id: a, action: shell, with: {command: "echo {{ release.id }}-a >> effects"}}
          - {id: slow, action: shell, needs: [a],
             with: {command: "echo {{ release.id }}-slow-start >> effects; sleep 4;
                              echo {{ release.id }}-slow >> effects"}}
          - {id: b, action: shell, needs: [slow],
             with: {command: "echo {{ release.id }}-b >> effects"}}
"""


def effects(workdir: Path) -> Counter[str]:
    """What the steps of ``SLOW_STEP_RUNBOOK`` wrote: line -> how many times."""
    path = workdir / "effects"
    return Counter(path.read_text().split() if path.exists() else [])


class WorkerProcess:
    """``shipcaptain worker --id <id>``; its stderr lines are read as they come (a full
    pipe would stop the worker)."""

    def __init__(self, worker_id: str, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.id = worker_id
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipcaptain", "worker", "--id", worker_id, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    @property
    def output(self) -> str:
        return "".join(self.stderr)

    def kill(self) -> None:
        """kill -9: no shutdown, no last heartbeat."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._drain.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


@dataclass
class Topology:
    """A state database, the tests' team, and the workers started on it."""

    url: str
    store: Store
    workdir: Path
    tokens: dict[str, str]
    settings: dict[str, str] = field(default_factory=dict)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)

    def env(self, user: str = "ops", **more: str) -> dict[str, str]:
        """The environment of a process acting as ``user`` on this database."""
        env = {
            **os.environ,
            "SHIPCAPTAIN_DATABASE_URL": self.url,
            "SHIPCAPTAIN_DATA_DIR": str(self.workdir / "data"),
            "SHIPCAPTAIN_HEARTBEAT_INTERVAL": "0.5",
            "SHIPCAPTAIN_TAKEOVER_AFTER": "3",
            **self.settings,
            **more,
        }
        env.pop("SHIPCAPTAIN_SERVER", None)
        env["SHIPCAPTAIN_TOKEN"] = self.tokens[user]
        return env

    def worker(self, worker_id: str, *args: str, user: str = "ops") -> WorkerProcess:
        started = WorkerProcess(worker_id, self.env(user), self.workdir, *args)
        self.workers[worker_id] = started
        return started

    def running_worker(self, worker_id: str, *args: str, user: str = "ops") -> WorkerProcess:
        """A worker whose engine has launched (it said so on stderr)."""
        started = self.worker(worker_id, *args, user=user)

        def launched() -> bool:
            assert started.proc.poll() is None, started.output
            return "durable functions:" in started.output

        wait_for(launched, 60, what=f"worker {worker_id} to start")
        return started

    def cli(self, *args: str, user: str = "casey") -> subprocess.CompletedProcess[str]:
        """A CLI command as its own process (not checked: tests look at the exit code). One
        that has not ended after 60 s fails the test with every thread's stack (what kept it
        from exiting), not only a timeout."""
        command = [sys.executable, "-m", "shipcaptain", *args]
        proc = subprocess.Popen(
            command,
            env=self.env(user) | STACKS_ON_ABORT,
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = ended_or_stacks(proc, 60, what=f"shipcaptain {' '.join(args)}")
        # the command answered, then left threads that never ended (main's exit guard):
        # the product's bug all the same, failed here with their stacks
        assert LEFT_BEHIND not in err, err
        return subprocess.CompletedProcess(command, proc.returncode, out, err)

    def here(self, *args: str, user: str = "casey") -> subprocess.CompletedProcess[str]:
        """The same command in this process (click's runner, see ``run_here``): for releases
        queued as a test's precondition (``release start --detach``) and views read to check
        or wait for a state, where a child would add its start-up and nothing the test looks
        at. The commands a test is about stay ``cli``."""
        return run_here(self.env(user), self.workdir, *args)

    def alive(self) -> set[str]:
        return {w.executor_id for w in self.store.list_workers()}


@contextmanager
def topology(tmp_path: Path, **settings: str) -> Iterator[Topology]:
    """A throwaway PostgreSQL state database with the tests' team; every worker started on
    it is stopped (or killed) afterwards."""
    with temporary_database("postgresql", tmp_path) as url:
        store = open_store(url)
        store.migrate()
        tokens = make_team(url)
        running = Topology(url, store, tmp_path, tokens, settings=settings)
        try:
            yield running
        finally:
            for w in running.workers.values():
                w.stop()
            store.close()
