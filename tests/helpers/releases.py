"""Running releases in tests: an engine in this process on a throwaway database."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.processes import wait_for
from shipcaptain.client import FINISHED, Client
from shipcaptain.engine import engine as engine_module
from shipcaptain.engine.engine import Engine
from shipcaptain.settings import Settings
from shipcaptain.store import ReleaseRecord

#: how often the tests' engine polls for notifications (see :func:`harness`)
HARNESS_LISTENER_POLL = 0.05


def write_runbook(directory: Path, body: str, name: str = "runbook.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@dataclass
class Harness:
    settings: Settings
    client: Client
    engine: Engine
    workdir: Path

    def start(self, runbook: Path, user: str = "casey", **params: str) -> ReleaseRecord:
        record = self.client.create_release(runbook, params, user=user, workdir=self.workdir)
        self.engine.start(record.id, 1)
        return record

    def wait(self, release_id: str, timeout: float = 60) -> ReleaseRecord:
        release = self.client.wait_until_finished(release_id, timeout=timeout)
        assert release.status in FINISHED, f"release still {release.status} after {timeout}s"
        return release

    def wait_for_gate(self, release_id: str, step_id: str, timeout: float = 30) -> None:
        wait_for(
            lambda: any(
                g.step_id == step_id
                for g in self.client.store.list_gates(status="waiting", release_id=release_id)
            ),
            timeout,
            what=f"gate {step_id} to open",
        )

    def statuses(self, release_id: str) -> dict[str, str]:
        return {k: v.status for k, v in self.client.store.latest_step_runs(release_id).items()}


@contextmanager
def harness(database_url: str, tmp_path: Path, **settings_kw: Any) -> Iterator[Harness]:
    """``settings_kw``: more settings (notifiers ...)."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        poll_interval=0.05,
        heartbeat_interval=0.5,
        **settings_kw,
    )
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    client = Client(settings)
    engine = Engine(settings, executor_id="test-engine", store=client.store, workdir=workdir)
    # like the short poll interval above: a worker's engine polls for notifications (SQLite
    # has no LISTEN/NOTIFY) every 0.5 s, so a gate's decision reached it up to that late; the
    # tests' engine polls every 0.05 s (read once, by launch)
    worker_poll = engine_module.LISTENER_POLL_WORKER
    engine_module.LISTENER_POLL_WORKER = HARNESS_LISTENER_POLL
    try:
        engine.launch()
    finally:
        engine_module.LISTENER_POLL_WORKER = worker_poll
    # where a stop cannot wake a gate's wait (durable.receive), it looks whether the engine
    # is stopping once a slice, a worker's every 5 s: the tests' engine takes a CLI's 1 s
    engine.runtime.message_slice = engine_module.MESSAGE_SLICE_CLI
    try:
        yield Harness(settings=settings, client=client, engine=engine, workdir=workdir)
    finally:
        engine.shutdown()
        client.close()
