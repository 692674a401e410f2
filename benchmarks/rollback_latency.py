"""Seconds from a failed check to the first rollback action (the automatic rollback).

A release of two steps runs in this process (``Engine`` + ``Client``, as the integration
tests do): ``deploy`` (a shell step with an ``undo``) and ``check`` (needs deploy, fails,
``on_failure: rollback``). From shipcaptain's own records:

* failed -> rollback started: the end of ``check``'s step run to the ``rollback.started``
  event (the release knows it rolls back and says so);
* failed -> first action: the end of ``check``'s step run to the start of the first
  rollback action (``rollback/undo-deploy``'s step run), the issue's figure;
* restored: the ``restore_seconds`` of the ``rollback.restored`` event (from the rollback's
  start to the end of the rollback).

Run (from the repository root, in the project's virtualenv)::

    python benchmarks/rollback_latency.py                 # SQLite and PostgreSQL, 5 runs each
    python benchmarks/rollback_latency.py --runs 9 --backend sqlite

PostgreSQL: a throwaway database on ``SHIPCAPTAIN_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped afterwards; skipped with a note
when the server cannot be reached. Exits 0 when the median of every backend is under the
target (a few seconds: 5 s), else 1.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

from step_overhead import postgres_database, postgres_unreachable

TARGET_S = 5.0

RUNBOOK = """
    name: rollback-latency
    phases:
      - id: one
        steps:
          - id: deploy
            action: shell
            with: {command: "true"}
            undo: {action: shell, with: {command: "true"}}
          - id: check
            action: shell
            needs: [deploy]
            on_failure: rollback
            with: {command: "exit 1"}
"""


def measure(url: str, tmp: Path, runs: int) -> list[tuple[float, float, float]]:
    """(failed -> rollback started, failed -> first action, restored) per run, in seconds."""
    from shipcaptain.client import Client
    from shipcaptain.engine.engine import Engine
    from shipcaptain.settings import Settings

    runbook = tmp / "runbook.yaml"
    runbook.write_text(textwrap.dedent(RUNBOOK), encoding="utf-8")
    settings = Settings(database_url=url, data_dir=tmp / "data", poll_interval=0.05)
    client = Client(settings)
    engine = Engine(settings, executor_id="bench-rollback", store=client.store, workdir=tmp)
    engine.launch()
    out: list[tuple[float, float, float]] = []
    try:
        for i in range(runs + 1):  # the first run warms up and is not counted
            record = client.create_release(runbook, {}, user="bench", workdir=tmp)
            engine.start(record.id, 1)
            final = client.wait_until_finished(record.id, timeout=120)
            if final.status != "rolled_back":
                raise SystemExit(f"release {record.id} ended {final.status}: {final.reason}")
            steps = client.store.latest_step_runs(record.id)
            failed = steps["check"].ended_at
            first = steps["rollback/undo-deploy"].started_at
            events = {e.kind: e for e in client.store.list_events(release_id=record.id)}
            assert failed is not None
            if i == 0:
                continue
            out.append(
                (
                    (events["rollback.started"].at - failed).total_seconds(),
                    (first - failed).total_seconds(),
                    float(events["rollback.restored"].data["restore_seconds"]),
                )
            )
    finally:
        engine.shutdown()
        client.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    args = parser.parse_args(argv)
    logging.getLogger("dbos").setLevel(logging.CRITICAL)
    rows: list[tuple[str, list[tuple[float, float, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="sc-rollback-bench-") as name:
        tmp = Path(name)
        if args.backend in ("sqlite", "all"):
            (tmp / "sqlite").mkdir()
            url = f"sqlite:///{tmp / 'sqlite' / 'state.db'}"
            rows.append(("sqlite", measure(url, tmp / "sqlite", args.runs)))
        if args.backend in ("postgresql", "all"):
            why = postgres_unreachable()
            if why is not None:
                print(f"postgresql skipped: {why}")
            else:
                (tmp / "postgresql").mkdir()
                with postgres_database() as url:
                    rows.append(("postgresql", measure(url, tmp / "postgresql", args.runs)))
    print(f"automatic rollback, median (min-max) of {args.runs} runs, seconds")
    print(f"{'backend':<11} {'failed->started':>20} {'failed->first action':>22} {'restored':>18}")
    ok = True
    for backend, values in rows:
        cols = []
        for k in range(3):
            xs = [v[k] for v in values]
            cols.append(f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})")
        print(f"{backend:<11} {cols[0]:>20} {cols[1]:>22} {cols[2]:>18}")
        ok = ok and statistics.median(v[1] for v in values) < TARGET_S
    print(
        f"target: first rollback action within {TARGET_S:g}s of the failure: "
        + ("met" if ok else "NOT met")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
