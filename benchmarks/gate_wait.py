"""What a gate waiting for people costs: checkpoints recorded, CPU, and the replay of a
release taken over while it waits.

A release waits at an approval gate in an engine in this process (as the integration tests
run one), in two ways, measured in the same run:

* **woken**: the gate's wait as it is now: a decision or the engine's stop wakes it
  (``dbos_private.wake_receivers``), so it waits in one piece (``durable.WOKEN_SLICE``);
* **sliced**: the wait of a DBOS whose waits cannot be woken, and of the code before
  (stop 46): it ends every slice (``--slice``, default 1 s: a CLI's engine; a worker's was
  5 s) to look whether the process is stopping, and each end records three checkpoints.

For each: the checkpoints the gate's workflow recorded over ``--wait`` seconds and the
engine process's CPU meanwhile (every thread: DBOS's listener and queues too). Then the
engine stops and a new one recovers the release, as a worker taking it over does (DBOS
replays the gate's workflow, one checkpoint at a time): the time from the new engine's
launch until the gate waits again. To make that replay long enough to time, the gate first
waits ``--replay-wait`` seconds in slices of ``--replay-slice`` (many checkpoints quickly);
the report gives the replay's cost per thousand checkpoints, and what a day's wait at 1 s
and 5 s slices would cost to take over.

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/gate_wait.py
    python benchmarks/gate_wait.py --backend postgresql --wait 30
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_overhead import postgres_database, process_cpu

RUNBOOK = """\
name: bench-gate
roles:
  oncall_sre: {title: On-Call SRE}
phases:
  - id: ship
    steps:
      - {id: go, action: approval, with: {prompt: ship?, roles: [oncall_sre], timeout: 48h}}
"""


@contextlib.contextmanager
def _woken(can_wake: bool) -> Iterator[None]:
    """The gate's wait woken (as now), or not (a DBOS whose waits cannot be woken)."""
    from shipcaptain.engine import dbos_private

    kept = dbos_private.can_wake_receivers
    if not can_wake:
        dbos_private.can_wake_receivers = lambda: False
    try:
        yield
    finally:
        dbos_private.can_wake_receivers = kept


@contextlib.contextmanager
def _engine(url: str, folder: Path, slice_s: float) -> Iterator[Any]:
    from shipcaptain.client import Client
    from shipcaptain.engine.engine import Engine
    from shipcaptain.settings import Settings

    settings = Settings(database_url=url, data_dir=folder / "data", poll_interval=0.05)
    client = Client(settings)
    engine = Engine(settings, executor_id="bench-gate", store=client.store, workdir=folder)
    engine.launch()
    engine.runtime.message_slice = slice_s
    try:
        yield client, engine
    finally:
        engine.shutdown()
        client.close()


def _steps(workflow_id: str) -> int:
    from dbos import DBOS

    return len(DBOS.list_workflow_steps(workflow_id))


def _until(check: Any, timeout: float = 60.0) -> None:
    give_up = time.monotonic() + timeout
    while not check():
        if time.monotonic() > give_up:
            raise SystemExit("the gate did not wait in time")
        time.sleep(0.005)


def measure(
    url: str, folder: Path, *, woken: bool, wait: float, slice_s: float
) -> dict[str, float]:
    """One gate's wait (``woken`` or in slices of ``slice_s``) over ``wait`` seconds, then
    its take-over by a new engine."""
    from shipcaptain.engine import dbos_private
    from shipcaptain.engine.ids import step_workflow_id

    (folder / "runbook.yaml").write_text(RUNBOOK)
    out: dict[str, float] = {}
    with _woken(woken):
        # the steady wait: checkpoints and CPU over `wait` seconds
        with _engine(url, folder, slice_s) as (client, engine):
            release = client.create_release(folder / "runbook.yaml", {}, user="bench")
            engine.start(release.id, 1)
            gate = step_workflow_id(release.id, 1, "go")
            _until(lambda: dbos_private.receivers_waiting() > 0)
            time.sleep(0.5)
            before, cpu = _steps(gate), process_cpu()
            time.sleep(wait)
            out["checkpoints_per_hour"] = (_steps(gate) - before) * 3600.0 / wait
            out["cpu_ms_per_s"] = (process_cpu() - cpu) * 1000.0 / wait
            out["recorded"] = _steps(gate)
        # a new engine recovers the release, as a worker taking it over
        started, cpu = time.perf_counter(), process_cpu()
        with _engine(url, folder, slice_s):
            _until(lambda: dbos_private.receivers_waiting() > 0, timeout=600)
            out["replay_s"] = time.perf_counter() - started
            out["replay_cpu_s"] = process_cpu() - cpu
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--wait", type=float, default=20.0, help="seconds of steady wait")
    parser.add_argument("--slice", type=float, default=1.0, help="the sliced wait's slice")
    parser.add_argument("--replay-wait", type=float, default=20.0)
    parser.add_argument("--replay-slice", type=float, default=0.01)
    args = parser.parse_args(argv)
    rows = {}
    runs = [
        ("woken", True, args.wait, args.slice),
        (f"sliced {args.slice:g} s", False, args.wait, args.slice),
        (f"sliced {args.replay_slice:g} s", False, args.replay_wait, args.replay_slice),
    ]
    with contextlib.ExitStack() as stack:
        for name, woken, wait, slice_s in runs:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            if args.backend == "postgresql":
                url = stack.enter_context(postgres_database())
            else:
                url = f"sqlite:///{folder / 'state.db'}"
            rows[name] = measure(url, folder, woken=woken, wait=wait, slice_s=slice_s)
    print(f"a gate waiting {args.wait:g} s on {args.backend}, then taken over by a new engine")
    print(f"{'wait':16} {'checkpoints/h':>14} {'CPU ms/s':>9} {'recorded':>9} "
          f"{'take-over s':>12} {'its CPU s':>10}")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:16} {r['checkpoints_per_hour']:14.0f} {r['cpu_ms_per_s']:9.1f} "
              f"{r['recorded']:9.0f} {r['replay_s']:12.2f} {r['replay_cpu_s']:10.2f}")  # fmt: skip
    many = rows[f"sliced {args.replay_slice:g} s"]
    woken_row = rows["woken"]
    per_k = (
        (many["replay_cpu_s"] - woken_row["replay_cpu_s"])
        / max(many["recorded"] - woken_row["recorded"], 1)
        * 1000.0
    )
    print(f"replay: {per_k:.2f} s of CPU per 1,000 checkpoints; a gate waiting a day in slices "
          f"of 1 s records 259,200 (about {259.2 * per_k / 60:.1f} min of CPU to take over), "
          f"of 5 s 51,840 (about {51.84 * per_k:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
